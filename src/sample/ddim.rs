//! DDIM (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models", eq. 12).
//!
//! With the data prediction `x̂₀ = E[x₀ | x_t]` and the implied noise
//! `ε̂ = (x_t − α_t x̂₀)/σ_t`, one step from `t` to `s < t` is
//!
//! ```text
//! x_s = α_s x̂₀ + √(σ_s² − c²) ε̂ + c z,      c = η σ_s √(1 − e^{−2h}),   h = λ_s − λ_t
//! ```
//!
//! which is eq. 12 with eq. 16's `σ_t(η) = η √((1−ᾱ_{t−1})/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t−1})`
//! written for any schedule: `c² = η² σ_s²/σ_t² (σ_t² − (α_t/α_s)² σ_s²) = η² σ_s² (1 − e^{−2h})`,
//! which is eq. 16 when `ᾱ = α²`, `σ² = 1 − ᾱ`. `η = 0` is the deterministic DDIM
//! (= first-order DPM-Solver++), `η = 1` the ancestral DDPM posterior step.

use crate::error::{Error, Result};
use crate::num::Real;
use crate::grid::TimeGrid;
use crate::observe::Observer;
use crate::sample::ode::check_grid_range;
use crate::sample::{RowNoise, Run, Sampler, check_initial};
use crate::schedule::Schedule;
use crate::score::{Parameterization, ScoreModel, from_score_inplace};
use crate::sde::MarginalSde;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};
use rand::RngCore;

/// Evaluate the model at `(x, t)` and convert its score to the data prediction
/// `x̂₀ = (x + σ² s)/α` through the schedule (one NFE).
pub(crate) fn data_prediction<F: Real>(
    model: &dyn ScoreModel<F>,
    sched: &dyn Schedule<F>,
    x: ArrayView2<F>,
    t: F,
    mut out: ArrayViewMut2<F>,
) -> Result<()> {
    model.score(x, t, out.view_mut())?;
    from_score_inplace(
        Parameterization::Data,
        x,
        sched.alpha(t),
        sched.sigma(t),
        out,
    );
    Ok(())
}

/// A sampler run's noise: a buffer of the state's shape and per-row streams seeded from
/// one `u64` of `rng` (so row `r`'s noise does not depend on the batch), or empty ones
/// (and nothing drawn from `rng`) when the run adds no noise.
pub(crate) fn step_noise<F: Real>(
    on: bool,
    shape: (usize, usize),
    rng: &mut dyn RngCore,
) -> (Array2<F>, RowNoise) {
    if on {
        (Array2::zeros(shape), RowNoise::from_rng(rng, shape.0))
    } else {
        (Array2::zeros((0, 0)), RowNoise::new(0, 0))
    }
}

/// Validate a non-negative, finite parameter.
pub(crate) fn non_negative<F: Real>(name: &'static str, v: F) -> Result<F> {
    if v.is_finite() && v >= F::zero() {
        Ok(v)
    } else {
        Err(Error::param(name, v.as_f64(), "must be finite and >= 0"))
    }
}

/// The DDIM sampler with stochasticity `η ∈ [0, 1]` (Song, Meng & Ermon 2021, eq. 12).
///
/// One NFE per step; with [`Ddim::denoise_final`] one more for a final Tweedie denoise
/// (the output is then `x̂₀` at the last grid time). `η = 0` draws no random numbers.
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::ddim::Ddim;
/// use rand::SeedableRng;
/// let sde = VpSde::<f64>::default();
/// let model = AnalyticScore::new(problems::ring2d(), *sde.schedule());
/// let grid = TimeGrid::log_snr(sde.schedule(), 20).unwrap();
/// let ddim = Ddim::new(sde, grid).unwrap(); // η = 0
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
/// let run = ddim.sample(&model, 500, 2, &mut rng).unwrap();
/// assert_eq!(run.nfe, 20);
/// // Samples land on the ring of radius 4.
/// let r = run.samples.rows().into_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / 500.0;
/// assert!((r - 4.0).abs() < 0.3);
/// assert!(Ddim::new(VpSde::<f64>::default(), TimeGrid::log_snr(&VpLinear::default(), 5).unwrap()).unwrap().eta(1.5).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Ddim<F, S> {
    sde: S,
    grid: TimeGrid<F>,
    eta: F,
    denoise_final: bool,
}

impl<F: Real, S: MarginalSde<F>> Ddim<F, S> {
    /// Deterministic DDIM (`η = 0`) on a decreasing grid inside the SDE's range.
    pub fn new(sde: S, grid: TimeGrid<F>) -> Result<Self> {
        check_grid_range(&grid, sde.t_range())?;
        Ok(Self {
            sde,
            grid,
            eta: F::zero(),
            denoise_final: false,
        })
    }
    /// Set `η ∈ [0, 1]` (0: deterministic, 1: ancestral).
    pub fn eta(mut self, eta: F) -> Result<Self> {
        self.eta = crate::check::unit_interval("eta", eta)?;
        Ok(self)
    }
    /// After the last step, replace the state by its Tweedie denoise `x̂₀` (one more NFE).
    pub fn denoise_final(mut self, on: bool) -> Self {
        self.denoise_final = on;
        self
    }
    /// The grid.
    pub fn grid(&self) -> &TimeGrid<F> {
        &self.grid
    }
}

impl<F: Real, S: MarginalSde<F>> Sampler<F> for Ddim<F, S> {
    fn run_observed(
        &self,
        model: &dyn ScoreModel<F>,
        x: Array2<F>,
        rng: &mut dyn RngCore,
        observer: &mut dyn Observer<F>,
    ) -> Result<Run<F>> {
        check_initial(model, &x.view())?;
        let sched = self.sde.schedule();
        let mut x = super::standard_layout(x);
        let mut x0 = Array2::<F>::zeros(x.raw_dim());
        let stochastic = self.eta > F::zero();
        let (mut z, mut noise) = step_noise(stochastic, x.dim(), rng);
        let mut nfe = 0;
        for (i, (t, s)) in self.grid.pairs().enumerate() {
            data_prediction(model, sched, x.view(), t, x0.view_mut())?;
            nfe += 1;
            let (a_t, s_t) = (sched.alpha(t), sched.sigma(t));
            let (a_s, s_s) = (sched.alpha(s), sched.sigma(s));
            let h = sched.log_snr(s) - sched.log_snr(t);
            if stochastic {
                let c = self.eta * s_s * (-(-F::lit(2.0) * h).exp_m1()).max(F::zero()).sqrt();
                let k = (s_s * s_s - c * c).max(F::zero()).sqrt() / s_t;
                noise.fill(z.view_mut());
                Zip::from(&mut x)
                    .and(&x0)
                    .and(&z)
                    .for_each(|x, &d, &z| *x = a_s * d + k * (*x - a_t * d) + c * z);
            } else {
                // x_s = (σ_s/σ_t) x_t + α_s (1 − e^{−h}) x̂₀  (Lu et al. 2022b, eq. 8, k = 1).
                let r = s_s / s_t;
                let c = -a_s * (-h).exp_m1();
                Zip::from(&mut x)
                    .and(&x0)
                    .for_each(|x, &d| *x = r * *x + c * d);
            }
            crate::observe::after_step(observer, i + 1, s, &mut x)?;
        }
        let steps = self.grid.steps();
        if self.denoise_final {
            let t = self.grid.times()[steps];
            data_prediction(model, sched, x.view(), t, x0.view_mut())?;
            nfe += 1;
            x.assign(&x0);
        }
        Ok(Run::new(x, nfe, steps))
    }
    fn initial_state(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        self.sde.sample_prior(n, dim, rng)
    }
}
