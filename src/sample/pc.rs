//! The predictor–corrector sampler (Song et al. 2021, §4.2, Alg. 1; score_sde's
//! `get_pc_sampler`).
//!
//! Over a decreasing [`TimeGrid`] `T = t_0 > t_1 > … > t_n = t_min`, step `i` runs the
//! corrector at `t_i` (its configured number of Langevin steps), then the predictor from
//! `t_i` to `t_{i+1}` — corrector before predictor, as score_sde does. The last predictor
//! step adds no noise (score_sde's `noise_removal`); [`Pc::denoise`] optionally applies
//! Tweedie's `x̂_0 = (x + σ² s)/α` at `t_min` afterwards (one more score call).
//!
//! NFE = `n · (1 + corrector steps) + [denoise]`. The observer is called after every grid
//! step (step `i + 1`, time `t_{i+1}`) and, with denoising, once more as step `n + 1` at
//! `t_min`.
//!
//! Differences from score_sde, all deliberate: the grid has `n + 1` points and the
//! predictor's `dt` is the grid spacing (score_sde uses `linspace(T, eps, N)` with
//! `dt = −1/N`, overshooting `eps` by one step); the reverse-diffusion predictor and the
//! corrector's `α_i` use the exact transition of the continuous schedule instead of a table
//! of `N` discrete betas indexed by `int(t (N−1)/T)`; noise comes from per-row streams
//! ([`RowNoise`]).

use super::corrector::{Corrector, LangevinCorrector, StepRule};
use crate::num::RowNoise;
use super::reverse_sde::{Buffers, Predictor, tweedie_step};
use super::{Run, Sampler, check_initial};
use crate::error::{Error, Result};
use crate::num::Real;
use crate::grid::TimeGrid;
use crate::observe::Observer;
use crate::score::ScoreModel;
use crate::sde::MarginalSde;
use ndarray::Array2;
use rand::RngCore;
use std::marker::PhantomData;

/// Predictor–corrector sampling of a [`MarginalSde`] over a [`TimeGrid`].
///
/// Built with a validated consuming builder; with no corrector it is plain reverse-SDE
/// sampling with the chosen [`Predictor`].
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::{Pc, Predictor, StepRule};
/// use rand::SeedableRng;
/// let sde = VpSde::<f64>::default();
/// let grid = TimeGrid::uniform(sde.schedule(), 100).unwrap();
/// let pc = Pc::new(sde.clone(), grid).unwrap()
///     .predictor(Predictor::ReverseDiffusion)
///     .snr(0.05).unwrap()                 // adds score_sde's Langevin corrector
///     .step_rule(StepRule::Sigma).unwrap()
///     .denoise(true);
/// let model = AnalyticScore::new(problems::ring2d::<f64>(), *sde.schedule());
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
/// let run = pc.sample(&model, 200, 2, &mut rng).unwrap();
/// assert_eq!(run.nfe, 100 * 2 + 1);
/// assert!(Pc::new(sde.clone(), TimeGrid::uniform(sde.schedule(), 10).unwrap()).unwrap()
///     .snr(-1.0).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Pc<F: Real, S> {
    sde: S,
    grid: TimeGrid<F>,
    predictor: Predictor,
    corrector: Corrector,
    denoise: bool,
    _f: PhantomData<fn() -> F>,
}

