//! The Metropolis-adjusted Langevin algorithm (Roberts & Tweedie 1996, §1.3; Besag 1994).

use super::Run;
use super::driver::{Advance, GridSampler, Plan, StepContext, StepInfo, StepMethod};
use super::ula::{fixed_level, gaussian_init, gaussian_rows, nonzero_steps, score_time};
use crate::check::positive;
use crate::error::{Error, Result};
use crate::num::Real;
use crate::score::LogDensity;
use ndarray::{Array1, Array2, Zip};
use rand::RngCore;

/// One MALA step on every row (see [`Mala`]).
#[derive(Debug, Clone)]
pub struct MalaStep<F, L> {
    target: L,
    step: F,
    init_std: F,
}

/// Per-run state of MALA: the chain's score and log-density, the proposal's, the noise and
/// the acceptance count.
#[derive(Debug)]
pub struct MalaState<F> {
    sx: Array2<F>,
    lx: Array1<F>,
    y: Array2<F>,
    sy: Array2<F>,
    ly: Array1<F>,
    z: Array2<F>,
    accepted: u64,
    proposals: u64,
}

fn first_nonfinite_row<F: Real>(a: &Array2<F>) -> Option<usize> {
    a.rows()
        .into_iter()
        .position(|r| r.iter().any(|v| !v.is_finite()))
}

impl<F: Real, L: LogDensity<F>> StepMethod<F> for MalaStep<F, L> {
    type State = MalaState<F>;

