//! Euler-ancestral sampling (k-diffusion's `sample_euler_ancestral`; the ancestral split of
//! Ho et al. 2020's posterior step into a deterministic and a noise part, in the EDM
//! coordinates `x̃ = x/α`, `σ̃ = σ/α` of [`edm`](super::edm)).

use super::driver::{Advance, GridSampler, Plan, StepContext, StepInfo, StepMethod};
use super::edm::{denoise_tilde, scale};
use super::noise_table::{NoiseTable, draw};
use crate::error::Result;
use crate::grid::TimeGrid;
use crate::num::Real;
use crate::sde::MarginalSde;
use ndarray::{Array2, Zip};
use rand::RngCore;

/// One Euler-ancestral step (see [`EulerAncestral`]).
#[derive(Debug, Clone)]
pub struct EulerAncestralStep<F, S> {
    sde: S,
    eta: F,
    s_noise: F,
    noise: Option<NoiseTable<F>>,
}

/// Per-run buffers of Euler-ancestral sampling.
#[derive(Debug)]
pub struct EulerAncestralState<F> {
    xs: Array2<F>,
    den: Array2<F>,
    z: Array2<F>,
}

impl<F: Real, S: MarginalSde<F>> StepMethod<F> for EulerAncestralStep<F, S> {
    type State = EulerAncestralState<F>;

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
        Ok(EulerAncestralState {
            xs: Array2::zeros(x.raw_dim()),
            den: Array2::zeros(x.raw_dim()),
            z: if self.is_stochastic() {
                Array2::zeros(x.raw_dim())
            } else {
                Array2::zeros((0, 0))
            },
        })
    }
    fn step(
        &self,
        ctx: &mut StepContext<'_, F>,
        st: &mut EulerAncestralState<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<Advance<F>> {
        let sched = self.sde.schedule();
        let (t_i, t_n) = (step.t, step.t_next);
        scale(x, F::one() / sched.alpha(t_i));
        let (sig_i, sig_n) = (sched.noise_level(t_i), sched.noise_level(t_n));
        denoise_tilde(ctx.model(), sched, x, t_i, &mut st.xs, &mut st.den)?;
        let up = (self.eta
            * (sig_n * sig_n * (sig_i * sig_i - sig_n * sig_n) / (sig_i * sig_i))
                .max(F::zero())
                .sqrt())
        .min(sig_n);
        let down = (sig_n * sig_n - up * up).max(F::zero()).sqrt();
        // x̃ + (σ_down − σ_i)(x̃ − D)/σ_i = D + (σ_down/σ_i)(x̃ − D).
        let ratio = down / sig_i;
        if self.is_stochastic() {
            draw(self.noise.as_ref(), ctx, step.index, st.z.view_mut())?;
            let c = up * self.s_noise;
            Zip::from(&mut *x)
                .and(&st.den)
                .and(&st.z)
                .for_each(|x, &dn, &z| *x = dn + ratio * (*x - dn) + c * z);
        } else {
            Zip::from(&mut *x)
                .and(&st.den)
                .for_each(|x, &dn| *x = dn + ratio * (*x - dn));
        }
        scale(x, sched.alpha(t_n));
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

/// Euler-ancestral sampling (k-diffusion's `sample_euler_ancestral`): the [`GridSampler`]
/// of an [`EulerAncestralStep`].
///
/// Per step `σ̃_i → σ̃_{i+1}`: `σ_up = min(σ̃_{i+1}, η √(σ̃_{i+1}² (σ̃_i² − σ̃_{i+1}²)/σ̃_i²))`,
/// `σ_down = √(σ̃_{i+1}² − σ_up²)`, `x̃ ← x̃ + (σ_down − σ̃_i)(x̃ − D(x̃; σ̃_i))/σ̃_i + S_noise σ_up z`.
/// One NFE per step (+1 with [`GridSampler::denoise_final`]). `η = 0` is the
/// deterministic Euler (DDIM) step in `σ̃`.
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::EulerAncestral;
/// use rand::SeedableRng;
/// let sde = VpSde::<f64>::default();
/// let model = AnalyticScore::new(problems::ring2d(), *sde.schedule());
/// let grid = TimeGrid::karras(sde.schedule(), 30, 7.0).unwrap();
/// let ea = EulerAncestral::new(sde, grid).unwrap();
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(4);
/// let run = ea.sample(&model, 500, 2, &mut rng).unwrap();
/// assert_eq!(run.nfe, 30);
/// let r = run.samples.rows().into_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / 500.0;
/// assert!((r - 4.0).abs() < 0.3);
/// ```
pub type EulerAncestral<F, S> = GridSampler<F, EulerAncestralStep<F, S>>;

impl<F: Real, S: MarginalSde<F>> GridSampler<F, EulerAncestralStep<F, S>> {
    /// Euler-ancestral with `η = 1`, `S_noise = 1` on a decreasing grid inside the range.
    pub fn new(sde: S, grid: TimeGrid<F>) -> Result<Self> {
        let step = EulerAncestralStep {
            sde,
            eta: F::one(),
            s_noise: F::one(),
            noise: None,
        };
        GridSampler::with_grid(step, grid)
    }
    /// `η ∈ [0, 1]`: the fraction of the ancestral noise.
    pub fn eta(mut self, eta: F) -> Result<Self> {
        self.method.eta = crate::check::unit_interval("eta", eta)?;
        Ok(self)
    }
    /// `S_noise > 0`: scale of the added noise.
    pub fn s_noise(mut self, s_noise: F) -> Result<Self> {
        self.method.s_noise = crate::check::positive("s_noise", s_noise)?;
        Ok(self)
    }
    /// Take step `i`'s noise from entry `i` of `table` instead of the per-row streams (see
    /// [`NoiseTable`]): to reproduce another library's run.
    pub fn noise_table(mut self, table: NoiseTable<F>) -> Self {
        self.method.noise = Some(table);
        self
    }
}
