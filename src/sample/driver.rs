//! One driver for every sampler: a [`StepMethod`] advances the batch by one step; the
//! [`GridSampler`] around it owns everything else.
//!
//! The split follows diffrax (`AbstractSolver.init/step` driven by `diffeqsolve`) and
//! argmin (`Solver::next_iter` driven by an `Executor`), adapted to batched score models:
//!
//! | the driver ([`GridSampler`]) | the method ([`StepMethod`]) |
//! |---|---|
//! | input checks (non-empty, finite, the model's dimension), standard layout | the update of one step, on the whole batch |
//! | the per-row noise streams ([`RowNoise`], seeded once per run from the caller's RNG, only for stochastic methods) | its per-run state: buffers made once, a multistep method's history |
//! | the NFE count (every call through [`StepContext::model`] is counted) | which plans it accepts ([`StepMethod::check_plan`]) |
//! | the observer after **every** step, the final denoise included (constraints such as [`Imputation`](crate::condition::Imputation) first, then observation — the non-finite check of [`Sampler::run`] is one) | the marginal `(α, σ)` for the final Tweedie denoise |
//! | the optional final Tweedie denoise `x̂₀ = (x + σ² s)/α` | the initial state (the SDE's prior) |
//!
//! A [`Plan`] says how time advances: a [`TimeGrid`] (step `i` from `t_i` to `t_{i+1}`),
//! levels that may repeat (Langevin MCMC at a fixed or annealed level), or a span that an
//! adaptive method crosses in steps of its own choosing.
//!
//! Writing a sampler is implementing [`StepMethod`] (see `docs/guide.md`, "Write your own
//! sampler", and `tests/custom_sampler.rs`): the method below is the reverse-time SDE's
//! Euler–Maruyama step for the VP SDE, in twenty lines.
//!
//! ```
//! use score_sde::prelude::*;
//! use score_sde::sample::{Advance, GridSampler, Plan, StepContext, StepInfo, StepMethod};
//! use ndarray::Array2;
//! use rand::SeedableRng;
//!
//! #[derive(Debug)]
//! struct MyEulerMaruyama(VpSde<f64>);
//!
//! impl StepMethod<f64> for MyEulerMaruyama {
//!     type State = Array2<f64>; // the score buffer, made once per run
//!     fn check_plan(&self, plan: &Plan<f64>) -> Result<()> {
//!         plan.check_sampling_grid(self.0.t_range())
//!     }
//!     fn is_stochastic(&self) -> bool {
//!         true
//!     }
//!     fn forward_sde(&self) -> Option<&dyn ForwardSde<f64>> {
//!         Some(&self.0) // initial states from its prior N(0, I)
//!     }
//!     fn init(&self, _: &mut StepContext<'_, f64>, x: &Array2<f64>, _: &Plan<f64>) -> Result<Array2<f64>> {
//!         Ok(Array2::zeros(x.raw_dim()))
//!     }
//!     fn step(&self, ctx: &mut StepContext<'_, f64>, score: &mut Array2<f64>, x: &mut Array2<f64>, step: &StepInfo<f64>) -> Result<Advance<f64>> {
//!         // x ← x − [f(t) x − g² s] h + g √h z  (Song et al. 2021, App. E)
//!         let (t, h) = (step.t, step.t - step.t_next);
//!         let (f, g2) = (self.0.schedule().f(t), self.0.schedule().g2(t));
//!         ctx.model().score(x.view(), t, score.view_mut())?;
//!         let c = if step.is_last() { 0.0 } else { (g2 * h).sqrt() };
//!         ctx.noise()?.update(x.view_mut(), score.view(), |x, s, z| x - (f * x - g2 * s) * h + c * z);
//!         Ok(Advance::Reached)
//!     }
//! }
//!
//! let sde = VpSde::<f64>::default();
//! let model = AnalyticScore::new(problems::ring2d(), *sde.schedule());
//! let sampler = GridSampler::with_grid(MyEulerMaruyama(sde.clone()), TimeGrid::uniform(sde.schedule(), 100)?)?;
//! let run = sampler.sample(&model, 500, 2, &mut rand_pcg::Pcg64::seed_from_u64(0))?;
//! assert_eq!(run.nfe, 100);
//! let r = run.samples.rows().into_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / 500.0;
//! assert!((r - 4.0).abs() < 0.2); // on the ring of radius 4
//! # Ok::<(), score_sde::Error>(())
//! ```