    fn check_plan(&self, plan: &Plan<F>) -> Result<()> {
        match plan {
            Plan::Levels(_) => Ok(()),
            _ => Err(Error::Unsupported {
                what: "MALA on a grid or span",
                reason: "MALA runs at fixed levels (Plan::Levels)".into(),
            }),
        }
    }
    fn is_stochastic(&self) -> bool {
        true
    }
    fn initial_state(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        gaussian_init(n, dim, self.init_std, rng)
    }
    fn initial_rows(
        &self,
        seed: u64,
        rows: std::ops::Range<usize>,
        dim: usize,
    ) -> Result<Array2<F>> {
        gaussian_rows(seed, rows, dim, self.init_std)
    }
    /// The chain's score and log-density at the initial state (one score call).
    fn init(
        &self,
        ctx: &mut StepContext<'_, F>,
        x: &Array2<F>,
        plan: &Plan<F>,
    ) -> Result<Self::State> {
        let (n, d) = x.dim();
        if let Some(td) = self.target.dim() {
            if td != d {
                return Err(Error::shape(
                    "initial batch (columns = target dimension)",
                    td,
                    d,
                ));
            }
        }
        let t = plan.start();
        let mut sx = Array2::<F>::zeros((n, d));
        ctx.model().score(x.view(), t, sx.view_mut())?;
        if let Some(row) = first_nonfinite_row(&sx) {
            return Err(Error::Diverged {
                step: 0,
                t: t.as_f64(),
                row,
            });
        }
        let mut lx = Array1::<F>::zeros(n);
        self.target.log_density(x.view(), lx.view_mut())?;
        Ok(MalaState {
            sx,
            lx,
            y: Array2::zeros((n, d)),
            sy: Array2::zeros((n, d)),
            ly: Array1::zeros(n),
            z: Array2::zeros((n, d)),
            accepted: 0,
            proposals: 0,
        })
    }
    fn step(
        &self,
        ctx: &mut StepContext<'_, F>,
        st: &mut MalaState<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<Advance<F>> {
        let (delta, t) = (self.step, step.t_next);
        if ctx.constrained() && step.index > 0 {
            // The observer may have changed the state since its score and log-density were
            // cached: recompute them (one more score call).
            ctx.model().score(x.view(), t, st.sx.view_mut())?;
            self.target.log_density(x.view(), st.lx.view_mut())?;
        }
        let (two, quarter_over_delta) = (F::lit(2.0), F::lit(0.25) / delta);
        let c = (two * delta).sqrt();
        let noise = ctx.noise()?;
        noise.fill(st.z.view_mut());
        Zip::from(&mut st.y)
            .and(&*x)
            .and(&st.sx)
            .and(&st.z)
            .for_each(|y, &x, &s, &z| *y = x + delta * s + c * z);
        ctx.model().score(st.y.view(), t, st.sy.view_mut())?;
        if let Some(row) = first_nonfinite_row(&st.sy) {
            return Err(Error::Diverged {
                step: step.index + 1,
                t: t.as_f64(),
                row,
            });
        }
        self.target.log_density(st.y.view(), st.ly.view_mut())?;
        let noise = ctx.noise()?;
        for r in 0..x.nrows() {
            let (yr, syr, zr) = (st.y.row(r), st.sy.row(r), st.z.row(r));
            let mut back = F::zero();
            Zip::from(&x.row(r))
                .and(&yr)
                .and(&syr)
                .for_each(|&x, &y, &s| {
                    let e = x - y - delta * s;
                    back += e * e;
                });
            // log u < log π(y) − log π(x) − ‖x − y − δ s(y)‖²/(4δ) + ‖z‖²/2
            let log_a = st.ly[r] - st.lx[r] - back * quarter_over_delta + F::lit(0.5) * zr.dot(&zr);
            let u = noise.uniform(r);
            if u.ln() < log_a.as_f64() {
                st.accepted += 1;
                x.row_mut(r).assign(&yr);
                st.sx.row_mut(r).assign(&syr);
                st.lx[r] = st.ly[r];
            }
        }
        st.proposals += x.nrows() as u64;
        Ok(Advance::Reached)
    }
    fn nfe_per_step(&self) -> Option<usize> {
        Some(1)
    }
    fn nfe_init(&self) -> usize {
        1
    }
    fn finish(&self, st: Self::State, run: &mut Run<F>) {
        if st.proposals > 0 {
            run.acceptance_rate = Some(st.accepted as f64 / st.proposals as f64);
        }
    }
}

/// The Metropolis-adjusted Langevin algorithm (Roberts & Tweedie 1996, §1.3; Besag 1994):
/// the [`GridSampler`] of a [`MalaStep`] at one level.
///
/// Proposal `y = x + δ s(x) + √(2δ) z`, `q(y | x) = N(y; x + δ s(x), 2δ I)`; accept with
/// probability `min(1, π(y) q(x | y) / (π(x) q(y | x)))`, i.e. when
///
/// ```text
/// log u < log π(y) − log π(x) − ‖x − y − δ s(y)‖²/(4δ) + ‖z‖²/2
/// ```
///
/// `π` is the [`LogDensity`]; `s` is the score model at [`score_time`](GridSampler::score_time)
/// and must be `∇ log π`. One score call per step plus one at the start (NFE = `steps + 1`);
/// log-density calls are not counted (an observer that constrains the state, such as
/// imputation, makes it recompute the cached score after each step: one more call per step).
/// [`Run::acceptance_rate`] reports the fraction of
/// accepted proposals over all rows and steps. Each row's Metropolis uniform comes from its
/// own stream, so rows are independent chains. A proposal whose score is non-finite stops
/// the run with [`Error::Diverged`] (step 0 for the initial state).
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::Mala;
/// use ndarray::array;
/// use rand::SeedableRng;
/// // A large step that would bias ULA (δ/v = 0.8); MALA still samples N(1, 0.25).
/// let target = GaussianMixture::gaussian(array![1.0_f64], array![[0.25]]).unwrap();
/// let model = AnalyticScore::new(target.clone(), Edm::default());
/// let mala = Mala::new(target, 0.2, 300).unwrap();
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(4);
/// let run = mala.sample(&model, 4000, 1, &mut rng).unwrap();
/// assert!((run.samples.var(0.0) - 0.25).abs() < 0.02);
/// assert!(run.acceptance_rate.unwrap() > 0.5);
/// ```
pub type Mala<F, L> = GridSampler<F, MalaStep<F, L>>;

impl<F: Real, L: LogDensity<F>> GridSampler<F, MalaStep<F, L>> {
    /// MALA on `target` with `steps ≥ 1` steps of size `step > 0`; score time 0; initial
    /// state `N(0, I)`.
    pub fn new(target: L, step: F, steps: usize) -> Result<Self> {
        let method = MalaStep {
            target,
            step: positive("step", step)?,
            init_std: F::one(),
        };
        GridSampler::with_plan(
            method,
            fixed_level(F::zero(), nonzero_steps("steps", steps)?)?,
        )
    }
    /// The time `t ≥ 0` at which the score model is evaluated.
    pub fn score_time(mut self, t: F) -> Result<Self> {
        let t = score_time(t)?;
        self.plan = fixed_level(t, self.plan.times().len() - 1)?;
        Ok(self)
    }
    /// Standard deviation of the `N(0, s² I)` initial state (`> 0`).
    pub fn initial_std(mut self, s: F) -> Result<Self> {
        self.method.init_std = positive("initial_std", s)?;
        Ok(self)
    }
    /// The target.
    pub fn target(&self) -> &L {
        &self.method.target
    }
}
