//! The entry points of the blocked kernel: the run-time instruction-set choice and the
//! tied/untied dispatch, above both paths (`block` is the untied path and the helpers
//! both share; `tied` the shared-covariance path built on those helpers).

use super::block::{BlockWorkspace, run_untied};
use super::{Outputs, Parts, tied};
use crate::num::Real;
use crate::num::simd::{Isa, PORTABLE_FMA};
use ndarray::ArrayView2;

/// Evaluate on the rows of `x` with the copy of the loops compiled for `isa`.
pub(crate) fn evaluate<F: Real>(
    isa: Isa,
    parts: &Parts<'_, F>,
    alpha: F,
    sigma: F,
    x: ArrayView2<F>,
    ws: &mut BlockWorkspace<F>,
    out: &mut Outputs<'_, F>,
) {
    ws.set_up(parts, alpha, sigma);
    match isa {
        Isa::Portable => run::<F, PORTABLE_FMA, false>(parts.axis_aligned, x, ws, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2Fma` carries a token only `Isa::detect` (hence `available`) makes,
        // after checking that this CPU has AVX2 and FMA.
        Isa::Avx2Fma(_) => unsafe { run_avx2_fma(parts.axis_aligned, x, ws, out) },
    }
}

/// [`run`] compiled with AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2_fma<F: Real>(
    axis_aligned: &[bool],
    x: ArrayView2<F>,
    ws: &mut BlockWorkspace<F>,
    out: &mut Outputs<'_, F>,
) {
    run::<F, true, true>(axis_aligned, x, ws, out)
}

/// All blocks of `x`: the tied path when the components share one covariance.
#[inline(always)]
fn run<F: Real, const FMA: bool, const AVX2: bool>(
    axis_aligned: &[bool],
    x: ArrayView2<F>,
    ws: &mut BlockWorkspace<F>,
    out: &mut Outputs<'_, F>,
) {
    if ws.tied {
        tied::run::<F, FMA, AVX2>(x, ws, out)
    } else {
        run_untied::<F, FMA, AVX2>(axis_aligned, x, ws, out)
    }
}
