//! Sliced score matching (the maths is on [`SlicedScoreMatching`]).

use super::ScoreMatchingLoss;
use crate::error::{Error, Result};
use crate::jacobian::{Probe, ScoreJvp};
use crate::num::Real;
use crate::score::ScoreModel;
use ndarray::{Array1, Array2, ArrayView2, Zip};
use rand::RngCore;

/// Sliced score matching with `projections` random directions per sample.
///
/// Sliced score matching (Song, Garg, Shi & Ermon 2019, "Sliced Score Matching").
///
/// Implicit score matching's trace `tr ∇ₓ s` costs `D` backward passes; projecting onto
/// random directions `v` with `E[v vᵀ] = I` needs one Jacobian–vector product per direction
/// (Song et al. 2019, eq. 6–8):
///
/// ```text
/// J_SSM(θ)    = E_p E_v [ vᵀ ∇ₓ s_θ(x) v + ½ (vᵀ s_θ(x))² ]
/// J_SSM-VR(θ) = E_p E_v [ vᵀ ∇ₓ s_θ(x) v ] + ½ E_p ‖s_θ(x)‖²
/// ```
///
/// Both equal implicit score matching's `J(θ)` in expectation (`E_v vᵀ A v = tr A`,
/// `E_v (vᵀ s)² = ‖s‖²`); the variance-reduced form integrates the second term out exactly,
/// which removes its Monte-Carlo noise. The exact score attains `−½ E_p ‖∇ log p‖²`.
/// `vᵀ ∇ s v` is a central difference of the score along `v` ([`ScoreJvp`], two score calls
/// per projection).
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::train::SlicedScoreMatching;
/// use rand::SeedableRng;
/// let gm = GaussianMixture::gaussian(ndarray::array![1.0_f64, 0.0], ndarray::array![[1.0, 0.3], [0.3, 0.5]])?;
/// let model = AnalyticScore::new(gm.clone(), VpLinear::default());
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
/// let x = gm.sample(20_000, &mut rng)?;
/// let ssm = SlicedScoreMatching::new(1)?.variance_reduced(true);
/// let j = ssm.loss(&model, x.view(), 0.0, &mut rng)?;
/// // −½ tr S⁻¹ = −½ (1.5/0.41) ≈ −1.829
/// assert!((j.mean + 1.5 / 0.82).abs() < 0.05);
/// assert_eq!(j.nfe, 3); // the score, and two calls for the one projection
/// # Ok::<(), score_sde::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlicedScoreMatching {
    projections: usize,
    probe: Probe,
    variance_reduced: bool,
}

impl SlicedScoreMatching {
    /// `projections ≥ 1` Gaussian directions per sample (Song et al. 2019's choice), the
    /// plain (not variance-reduced) objective.
    pub fn new(projections: usize) -> Result<Self> {
        if projections == 0 {
            return Err(Error::param(
                "projections",
                0.0,
                "sliced score matching needs at least one projection",
            ));
        }
        // The loss counts 1 + 2·projections model evaluations per row.
        let what = "sliced score matching evaluations per row";
        crate::check::elements(what, &[2, projections])
            .and_then(|m| crate::check::add_count(what, m, 1))?;
        Ok(Self {
            projections,
            probe: Probe::Gaussian,
            variance_reduced: false,
        })
    }
    /// The distribution of the directions (both have `E[v vᵀ] = I`).
    pub fn probe(mut self, probe: Probe) -> Self {
        self.probe = probe;
        self
    }
    /// Use the variance-reduced objective (SSM-VR, Song et al. 2019, eq. 8).
    pub fn variance_reduced(mut self, on: bool) -> Self {
        self.variance_reduced = on;
        self
    }

    /// The per-row loss of `model` at time `t` on samples `x` of the target; directions are
    /// drawn from `rng`.
    pub fn loss<F: Real>(
        &self,
        model: &dyn ScoreModel<F>,
        x: ArrayView2<F>,
        t: F,
        rng: &mut dyn RngCore,
    ) -> Result<ScoreMatchingLoss<F>> {
        super::check_batch(model, &x)?;
        let (n, d) = x.dim();
        let mut s = Array2::<F>::zeros((n, d));
        model.score(x, t, s.view_mut())?;
        let mut jvp = ScoreJvp::new(n, d)?;
        let mut v = Array2::<F>::zeros((n, d));
        let mut jv = Array2::<F>::zeros((n, d));
        let mut rows = Array1::<F>::zeros(n);
        let half = F::lit(0.5);
        let inv_m = F::one() / F::from_usize_lossy(self.projections);
        for _ in 0..self.projections {
            self.probe.fill(v.view_mut(), rng);
            jvp.eval(model, x, t, v.view(), jv.view_mut())?;
            let vr = self.variance_reduced;
            Zip::from(&mut rows)
                .and(v.rows())
                .and(jv.rows())
                .and(s.rows())
                .for_each(|o, v, jv, s| {
                    let proj = if vr { F::zero() } else { v.dot(&s) };
                    *o += (v.dot(&jv) + half * proj * proj) * inv_m;
                });
        }
        if self.variance_reduced {
            Zip::from(&mut rows)
                .and(s.rows())
                .for_each(|o, s| *o += half * s.dot(&s));
        }
        ScoreMatchingLoss::new(rows, 1 + 2 * self.projections)
    }
}