use super::{Run, RunSpec, Sampler, check_initial, standard_layout};
use crate::error::{Error, Result};
use crate::grid::TimeGrid;
use crate::num::{Real, RowNoise};
use crate::observe::{Observer, after_step};
use crate::score::ScoreModel;
use crate::sde::ForwardSde;
use crate::tweedie::tweedie_inplace;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};
use rand::RngCore;
use std::fmt::Debug;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How a [`GridSampler`] advances through time.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Plan<F> {
    /// Fixed steps over a grid: step `i` goes from `t_i` to `t_{i+1}`.
    Grid(TimeGrid<F>),
    /// Fixed steps at levels that may repeat (Langevin MCMC): step `i` runs at `levels[i + 1]`
    /// (`levels[0]` is where the chain starts). At least two finite entries.
    Levels(Vec<F>),
    /// Adaptive steps from `from` to `to`; the method chooses each step
    /// ([`Advance::To`], [`Advance::Rejected`]).
    Span {
        /// Where the integration starts.
        from: F,
        /// Where it ends.
        to: F,
    },
}

impl<F: Real> Plan<F> {
    /// Levels for MCMC: at least two finite entries.
    pub fn levels(levels: Vec<F>) -> Result<Self> {
        if levels.len() < 2 {
            return Err(Error::param(
                "levels",
                levels.len() as f64,
                "needs at least two entries (one step)",
            ));
        }
        crate::check::finite("levels", &ndarray::ArrayView1::from(&levels[..]))?;
        Ok(Plan::Levels(levels))
    }
    /// An adaptive span; both ends finite and distinct.
    pub fn span(from: F, to: F) -> Result<Self> {
        crate::check::finite_scalar("span start", from)?;
        crate::check::finite_scalar("span end", to)?;
        if from == to {
            return Err(Error::param(
                "span end",
                to.as_f64(),
                "must differ from the start",
            ));
        }
        Ok(Plan::Span { from, to })
    }
    /// The times of a fixed plan (the grid's or the levels), or `[from, to]` of a span.
    pub fn times(&self) -> &[F] {
        match self {
            Plan::Grid(g) => g.times(),
            Plan::Levels(v) => v,
            Plan::Span { from, .. } => std::slice::from_ref(from),
        }
    }
    /// Where the run starts.
    pub fn start(&self) -> F {
        match self {
            Plan::Grid(g) => g.times()[0],
            Plan::Levels(v) => v[0],
            Plan::Span { from, .. } => *from,
        }
    }
    /// Where the run ends (the time of the final denoise).
    pub fn end(&self) -> F {
        match self {
            Plan::Grid(g) => g.times()[g.steps()],
            Plan::Levels(v) => v[v.len() - 1],
            Plan::Span { to, .. } => *to,
        }
    }
    /// The number of steps of a fixed plan; `None` for a span.
    pub fn steps(&self) -> Option<usize> {
        match self {
            Plan::Grid(g) => Some(g.steps()),
            Plan::Levels(v) => Some(v.len() - 1),
            Plan::Span { .. } => None,
        }
    }
    /// The grid, if the plan is one.
    pub fn grid(&self) -> Option<&TimeGrid<F>> {
        match self {
            Plan::Grid(g) => Some(g),
            _ => None,
        }
    }
    /// The same plan run the other way (a grid reversed, a span's ends swapped, levels in
    /// reverse order): encoding instead of sampling.
    pub fn reversed(&self) -> Self {
        match self {
            Plan::Grid(g) => Plan::Grid(g.reversed()),
            Plan::Levels(v) => Plan::Levels(v.iter().rev().copied().collect()),
            Plan::Span { from, to } => Plan::Span {
                from: *to,
                to: *from,
            },
        }
    }
    /// Error unless this is a sampling grid (decreasing) inside `range`: the check of a
    /// method that runs on grids only.
    pub fn check_sampling_grid(&self, range: (F, F)) -> Result<()> {
        match self {
            Plan::Grid(g) => g.check_sampling(range),
            _ => Err(Error::Unsupported {
                what: "this plan",
                reason: "the method steps over a TimeGrid only".into(),
            }),
        }
    }
    /// Error unless this is a sampling grid or a decreasing span inside `range`.
    pub fn check_sampling(&self, range: (F, F)) -> Result<()> {
        match self {
            Plan::Span { from, to } => {
                crate::schedule::check_time(*from, range)?;
                crate::schedule::check_time(*to, range)?;
                if to >= from {
                    return Err(Error::param(
                        "span end",
                        to.as_f64(),
                        "a sampling span must run from T down towards t_min",
                    ));
                }
                Ok(())
            }
            _ => self.check_sampling_grid(range),
        }
    }
}

