//! `log p_0(x)` by the instantaneous change of variables along the probability-flow ODE.
//!
//! Along `dx/dt = F(x, t) = f(x, t) − ½ g(t)² s(x, t)` (Song et al. 2021, eq. 13),
//! `d log p_t(x_t)/dt = −∇ · F(x_t, t)` (Chen et al. 2018, Thm. 1), so
//!
//! ```text
//! log p_{t₀}(x) = log p_T(x_T) + ∫_{t₀}^{T} ∇ · F(x_t, t) dt,     ∇ · F = ∇ · f − ½ g(t)² ∇ · s
//! ```
//!
//! integrated as the augmented ODE `d/dt [x, Δ] = [F, ∇ · F]` from `t₀` to `T` with the
//! adaptive Dormand–Prince solver (Song et al. 2021, App. D.2; Grathwohl et al. 2019). The
//! `x` part is the probability-flow right-hand side [`PfOdeRhs`] itself. Any
//! [`ForwardSde`] works: `∇ · f` is [`ForwardSde::drift_divergence`] when the SDE knows it
//! (`D f(t)` for a linear SDE), else the divergence method's estimate of it (finite
//! differences, or Hutchinson with the same probes as the score's). The solver's error norm
//! covers both `x` and `Δ` (RMS over the row, max over the batch).
//!
//! The prior `p_T` is the SDE's `N(0, s² I)`; for VP at `T = 1` it differs from the true
//! `p_T` by `α(1) ≈ 0.0066` in the means, a prior-mismatch error of up to a few 10⁻² nats
//! that no solver tolerance removes. [`Likelihood`] therefore also returns the latent `x_T`
//! and `Δ` separately, so a caller with a better `log p_T` (the tests use the exact one) can
//! add it.

use super::divergence::{Divergence, DivergenceMethod};
use crate::check;
use crate::dynamics::PfOdeRhs;
use crate::error::{Error, Result};
use crate::num::Real;
use crate::observe::NoObserver;
use crate::ode::{Dopri5, OdeRhs};
use crate::schedule::check_time;
use crate::score::ScoreModel;
use crate::sde::ForwardSde;
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Zip, s};
use rand::RngCore;

/// The drift `f(x, t)` seen as a vector field, so the divergence estimators can take its
/// divergence when the SDE does not know it.
struct DriftField<'a, F: Real>(&'a dyn ForwardSde<F>);

impl<F: Real> ScoreModel<F> for DriftField<'_, F> {
    fn score(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()> {
        self.0.drift(x, t, out)
    }
}

/// The augmented right-hand side `[F, ∇ · F]` on `[x, Δ]` (`D + 1` columns).
struct Augmented<'a, F: Real> {
    pf: PfOdeRhs<'a, F>,
    div: Divergence<F>,
    divs: Array1<F>,
    drift_divs: Array1<F>,
    d: usize,
    /// Score calls of the divergence estimator (the PF right-hand side counts its own).
    div_calls: usize,
    evals: usize,
}

impl<F: Real> OdeRhs<F> for Augmented<'_, F> {
    fn eval(&mut self, t: F, y: ArrayView2<F>, mut out: ArrayViewMut2<F>) -> Result<()> {
        let d = self.d;
        let xs = y.slice(s![.., ..d]);
        self.pf.eval(t, xs, out.slice_mut(s![.., ..d]))?;
        let (sde, model) = (self.pf.sde(), self.pf.model());
        self.div_calls += self.div.eval(model, xs, t, self.divs.view_mut())?;
        self.evals += 1;
        match sde.drift_divergence(xs, t, self.drift_divs.view_mut()) {
            Some(r) => r?,
            None => {
                if self.div.method() == DivergenceMethod::Exact {
                    return Err(Error::Unsupported {
                        what: "the exact divergence of this SDE's drift",
                        reason: "the SDE has no ForwardSde::drift_divergence; implement it or \
                                 choose DivergenceMethod::FiniteDifference or Hutchinson"
                            .into(),
                    });
                }
                self.div
                    .eval(&DriftField(sde), xs, t, self.drift_divs.view_mut())?;
            }
        }
        let g2 = match sde.linear_schedule() {
            Some(sch) => sch.g2(t).max(F::zero()),
            None => {
                let g = sde.diffusion(t);
                g * g
            }
        };
        let half_g2 = F::lit(0.5) * g2;
        Zip::from(out.column_mut(d))
            .and(&self.drift_divs)
            .and(&self.divs)
            .for_each(|o, &fd, &sd| *o = fd - half_g2 * sd);
        Ok(())
    }
}

/// The result of a likelihood computation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Likelihood<F> {
    /// `log p_{t₀}(x)` per row: `prior_log_p + delta_log_p`.
    pub log_p: Array1<F>,
    /// `log p_T(x_T)` under the SDE's prior.
    pub prior_log_p: Array1<F>,
    /// `Δ = ∫_{t₀}^{T} ∇ · F dt` per row.
    pub delta_log_p: Array1<F>,
    /// The latent `x_T` (the probability-flow encoding of `x`).
    pub latent: Array2<F>,
    /// Score-model calls on the batch, including those the divergence estimator makes.
    pub nfe: usize,
    /// Evaluations of the augmented right-hand side (each computes one divergence).
    pub divergence_evals: usize,
    /// Accepted solver steps.
    pub steps: usize,
}

