//! The DDPM variational bound (the maths is on [`DdpmBound`]).

use crate::check;
use crate::error::{Error, Result};
use crate::num::{Real, RowNoise};
use crate::sample::DdpmVariance;
use crate::schedule::{DiscreteVp, Schedule};
use crate::score::ScoreModel;
use ndarray::{Array1, Array2, ArrayView2, Zip};
use rand::RngCore;

use super::bpd::{DataScaling, bits_per_dim};

/// The DDPM variational bound of a model on a β table.
///
/// The DDPM variational bound `L_vlb` (Ho et al. 2020, eq. 5; Sohl-Dickstein et al. 2015) of a
/// score / ε model on a discrete β table, in nats and bits per dimension.
///
/// For the forward chain `q(x_k | x_{k−1}) = N(√(1 − β_k) x_{k−1}, β_k I)` of a
/// [`DiscreteVp`] table (`ᾱ_k = α(k/N)²`) and the reverse model
/// `p_θ(x_{k−1} | x_k) = N(μ_θ(x_k, k), σ_k² I)` of Algorithm 2,
///
/// ```text
/// −log p_θ(x_0) ≤ L_vlb(x_0) = L_N + Σ_{k=2}^{N} L_{k−1} + L_0
/// L_N     = KL(q(x_N | x_0) ‖ N(0, s² I))
/// L_{k−1} = E_{x_k ~ q(x_k | x_0)} KL(q(x_{k−1} | x_k, x_0) ‖ p_θ(x_{k−1} | x_k))
/// L_0     = E_{x_1 ~ q(x_1 | x_0)} [−log p_θ(x_0 | x_1)]
/// ```
///
/// with the Gaussian forward posterior `q(x_{k−1} | x_k, x_0) = N(μ̃_k, β̃_k I)`,
/// `μ̃_k = (√ᾱ_{k−1} β_k/(1 − ᾱ_k)) x_0 + (√(1 − β_k)(1 − ᾱ_{k−1})/(1 − ᾱ_k)) x_k`,
/// `β̃_k = (1 − ᾱ_{k−1}) β_k/(1 − ᾱ_k)` (Ho et al. eq. 6–7), and the model's mean
/// `μ_θ = (x_k − β_k/√(1 − ᾱ_k) ε_θ)/√(1 − β_k) = (x_k + β_k s_θ)/√(1 − β_k)` (eq. 11, with
/// `s = −ε/σ_k`). Each KL of two isotropic Gaussians is closed-form (eq. 5's "Rao–Blackwellised"
/// terms):
///
/// ```text
/// KL(N(μ̃, β̃ I) ‖ N(μ_θ, σ² I)) = ½ [D (β̃/σ² − 1 − ln(β̃/σ²)) + ‖μ̃ − μ_θ‖²/σ²]
/// ```
///
/// so only the expectation over `x_k` is Monte Carlo: one draw of `x_k` per term and row
/// (from the row's own noise stream, [`RowNoise`](crate::num::RowNoise)), one score call on
/// the batch per term — `N` score calls in all. `σ_k²` is [`DdpmVariance::Beta`] or
/// [`DdpmVariance::BetaTilde`]. The decoder `p_θ(x_0 | x_1)` is the Gaussian
/// `N(μ_θ(x_1, 1), β_1 I)` with `μ_θ(x_1, 1) = (x_1 + σ_1² s)/α_1` (Tweedie at `t_1`, the
/// last step of Algorithm 2): Ho et al. use a discretised decoder for 8-bit images, whose
/// continuous-data analogue this is; `β̃_1 = 0` would make it degenerate, so both variance
/// choices use `β_1` here.
///
/// The bound is exact in the sense that every term given `x_k` is evaluated in closed form;
/// for a Gaussian data distribution with its exact (linear) score the expectation over `x_k`
/// is closed-form too, which `tests/ddpm.rs` checks the estimator against. Bits per
/// dimension: [`VlbTerms::bits_per_dim`], as [`bits_per_dim`](super::bits_per_dim) for the
/// probability-flow ODE (`docs/likelihood.md` sets the two side by side).
///
/// ```
/// use score_sde::likelihood::DdpmBound;
/// use score_sde::prelude::*;
/// use score_sde::sample::DdpmVariance;
/// use rand::SeedableRng;
/// let table = DiscreteVp::<f64>::ddpm_linear(200, 5e-4, 0.1)?;
/// let gm = GaussianMixture::gaussian(ndarray::array![0.5, -0.5], ndarray::Array2::eye(2) * 0.3)?;
/// let model = AnalyticScore::new(gm.clone(), table.clone());
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
/// let x0 = gm.sample(2000, &mut rng)?;
/// let vlb = DdpmBound::new(table, DdpmVariance::Beta).evaluate(&model, x0.view(), &mut rng)?;
/// assert_eq!(vlb.nfe, 200);
/// // A bound on −log p(x_0): on average at least the true negative log-likelihood (the
/// // mean over 2000 points is within a few hundredths of a nat of it here).
/// let nll = -gm.log_prob(x0.view())?.mean().unwrap();
/// let gap = vlb.total.mean().unwrap() - nll;
/// assert!(gap > -0.1 && gap < 0.2, "{gap}");
/// # Ok::<(), score_sde::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct DdpmBound<F> {
    table: DiscreteVp<F>,
    variance: DdpmVariance,
    prior_std: F,
}