/// Where a step goes.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct StepInfo<F> {
    /// The step's 0-based index (for a span: the number of accepted steps so far).
    pub index: usize,
    /// The number of steps of a fixed plan; `None` for a span.
    pub steps: Option<usize>,
    /// The time the step starts from.
    pub t: F,
    /// The time it goes to: the next grid time, the level of an MCMC step, or the end of a
    /// span (an adaptive method may stop short of it).
    pub t_next: F,
}

impl<F: Real> StepInfo<F> {
    /// Whether this is the last step of a fixed plan.
    pub fn is_last(&self) -> bool {
        self.steps == Some(self.index + 1)
    }
    /// `t − t_next`: positive when sampling (time runs backwards).
    pub fn h(&self) -> F {
        self.t - self.t_next
    }
}

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Advance<F> {
    /// Reached [`StepInfo::t_next`] (every step of a fixed plan).
    Reached,
    /// An adaptive step accepted at this time (between `t` and `t_next`, not `t`).
    To(F),
    /// An adaptive step rejected: the state is unchanged, the method retries.
    Rejected,
}

/// The score model as a method sees it: every score call is counted (one NFE per call on
/// the batch, whatever its size).
struct Counted<'a, F: Real> {
    inner: &'a dyn ScoreModel<F>,
    calls: AtomicUsize,
}

impl<F: Real> ScoreModel<F> for Counted<'_, F> {
    fn score(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.score(x, t, out)
    }
    fn score_rows(&self, x: ArrayView2<F>, t: ArrayView1<F>, out: ArrayViewMut2<F>) -> Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.score_rows(x, t, out)
    }
    fn divergence(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut1<F>) -> Option<Result<()>> {
        self.inner.divergence(x, t, out)
    }
    fn dim(&self) -> Option<usize> {
        self.inner.dim()
    }
}

/// What the driver lends a step: the counted score model, the run's noise streams and the
/// observer's constraint (for methods that apply it inside a step too).
pub struct StepContext<'a, F: Real> {
    model: Counted<'a, F>,
    noise: Option<RowNoise>,
    constrained: bool,
    observer: &'a mut dyn Observer<F>,
    /// The 1-based number of the step in progress (what the observer is told).
    step: usize,
}

