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

use super::driver::{Advance, GridSampler, Plan, StepContext, StepInfo, StepMethod};
use crate::error::Result;
use crate::grid::TimeGrid;
use crate::num::Real;
use crate::sde::MarginalSde;
use crate::tweedie::denoise_into;
use ndarray::{Array2, Zip};
use rand::RngCore;

/// One DDIM step with stochasticity `η ∈ [0, 1]` (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct DdimStep<F, S> {
    sde: S,
    eta: F,
}

/// Per-run buffers of DDIM: the data prediction and (for `η > 0`) the noise.
#[derive(Debug)]
pub struct DdimState<F> {
    x0: Array2<F>,
    z: Array2<F>,
}

impl<F: Real, S: MarginalSde<F>> StepMethod<F> for DdimStep<F, S> {
    type State = DdimState<F>;

    fn check_plan(&self, plan: &Plan<F>) -> Result<()> {
        plan.check_sampling_grid(self.sde.t_range())
    }
    fn is_stochastic(&self) -> bool {
        self.eta > F::zero()
    }
    fn initial_state(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        self.sde.sample_prior(n, dim, rng)
    }
    fn initial_rows(
        &self,
        seed: u64,
        rows: std::ops::Range<usize>,
        dim: usize,
    ) -> Result<Array2<F>> {
        self.sde.sample_prior_rows(seed, rows, dim)
    }
    fn init(&self, _: &mut StepContext<'_, F>, x: &Array2<F>, _: &Plan<F>) -> Result<Self::State> {
        let z = if self.is_stochastic() {
            Array2::zeros(x.raw_dim())
        } else {
            Array2::zeros((0, 0))
        };
        Ok(DdimState {
            x0: Array2::zeros(x.raw_dim()),
            z,
        })
    }
    fn step(
        &self,
        ctx: &mut StepContext<'_, F>,
        st: &mut DdimState<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<Advance<F>> {
        let sched = self.sde.schedule();
        let (t, s) = (step.t, step.t_next);
        denoise_into(ctx.model(), sched, x.view(), t, st.x0.view_mut())?;
        let (a_t, s_t) = (sched.alpha(t), sched.sigma(t));
        let (a_s, s_s) = (sched.alpha(s), sched.sigma(s));
        let h = sched.log_snr(s) - sched.log_snr(t);
        if self.is_stochastic() {
            let c = self.eta * s_s * (-(-F::lit(2.0) * h).exp_m1()).max(F::zero()).sqrt();
            let k = (s_s * s_s - c * c).max(F::zero()).sqrt() / s_t;
            ctx.noise()?.fill(st.z.view_mut());
            Zip::from(&mut *x)
                .and(&st.x0)
                .and(&st.z)
                .for_each(|x, &d, &z| *x = a_s * d + k * (*x - a_t * d) + c * z);
        } else {
            // x_s = (σ_s/σ_t) x_t + α_s (1 − e^{−h}) x̂₀  (Lu et al. 2022b, eq. 8, k = 1).
            let r = s_s / s_t;
            let c = -a_s * (-h).exp_m1();
            Zip::from(&mut *x)
                .and(&st.x0)
                .for_each(|x, &d| *x = r * *x + c * d);
        }
        Ok(Advance::Reached)
    }
    fn marginal(&self, t: F) -> Option<(F, F)> {
        let sch = self.sde.schedule();
        Some((sch.alpha(t), sch.sigma(t)))
    }
    fn nfe_per_step(&self) -> Option<usize> {
        Some(1)
    }
}

/// The DDIM sampler with stochasticity `η ∈ [0, 1]` (Song, Meng & Ermon 2021, eq. 12): the
/// [`GridSampler`] of a [`DdimStep`].
///
/// One NFE per step; with [`GridSampler::denoise_final`] one more for a final Tweedie
/// denoise (the output is then `x̂₀` at the last grid time). `η = 0` draws no random numbers.
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::Ddim;
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
pub type Ddim<F, S> = GridSampler<F, DdimStep<F, S>>;

impl<F: Real, S: MarginalSde<F>> GridSampler<F, DdimStep<F, S>> {
    /// Deterministic DDIM (`η = 0`) on a decreasing grid inside the SDE's range.
    pub fn new(sde: S, grid: TimeGrid<F>) -> Result<Self> {
        GridSampler::with_grid(
            DdimStep {
                sde,
                eta: F::zero(),
            },
            grid,
        )
    }
    /// Set `η ∈ [0, 1]` (0: deterministic, 1: ancestral).
    pub fn eta(mut self, eta: F) -> Result<Self> {
        self.method.eta = crate::check::unit_interval("eta", eta)?;
        Ok(self)
    }
}