/// Exact log-likelihoods through the probability-flow ODE.
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::likelihood::OdeLikelihood;
/// use ndarray::{array, Array2};
/// use rand::SeedableRng;
/// // Data N(0, I) under VP stays N(0, I) for all t, so log p_{t₀}(x) = log N(x; 0, I).
/// let sde = VpSde::<f64>::default();
/// let gm = GaussianMixture::gaussian(array![0.0, 0.0], Array2::eye(2)).unwrap();
/// let model = AnalyticScore::new(gm.clone(), *sde.schedule());
/// let lik = OdeLikelihood::new(sde).unwrap().tolerances(1e-8, 1e-8).unwrap();
/// let x = array![[0.5, -1.0], [2.0, 0.1]];
/// let r = lik.log_prob(&model, x.view(), &mut rand_pcg::Pcg64::seed_from_u64(0)).unwrap();
/// let exact = gm.log_prob(x.view()).unwrap();
/// assert!((&r.log_p - &exact).iter().all(|e| e.abs() < 1e-6));
/// ```
#[derive(Debug, Clone)]
pub struct OdeLikelihood<F, S> {
    sde: S,
    solver: Dopri5<F>,
    max_steps: usize,
    divergence: DivergenceMethod,
    t_start: Option<F>,
}

impl<F: Real, S: ForwardSde<F>> OdeLikelihood<F, S> {
    /// score_sde's defaults: RK45 at `rtol = atol = 10⁻⁵`, the model's exact divergence,
    /// from `t_min` of the SDE to `T`.
    pub fn new(sde: S) -> Result<Self> {
        let max_steps = 100_000;
        Ok(Self {
            sde,
            solver: Dopri5::new(F::lit(1e-5), F::lit(1e-5))?.max_steps(max_steps)?,
            max_steps,
            divergence: DivergenceMethod::Exact,
            t_start: None,
        })
    }
    /// Set the solver's relative and absolute tolerances (both `> 0`).
    pub fn tolerances(mut self, rtol: F, atol: F) -> Result<Self> {
        self.solver = Dopri5::new(rtol, atol)?.max_steps(self.max_steps)?;
        Ok(self)
    }
    /// Set the solver's step budget.
    pub fn max_steps(mut self, n: usize) -> Result<Self> {
        self.solver = self.solver.max_steps(n)?;
        self.max_steps = n;
        Ok(self)
    }
    /// Choose the divergence method (Hutchinson needs at least one probe).
    pub fn divergence(mut self, method: DivergenceMethod) -> Result<Self> {
        method.validate()?;
        self.divergence = method;
        Ok(self)
    }
    /// Start the integration at `t₀` instead of the SDE's `t_min` (inside its range).
    pub fn t_start(mut self, t0: F) -> Result<Self> {
        check_time(t0, self.sde.t_range())?;
        let (_, hi) = self.sde.t_range();
        if t0 >= hi {
            return Err(Error::param("t_start", t0.as_f64(), "must be below T"));
        }
        self.t_start = Some(t0);
        Ok(self)
    }
    /// The SDE.
    pub fn sde(&self) -> &S {
        &self.sde
    }

    /// `log p_{t₀}(x)` for every row of `x`. Hutchinson probes are drawn from `rng` once per
    /// call and held fixed through the solve (as score_sde does).
    pub fn log_prob(
        &self,
        model: &dyn ScoreModel<F>,
        x: ArrayView2<F>,
        rng: &mut dyn RngCore,
    ) -> Result<Likelihood<F>> {
        check::nonempty_batch("likelihood batch", &x)?;
        if let Some(d) = model.dim() {
            if d != x.ncols() {
                return Err(Error::shape("x (columns = model dimension)", d, x.ncols()));
            }
        }
        check::finite("likelihood batch", &x)?;
        let (n, d) = x.dim();
        let (t_min, t_max) = self.sde.t_range();
        let t0 = self.t_start.unwrap_or(t_min);
        let div = Divergence::new(self.divergence, n, d, rng)?;
        let mut state = Array2::<F>::zeros((n, d + 1));
        state.slice_mut(s![.., ..d]).assign(&x);
        let mut rhs = Augmented {
            pf: PfOdeRhs::new(&self.sde, model),
            div,
            divs: Array1::zeros(n),
            drift_divs: Array1::zeros(n),
            d,
            div_calls: 0,
            evals: 0,
        };
        let stats = self
            .solver
            .solve(&mut rhs, t0, t_max, &mut state, &mut NoObserver)?;
        let (nfe, evals) = (rhs.pf.nfe() + rhs.div_calls, rhs.evals);
        let latent = state.slice(s![.., ..d]).to_owned();
        let delta_log_p = state.column(d).to_owned();
        let mut prior_log_p = Array1::<F>::zeros(n);
        self.sde
            .prior_log_prob(latent.view(), prior_log_p.view_mut())?;
        let log_p = &prior_log_p + &delta_log_p;
        if let Some(i) = log_p.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "log-likelihood",
                index: i,
                value: log_p[i].as_f64(),
            });
        }
        Ok(Likelihood {
            log_p,
            prior_log_p,
            delta_log_p,
            latent,
            nfe,
            divergence_evals: evals,
            steps: stats.steps,
        })
    }
}