impl<F: Real> std::fmt::Debug for StepContext<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepContext")
            .field("nfe", &self.nfe())
            .field("noise", &self.noise)
            .field("constrained", &self.constrained)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl<'a, F: Real> StepContext<'a, F> {
    /// The score model; every call of [`ScoreModel::score`] or
    /// [`ScoreModel::score_rows`] through it counts as one NFE.
    pub fn model(&self) -> &dyn ScoreModel<F> {
        &self.model
    }
    /// The run's per-row noise streams (row `r` of the batch draws from stream `r`).
    ///
    /// Errors with [`Error::Unsupported`] when the method said it is deterministic
    /// ([`StepMethod::is_stochastic`] false): the driver then drew no seed.
    pub fn noise(&mut self) -> Result<&mut RowNoise> {
        self.noise.as_mut().ok_or_else(|| Error::Unsupported {
            what: "noise in a deterministic method",
            reason: "the method's is_stochastic() is false, so the run has no noise streams".into(),
        })
    }
    /// Score calls so far.
    pub fn nfe(&self) -> usize {
        self.model.calls.load(Ordering::Relaxed)
    }
    /// Whether the observer may change the state between steps
    /// ([`Observer::constrains`]): a method that caches a function of the state across
    /// steps (an FSAL stage) must recompute it.
    pub fn constrained(&self) -> bool {
        self.constrained
    }
    /// Apply the observer's constraint ([`Observer::constrain`]) to `x` at time `t` inside a
    /// step — as score_sde's inpainting does after each corrector step, not only after the
    /// predictor. The driver applies it after every step anyway; this is for sub-steps.
    pub fn constrain(&mut self, t: F, x: ArrayViewMut2<F>) -> Result<()> {
        if self.constrained {
            self.observer.constrain(self.step, t, x)?;
        }
        Ok(())
    }
}

/// One step of a sampling method, run by [`GridSampler`] (see the [module docs](self)).
///
/// Implement it for a sampler of your own; the built-in samplers are all implementations.
pub trait StepMethod<F: Real>: Send + Sync + Debug {
    /// Per-run state: buffers made once per run, a multistep method's history.
    type State;

    /// Error unless the method can run on `plan` (direction, time range, kind). Called
    /// when the sampler is built.
    fn check_plan(&self, plan: &Plan<F>) -> Result<()>;

    /// Whether steps draw noise. If so, the driver draws one `u64` from the caller's RNG
    /// per run and seeds per-row streams ([`StepContext::noise`]); if not, it draws nothing.
    fn is_stochastic(&self) -> bool;

    /// The forward SDE a reverse-time method runs backwards, whose prior gives the default
    /// initial states ([`StepMethod::initial_state`], [`StepMethod::initial_rows`]). `None`
    /// (the default) for a method that starts elsewhere, such as Langevin dynamics; it then
    /// implements those two itself.
    fn forward_sde(&self) -> Option<&dyn ForwardSde<F>> {
        None
    }

    /// Draw an initial batch of `n` rows in `dim` dimensions. The default draws from the
    /// prior of [`StepMethod::forward_sde`], and is [`Error::Unsupported`] without one.
    fn initial_state(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        match self.forward_sde() {
            Some(sde) => sde.sample_prior(n, dim, rng),
            None => Err(Error::Unsupported {
                what: "initial_state",
                reason: format!(
                    "{} has no forward SDE to draw a prior from",
                    super::type_label::<Self>()
                ),
            }),
        }
    }

    /// Make the per-run state for the checked, standard-layout batch `x`. May call the
    /// model (counted).
    fn init(
        &self,
        ctx: &mut StepContext<'_, F>,
        x: &Array2<F>,
        plan: &Plan<F>,
    ) -> Result<Self::State>;

