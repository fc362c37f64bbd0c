//! Implicit score matching (Hyvärinen 2005, Thm. 1; Song et al. 2019, eq. 2).
//!
//! The Fisher divergence `½ E_p ‖s_θ(x) − ∇ log p(x)‖²` needs the unknown score; integrating
//! by parts removes it:
//!
//! ```text
//! J(θ) = E_p [ ½ ‖s_θ(x)‖² + tr ∇ₓ s_θ(x) ]  =  ½ E_p ‖s_θ − ∇ log p‖² − ½ E_p ‖∇ log p‖²
//! ```
//!
//! so the exact score attains the minimum `J* = −½ E_p ‖∇ log p‖²` (`−½ tr S⁻¹` for
//! `p = N(μ, S)`) and any other model exceeds it by its Fisher divergence.

use super::{ScoreMatchingLoss, TraceMethod};
use crate::error::{Error, Result};
use crate::jacobian::ScoreJvp;
use crate::num::Real;
use crate::score::ScoreModel;
use ndarray::{Array1, Array2, ArrayView2, Zip};

/// Implicit score matching of `model` at time `t` on samples `x` of the target (rows): per
/// row `½ ‖s(x)‖² + tr ∇ₓ s(x)`, the trace exact ([`ScoreModel::divergence`]) or by central
/// differences along the `D` axes (`2D` extra score calls, [`ScoreJvp`]).
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::train::{TraceMethod, implicit_score_matching};
/// use rand::SeedableRng;
/// // N(0, S) with S = diag(2, 0.5): the exact score attains −½ tr S⁻¹ = −1.25.
/// let gm = GaussianMixture::gaussian(ndarray::array![0.0_f64, 0.0], ndarray::array![[2.0, 0.0], [0.0, 0.5]])?;
/// let model = AnalyticScore::new(gm.clone(), VpLinear::default()); // t = 0: the exact score
/// let x = gm.sample(20_000, &mut rand_pcg::Pcg64::seed_from_u64(0))?;
/// let j = implicit_score_matching(&model, x.view(), 0.0, TraceMethod::Exact)?;
/// assert!((j.mean - (-1.25)).abs() < 0.05);
/// # Ok::<(), score_sde::Error>(())
/// ```
pub fn implicit_score_matching<F: Real>(
    model: &dyn ScoreModel<F>,
    x: ArrayView2<F>,
    t: F,
    trace: TraceMethod,
) -> Result<ScoreMatchingLoss<F>> {
    super::check_batch(model, &x)?;
    let (n, d) = x.dim();
    let mut s = Array2::<F>::zeros((n, d));
    model.score(x, t, s.view_mut())?;
    let mut tr = Array1::<F>::zeros(n);
    let mut nfe = 1;
    match trace {
        TraceMethod::Exact => {
            model
                .divergence(x, t, tr.view_mut())
                .unwrap_or(Err(Error::Model(
                    "the model has no exact divergence; use TraceMethod::FiniteDifference".into(),
                )))?;
        }
        TraceMethod::FiniteDifference => {
            let mut jvp = ScoreJvp::new(n, d)?;
            let mut axis = Array2::<F>::zeros((n, d));
            let mut jv = Array2::<F>::zeros((n, d));
            for j in 0..d {
                axis.fill(F::zero());
                axis.column_mut(j).fill(F::one());
                jvp.eval(model, x, t, axis.view(), jv.view_mut())?;
                Zip::from(&mut tr)
                    .and(jv.column(j))
                    .for_each(|o, &g| *o += g);
                nfe += 2;
            }
        }
    }
    let half = F::lit(0.5);
    let rows = Zip::from(s.rows())
        .and(&tr)
        .map_collect(|sr, &tr| half * sr.dot(&sr) + tr);
    ScoreMatchingLoss::new(rows, nfe)
}