/// The terms of the bound per row, in nats (see [`DdpmBound`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VlbTerms<F> {
    /// `L_vlb = prior + diffusion + decoder`.
    pub total: Array1<F>,
    /// `L_N = KL(q(x_N | x_0) ‖ N(0, s² I))` (closed form, no model call).
    pub prior: Array1<F>,
    /// `Σ_{k=2}^{N} L_{k−1}` (each term a closed-form KL at one draw of `x_k`).
    pub diffusion: Array1<F>,
    /// `L_0 = −log N(x_0; μ_θ(x_1, 1), β_1 I)` at one draw of `x_1`.
    pub decoder: Array1<F>,
    /// Score calls on the batch (`N`).
    pub nfe: usize,
}

impl<F: Real> VlbTerms<F> {
    /// The bound in bits per dimension for `dim`-dimensional data discretised as `scaling`
    /// describes: `L_vlb/(D ln 2) − log₂ a + log₂ B` ([`bits_per_dim`] of `−L_vlb`).
    pub fn bits_per_dim(&self, dim: usize, scaling: DataScaling) -> Result<Array1<f64>> {
        let neg = self.total.mapv(|v| -v);
        bits_per_dim(neg.view(), dim, scaling)
    }
}

impl<F: Real> DdpmBound<F> {
    /// The bound of Algorithm 2 on `table` with reverse variance `variance`, prior `N(0, I)`.
    pub fn new(table: DiscreteVp<F>, variance: DdpmVariance) -> Self {
        Self {
            table,
            variance,
            prior_std: F::one(),
        }
    }
    /// The prior's standard deviation `s` of `N(0, s² I)` (`> 0`).
    pub fn prior_std(mut self, s: F) -> Result<Self> {
        self.prior_std = check::positive("prior_std", s)?;
        Ok(self)
    }