    /// Advance `x` by one step. A fixed plan's step must return [`Advance::Reached`].
    fn step(
        &self,
        ctx: &mut StepContext<'_, F>,
        state: &mut Self::State,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<Advance<F>>;

    /// `(α(t), σ(t))` of the process's marginal at `t`, for the final Tweedie denoise
    /// `x̂₀ = (x + σ² s(x, t))/α`; `None` if the method's process has no such marginal.
    fn marginal(&self, t: F) -> Option<(F, F)> {
        let _ = t;
        None
    }

    /// Score calls per step of a fixed plan, if constant (for [`GridSampler::nfe`]).
    fn nfe_per_step(&self) -> Option<usize> {
        None
    }

    /// Score calls [`StepMethod::init`] makes.
    fn nfe_init(&self) -> usize {
        0
    }

    /// Report diagnostics of the finished run (an acceptance rate).
    fn finish(&self, state: Self::State, run: &mut Run<F>) {
        let _ = (state, run);
    }

    /// The initial states of rows `rows` of a run whose initial batch is drawn from `seed`:
    /// row `i` must be row `rows.start + i` of the whole batch (per-row streams,
    /// [`RowNoise::for_rows`]; for a prior, [`ForwardSde::sample_prior_rows`]). The default
    /// draws from the prior of [`StepMethod::forward_sde`], and is [`Error::Unsupported`]
    /// without one.
    fn initial_rows(&self, seed: u64, rows: Range<usize>, dim: usize) -> Result<Array2<F>> {
        match self.forward_sde() {
            Some(sde) => sde.sample_prior_rows(seed, rows, dim),
            None => Err(Error::Unsupported {
                what: "initial_rows",
                reason: format!(
                    "{} does not draw row-addressable initial states",
                    super::type_label::<Self>()
                ),
            }),
        }
    }

    /// Whether a row's result depends on that row alone (its initial state and its noise
    /// streams), so that a run can be split into row ranges. The default is `true`; a
    /// method that couples rows (a batch-mean step) says `false`, and
    /// [`Sampler::run_rows`] then refuses shards — as it does for every adaptive run over a
    /// [`Plan::Span`], whose step size the batch shares.
    fn is_batch_independent(&self) -> bool {
        true
    }
}

/// Which rows of which run a batch is, for [`GridSampler::drive`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunRows {
    /// The run's noise seed (`None` for a deterministic method).
    pub seed: Option<u64>,
    /// The batch's first row in the whole run.
    pub first: usize,
    /// Whether the final denoise (if configured) applies: off when encoding.
    pub denoise: bool,
}

/// A [`StepMethod`] run over a [`Plan`]: the one implementation of [`Sampler`] behind every
/// sampler of the crate (see the [module docs](self)).
///
/// The built-in samplers are type aliases of it with their own constructors —
/// [`Pc`](super::Pc), [`Ddim`](super::Ddim), [`DpmSolverPp`](super::DpmSolverPp),
/// [`EdmHeun`](super::EdmHeun), [`EulerAncestral`](super::EulerAncestral),
/// [`ProbabilityFlow`](super::ProbabilityFlow), [`Ula`](super::Ula),
/// [`Mala`](super::Mala), [`AnnealedLangevin`](super::AnnealedLangevin); a method of
/// your own is run with [`GridSampler::with_grid`] or [`GridSampler::with_plan`].
#[derive(Debug, Clone)]
pub struct GridSampler<F: Real, M> {
    pub(crate) method: M,
    pub(crate) plan: Plan<F>,
    pub(crate) denoise_final: bool,
}