impl<F: Real, S: MarginalSde<F>> Pc<F, S> {
    /// Euler–Maruyama predictor, no corrector, no final denoising. The grid must run
    /// backwards in time (from `T` towards `t_min`) inside the SDE's time range.
    pub fn new(sde: S, grid: TimeGrid<F>) -> Result<Self> {
        if !grid.is_decreasing() {
            return Err(Error::param(
                "grid",
                grid.times()[0].as_f64(),
                "sampling grids must decrease in time (from T towards t_min)",
            ));
        }
        for &t in grid.times() {
            sde.schedule().check_t(t)?;
        }
        Ok(Self {
            sde,
            grid,
            predictor: Predictor::EulerMaruyama,
            corrector: Corrector::None,
            denoise: false,
            _f: PhantomData,
        })
    }
    /// Choose the predictor.
    pub fn predictor(mut self, p: Predictor) -> Self {
        self.predictor = p;
        self
    }
    /// Choose the corrector ([`Corrector::None`] for plain predictor sampling).
    pub fn corrector(mut self, c: Corrector) -> Self {
        self.corrector = c;
        self
    }
    fn langevin(&self) -> Result<LangevinCorrector> {
        match self.corrector {
            Corrector::Langevin(c) => Ok(c),
            _ => LangevinCorrector::new(0.16),
        }
    }
    /// Set the Langevin corrector's snr (`> 0`), adding score_sde's Langevin corrector
    /// (one step, batch-mean rule) if there is none.
    pub fn snr(mut self, snr: f64) -> Result<Self> {
        self.corrector = Corrector::Langevin(self.langevin()?.with_snr(snr)?);
        Ok(self)
    }
    /// Set the Langevin corrector's steps per grid time (`≥ 1`), adding the default
    /// corrector (snr 0.16) if there is none.
    pub fn corrector_steps(mut self, n: usize) -> Result<Self> {
        self.corrector = Corrector::Langevin(self.langevin()?.steps(n)?);
        Ok(self)
    }
    /// Set the Langevin corrector's step rule, adding the default corrector if there is none.
    pub fn step_rule(mut self, rule: StepRule) -> Result<Self> {
        self.corrector = Corrector::Langevin(self.langevin()?.rule(rule)?);
        Ok(self)
    }
    /// Apply Tweedie denoising at `t_min` after the last step (one more score call).
    pub fn denoise(mut self, on: bool) -> Self {
        self.denoise = on;
        self
    }
    /// The SDE.
    pub fn sde(&self) -> &S {
        &self.sde
    }
    /// The grid.
    pub fn grid(&self) -> &TimeGrid<F> {
        &self.grid
    }
    /// The predictor.
    pub fn predictor_kind(&self) -> Predictor {
        self.predictor
    }
    /// The corrector.
    pub fn corrector_kind(&self) -> Corrector {
        self.corrector
    }
    /// Score calls a run makes.
    pub fn nfe(&self) -> usize {
        self.grid.steps() * (1 + self.corrector.nfe_per_step()) + usize::from(self.denoise)
    }
}

impl<F: Real, S: MarginalSde<F>> Sampler<F> for Pc<F, S> {
    fn run_observed(
        &self,
        model: &dyn ScoreModel<F>,
        mut x: Array2<F>,
        rng: &mut dyn RngCore,
        observer: &mut dyn Observer<F>,
    ) -> Result<Run<F>> {
        check_initial(model, &x.view())?;
        let (n, d) = x.dim();
        let mut noise = RowNoise::from_rng(rng, n);
        // State, score, and a noise buffer only for the corrector (whose step size needs the
        // noise norms before the update): the predictors draw noise inside their update.
        let mut buf = match self.corrector {
            Corrector::None => Buffers::score_only(n, d),
            _ => Buffers::new(n, d),
        };
        let sch = self.sde.schedule();
        let steps = self.grid.steps();
        let mut nfe = 0;
        for (i, (t, t_next)) in self.grid.pairs().enumerate() {
            if let Corrector::Langevin(c) = &self.corrector {
                let r = sch.alpha(t) / sch.alpha(t_next);
                let alpha_i = r * r;
                let sigma = sch.sigma(t);
                for _ in 0..c.n_steps() {
                    c.step(model, &mut x, t, alpha_i, sigma, &mut noise, &mut buf)?;
                    nfe += 1;
                }
            }
            let last = i + 1 == steps;
            self.predictor.step(
                &self.sde, model, &mut x, t, t_next, last, &mut noise, &mut buf,
            )?;
            nfe += 1;
            crate::observe::after_step(observer, i + 1, t_next, &mut x)?;
        }
        if self.denoise {
            let t_end = self.grid.times()[steps];
            tweedie_step(&self.sde, model, &mut x, t_end, &mut buf)?;
            nfe += 1;
            crate::observe::after_step(observer, steps + 1, t_end, &mut x)?;
        }
        Ok(Run::new(x, nfe, steps))
    }

    fn initial_state(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        self.sde.sample_prior(n, dim, rng)
    }
}
