//! Run-time choice of the instruction set for the vectorised loops (the mixture kernel and
//! the row-noise generator).
//!
//! A crate built for the default `x86-64` target may use only SSE2, which holds two f64
//! per register and has no fused multiply-add. The kernel's loops are written once,
//! generically, as `#[inline(always)]` functions over slices; [`Isa::detect`] picks at
//! run time between a copy of them compiled with AVX2 + FMA enabled (four f64 / eight
//! f32 per register) and the portable copy, so users get the wide path without
//! `RUSTFLAGS` or `-C target-cpu`. The row-noise generator (`sample::normal`) uses the
//! same choice. AVX-512 is not targeted yet: the machines the crate is measured on have
//! none, so a copy for it could not be tested.

/// An instruction-set level the kernel has a compiled copy for.
///
/// The wide variant carries an [`Avx2Fma`] token that only [`Isa::detect`] can make (its
/// field is private to this module), so code matching on `Isa::Avx2Fma(_)` may call the
/// `#[target_feature(enable = "avx2,fma")]` copies: the token is the proof that the CPU
/// has them. No other module can construct the variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// The target's baseline (SSE2 on x86-64, NEON on aarch64, ...).
    Portable,
    /// x86-64 with AVX2 and FMA, proven by run-time detection.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma(Avx2Fma),
}

/// Proof that the running CPU has AVX2 and FMA: made only by [`Isa::detect`].
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Avx2Fma(());

impl Isa {
    /// The best level this CPU supports (`std` caches the CPUID query).
    #[inline]
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2Fma(Avx2Fma(()));
            }
        }
        Isa::Portable
    }

    /// Every level this CPU can run, the portable one first (for tests and benches).
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Self> {
        let mut v = vec![Isa::Portable];
        if Self::detect() != Isa::Portable {
            v.push(Self::detect());
        }
        v
    }
}

/// Whether the portable copy may use fused multiply-adds: only when the compile-time
/// target has them in hardware (aarch64 always; x86-64 only with `-C target-feature`),
/// since otherwise `mul_add` is a slow software routine.
pub(crate) const PORTABLE_FMA: bool = cfg!(any(target_arch = "aarch64", target_feature = "fma"));