impl<F: Real, M: StepMethod<F>> GridSampler<F, M> {
    /// Run `method` over a time grid (checked by [`StepMethod::check_plan`]).
    pub fn with_grid(method: M, grid: TimeGrid<F>) -> Result<Self> {
        Self::with_plan(method, Plan::Grid(grid))
    }
    /// Run `method` over any plan (checked by [`StepMethod::check_plan`]).
    pub fn with_plan(method: M, plan: Plan<F>) -> Result<Self> {
        method.check_plan(&plan)?;
        Ok(Self {
            method,
            plan,
            denoise_final: false,
        })
    }
    /// After the last step, replace the state by its Tweedie denoise
    /// `x̂₀ = (x + σ² s(x, t_end))/α` at the plan's end time (one more NFE), observed as one
    /// more step. Needs the method's [`marginal`](StepMethod::marginal) (an error at the
    /// start of a run otherwise).
    pub fn denoise_final(mut self, on: bool) -> Self {
        self.denoise_final = on;
        self
    }
    /// Whether the final denoise is on.
    pub fn denoises_final(&self) -> bool {
        self.denoise_final
    }
    /// The step method.
    pub fn method(&self) -> &M {
        &self.method
    }
    /// The plan.
    pub fn plan(&self) -> &Plan<F> {
        &self.plan
    }
    /// The grid, if the plan is one.
    pub fn grid(&self) -> Option<&TimeGrid<F>> {
        self.plan.grid()
    }
    /// The plan's times ([`Plan::times`]).
    pub fn times(&self) -> &[F] {
        self.plan.times()
    }
    /// Score calls a run makes, when the method's calls per step are fixed and the plan
    /// is; `None` otherwise or if the count overflows `usize`.
    pub fn nfe(&self) -> Option<usize> {
        let per = self.method.nfe_per_step()?;
        let steps = self.plan.steps()?;
        steps
            .checked_mul(per)?
            .checked_add(self.method.nfe_init())?
            .checked_add(usize::from(self.denoise_final))
    }

    /// The run over `plan` (the sampler's own, or reversed for encoding): `x` checked and
    /// in standard layout; `rows` says which rows of which seeded run `x` holds.
    pub(crate) fn drive(
        &self,
        plan: &Plan<F>,
        model: &dyn ScoreModel<F>,
        mut x: Array2<F>,
        rows: RunRows,
        observer: &mut dyn Observer<F>,
    ) -> Result<Run<F>> {
        let t_end = plan.end();
        let tweedie = match rows.denoise && self.denoise_final {
            false => None,
            true => Some(self.method.marginal(t_end).ok_or_else(|| {
                Error::Unsupported {
                    what: "denoise_final",
                    reason: "the method's process has no Gaussian marginal (α, σ) for Tweedie's \
                         formula (a linear SDE is needed)"
                        .into(),
                }
            })?),
        };
        let n = x.nrows();
        let constrained = observer.constrains();
        let mut ctx = StepContext {
            model: Counted {
                inner: model,
                calls: AtomicUsize::new(0),
            },
            noise: rows.seed.map(|s| RowNoise::for_rows(s, rows.first, n)),
            constrained,
            observer,
            step: 1,
        };
        let mut state = self.method.init(&mut ctx, &x, plan)?;
        let mut steps = 0usize;
        let mut rejected = 0usize;
        match plan {
            Plan::Span { from, to } => {
                let (mut t, to) = (*from, *to);
                while t != to {
                    let info = StepInfo {
                        index: steps,
                        steps: None,
                        t,
                        t_next: to,
                    };
                    let t_new = match self.method.step(&mut ctx, &mut state, &mut x, &info)? {
                        Advance::Rejected => {
                            rejected += 1;
                            continue;
                        }
                        Advance::Reached => to,
                        Advance::To(t_new) => t_new,
                    };
                    // Each accepted step must move towards `to` without passing it, or the
                    // loop would not end.
                    let forward = to > t;
                    let ok = if forward {
                        t_new > t && t_new <= to
                    } else {
                        t_new < t && t_new >= to
                    };
                    if !ok {
                        return Err(Error::Unsupported {
                            what: "an adaptive step",
                            reason: format!(
                                "{} moved from t = {:?} to {:?}, not towards {:?}",
                                super::type_label::<M>(),
                                t.as_f64(),
                                t_new.as_f64(),
                                to.as_f64()
                            ),
                        });
                    }
                    t = t_new;
                    steps += 1;
                    after_step(ctx.observer, steps, t, &mut x)?;
                    ctx.step = steps + 1;
                }
            }
            _ => {
                let times = plan.times();
                let n = times.len() - 1;
                for i in 0..n {
                    let info = StepInfo {
                        index: i,
                        steps: Some(n),
                        t: times[i],
                        t_next: times[i + 1],
                    };
                    match self.method.step(&mut ctx, &mut state, &mut x, &info)? {
                        Advance::Reached => {}
                        other => {
                            return Err(Error::Unsupported {
                                what: "a fixed plan's step",
                                reason: format!(
                                    "{} returned {other:?} on a fixed plan (expected Reached)",
                                    super::type_label::<M>()
                                ),
                            });
                        }
                    }
                    steps += 1;
                    after_step(ctx.observer, steps, info.t_next, &mut x)?;
                    ctx.step = steps + 1;
                }
            }
        }
        if let Some((alpha, sigma)) = tweedie {
            let mut s = Array2::<F>::zeros(x.raw_dim());
            ctx.model().score(x.view(), t_end, s.view_mut())?;
            tweedie_inplace(x.view(), alpha, sigma, s.view_mut());
            x = s;
            after_step(ctx.observer, steps + 1, t_end, &mut x)?;
        }
        let mut run = Run::new(x, ctx.nfe(), steps);
        run.rejected = rejected;
        self.method.finish(state, &mut run);
        Ok(run)
    }
}