    /// `L_vlb` and its terms for every row of `x0` (the model is called at the knots
    /// `t_k = k/N`). Errors: an empty, non-finite or wrongly sized batch; a model returning
    /// a non-finite score ([`Error::NonFinite`] naming the term's knot).
    pub fn evaluate(
        &self,
        model: &dyn ScoreModel<F>,
        x0: ArrayView2<F>,
        rng: &mut dyn RngCore,
    ) -> Result<VlbTerms<F>> {
        check::nonempty_batch("bound batch", &x0)?;
        if let Some(d) = model.dim() {
            if d != x0.ncols() {
                return Err(Error::shape(
                    "x0 (columns = model dimension)",
                    d,
                    x0.ncols(),
                ));
            }
        }
        check::finite("bound batch", &x0)?;
        let (n, d) = x0.dim();
        let nk = self.table.len();
        let nf = F::from_usize_lossy(nk);
        let df = F::from_usize_lossy(d);
        let half = F::lit(0.5);
        let knot = |k: usize| F::from_usize_lossy(k) / nf;
        let (alpha, sigma) = (|t: F| self.table.alpha(t), |t: F| self.table.sigma(t));

        // L_N: KL(N(α_N x_0, σ_N² I) ‖ N(0, s² I)).
        let s2 = self.prior_std * self.prior_std;
        let (a_n, sg_n) = (alpha(F::one()), sigma(F::one()));
        let r = sg_n * sg_n / s2;
        let c_prior = half * df * (r - F::one() - r.ln());
        let prior = x0.map_axis(ndarray::Axis(1), |row| {
            c_prior + half * a_n * a_n * row.dot(&row) / s2
        });

        let mut diffusion = Array1::<F>::zeros(n);
        let mut xk = Array2::<F>::zeros((n, d));
        let mut z = Array2::<F>::zeros((n, d));
        let mut s = Array2::<F>::zeros((n, d));
        let mut nfe = 0usize;
        // Draw x_k = α_k x_0 + σ_k z and the score there.
        let mut draw = |k: usize, xk: &mut Array2<F>, s: &mut Array2<F>| -> Result<()> {
            let t = knot(k);
            let (a, sg) = (alpha(t), sigma(t));
            RowNoise::from_rng(rng, n).fill(z.view_mut());
            Zip::from(&mut *xk)
                .and(&x0)
                .and(&z)
                .for_each(|xk, &x, &z| *xk = a * x + sg * z);
            model.score(xk.view(), t, s.view_mut())?;
            nfe += 1;
            if let Some(i) = s.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    what: "score in the variational bound",
                    index: i,
                    value: s.as_slice().map_or(f64::NAN, |v| v[i].as_f64()),
                });
            }
            Ok(())
        };
        for k in 2..=nk {
            draw(k, &mut xk, &mut s)?;
            let (t, tp) = (knot(k), knot(k - 1));
            let (a, v) = self.table.transition(tp, t); // a = √(1 − β_k), v = β_k
            let (sk2, sp2) = (sigma(t) * sigma(t), sigma(tp) * sigma(tp));
            let beta_tilde = sp2 * v / sk2;
            let var = match self.variance {
                DdpmVariance::Beta => v,
                DdpmVariance::BetaTilde => beta_tilde,
            };
            // μ̃ − μ_θ = c0 x_0 + c1 x_k − (x_k + v s)/a  (Ho et al. eq. 7 and 11)
            let c0 = alpha(tp) * v / sk2;
            let c1 = a * sp2 / sk2 - F::one() / a;
            let cs = v / a;
            let ratio = beta_tilde / var;
            let c_var = half * df * (ratio - F::one() - ratio.ln());
            Zip::from(&mut diffusion)
                .and(x0.rows())
                .and(xk.rows())
                .and(s.rows())
                .for_each(|l, x, xk, s| {
                    let mut q = F::zero();
                    for j in 0..x.len() {
                        let e = c0 * x[j] + c1 * xk[j] - cs * s[j];
                        q += e * e;
                    }
                    *l += c_var + half * q / var;
                });
        }
        // L_0 = −log N(x_0; (x_1 + σ_1² s)/α_1, β_1 I).
        draw(1, &mut xk, &mut s)?;
        let t1 = knot(1);
        let (a1, sg1) = (alpha(t1), sigma(t1));
        let beta1 = sg1 * sg1;
        let c_dec = half * df * (F::lit(2.0 * std::f64::consts::PI) * beta1).ln();
        let mut decoder = Array1::<F>::zeros(n);
        Zip::from(&mut decoder)
            .and(x0.rows())
            .and(xk.rows())
            .and(s.rows())
            .for_each(|l, x, xk, s| {
                let mut q = F::zero();
                for j in 0..x.len() {
                    let e = x[j] - (xk[j] + beta1 * s[j]) / a1;
                    q += e * e;
                }
                *l = c_dec + half * q / beta1;
            });
        let total = &prior + &diffusion + &decoder;
        if let Some(i) = total.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "variational bound",
                index: i,
                value: total[i].as_f64(),
            });
        }
        Ok(VlbTerms {
            total,
            prior,
            diffusion,
            decoder,
            nfe,
        })
    }
}