impl<F: Real, M: StepMethod<F>> Sampler<F> for GridSampler<F, M> {
    fn run_observed(
        &self,
        model: &dyn ScoreModel<F>,
        x: Array2<F>,
        rng: &mut dyn RngCore,
        observer: &mut dyn Observer<F>,
    ) -> Result<Run<F>> {
        check_initial(model, &x.view())?;
        let rows = RunRows {
            seed: self.method.is_stochastic().then(|| rng.next_u64()),
            first: 0,
            denoise: true,
        };
        self.drive(&self.plan, model, standard_layout(x), rows, observer)
    }
    fn initial_state(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        self.method.initial_state(n, dim, rng)
    }
    fn initial_rows(&self, spec: &RunSpec, dim: usize) -> Result<Array2<F>> {
        check_spec(spec)?;
        self.method
            .initial_rows(spec.prior_seed(), spec.rows.clone(), dim)
    }
    fn run_rows(
        &self,
        model: &dyn ScoreModel<F>,
        x: Array2<F>,
        spec: &RunSpec,
        observer: &mut dyn Observer<F>,
    ) -> Result<Run<F>> {
        check_spec(spec)?;
        check_initial(model, &x.view())?;
        crate::check::same_shape(
            "initial batch (rows of the spec)",
            &[spec.len()],
            &[x.nrows()],
        )?;
        // Adaptive steps over a span share one step size across the batch (chosen from the
        // rows' errors together): those rows are coupled as well.
        let coupled = !self.method.is_batch_independent() || matches!(self.plan, Plan::Span { .. });
        if !spec.is_whole() && coupled {
            return Err(Error::Unsupported {
                what: "a shard of this sampler",
                reason: format!(
                    "{} couples the rows of a batch (a batch-mean step rule or a step size \
                     shared by the batch), so rows {:?} alone would differ from the whole run",
                    super::type_label::<M>(),
                    spec.rows
                ),
            });
        }
        let rows = RunRows {
            seed: self.method.is_stochastic().then(|| spec.noise_seed()),
            first: spec.rows.start,
            denoise: true,
        };
        self.drive(&self.plan, model, standard_layout(x), rows, observer)
    }
}

/// A spec built outside the constructors (its fields are public) can be inconsistent.
fn check_spec(spec: &RunSpec) -> Result<()> {
    if spec.rows.start >= spec.rows.end || spec.rows.end > spec.total {
        return Err(Error::param(
            "rows",
            spec.rows.end as f64,
            "a run spec needs a non-empty row range inside 0..total",
        ));
    }
    Ok(())
}
