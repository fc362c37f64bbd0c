//! Observers: hooks a sampler calls after every step.
//!
//! A sampler calls [`Observer::observe`] with the step index (1-based: the number of
//! steps done), the time reached and a view of the state. Returning an error stops the
//! run with that error. [`FiniteCheck`] — on by default in [`Sampler::run`](crate::Sampler::run)
//! — stops with [`Error::Diverged`] naming the step and row where the state first turned
//! non-finite.
//!
//! ```
//! use score_sde::prelude::*;
//! use score_sde::sample::Ddim;
//! use rand::SeedableRng;
//! let sde = VpSde::<f64>::default();
//! let model = AnalyticScore::new(problems::ring2d(), *sde.schedule());
//! let sampler = Ddim::new(sde.clone(), TimeGrid::quadratic(sde.schedule(), 10)?)?;
//! let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
//! let x = sampler.initial_state(100, 2, &mut rng)?;
//! // Keep every 5th state of the first 3 rows.
//! let mut paths = Trajectory::new(5, Some(3));
//! sampler.run_with(&model, x, &mut rng, &mut paths)?;
//! assert_eq!(paths.frames().len(), 2);
//! assert_eq!(paths.frames()[1].2.dim(), (3, 2));
//! # Ok::<(), score_sde::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::num::Real;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};

/// A hook called after every sampler step.
pub trait Observer<F: Real> {
    /// Called after step `step` (1-based) reached time `t` with state `x`.
    fn observe(&mut self, step: usize, t: F, x: ArrayView2<F>) -> Result<()>;

    /// Called after step `step`, before [`Observer::observe`], with the state mutable:
    /// a hook for constraints such as imputation (replacing known coordinates, Song et al.
    /// 2021, App. I.2). The default leaves the state alone.
    fn constrain(&mut self, step: usize, t: F, x: ArrayViewMut2<F>) -> Result<()> {
        let _ = (step, t, x);
        Ok(())
    }

    /// Whether [`Observer::constrain`] may change the state (the default: no). A sampler
    /// that caches a function of the state from one step to the next (an FSAL stage)
    /// recomputes it after each step when this is true.
    fn constrains(&self) -> bool {
        false
    }
}

impl<F: Real, O: Observer<F> + ?Sized> Observer<F> for &mut O {
    fn observe(&mut self, step: usize, t: F, x: ArrayView2<F>) -> Result<()> {
        (**self).observe(step, t, x)
    }
    fn constrain(&mut self, step: usize, t: F, x: ArrayViewMut2<F>) -> Result<()> {
        (**self).constrain(step, t, x)
    }
    fn constrains(&self) -> bool {
        (**self).constrains()
    }
}
impl<F: Real, O: Observer<F> + ?Sized> Observer<F> for Box<O> {
    fn observe(&mut self, step: usize, t: F, x: ArrayView2<F>) -> Result<()> {
        (**self).observe(step, t, x)
    }
    fn constrain(&mut self, step: usize, t: F, x: ArrayViewMut2<F>) -> Result<()> {
        (**self).constrain(step, t, x)
    }
    fn constrains(&self) -> bool {
        (**self).constrains()
    }
}

/// What a sampler calls after each step: [`Observer::constrain`] (which may change the
/// state), then [`Observer::observe`].
pub fn after_step<F: Real>(
    observer: &mut dyn Observer<F>,
    step: usize,
    t: F,
    x: &mut Array2<F>,
) -> Result<()> {
    observer.constrain(step, t, x.view_mut())?;
    observer.observe(step, t, x.view())
}

/// Does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;
impl<F: Real> Observer<F> for NoObserver {
    fn observe(&mut self, _step: usize, _t: F, _x: ArrayView2<F>) -> Result<()> {
        Ok(())
    }
}

/// Stops the run with [`Error::Diverged`] when the state has a NaN or infinity.
///
/// ```
/// use score_sde::observe::{FiniteCheck, Observer};
/// use score_sde::Error;
/// use ndarray::array;
/// let x = array![[0.0, 1.0], [f64::NAN, 0.0]];
/// let err = FiniteCheck.observe(7, 0.5, x.view()).unwrap_err();
/// assert!(matches!(err, Error::Diverged { step: 7, row: 1, .. }));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct FiniteCheck;
impl<F: Real> Observer<F> for FiniteCheck {
    fn observe(&mut self, step: usize, t: F, x: ArrayView2<F>) -> Result<()> {
        if crate::check::all_finite(&x) {
            return Ok(());
        }
        let row = x
            .axis_iter(Axis(0))
            .position(|r| r.iter().any(|v| !v.is_finite()))
            .unwrap_or(0);
        Err(Error::Diverged {
            step,
            t: t.as_f64(),
            row,
        })
    }
}

/// Runs two observers in turn (the first error wins).
#[derive(Debug, Clone, Default)]
pub struct Chain<A, B>(pub A, pub B);
impl<F: Real, A: Observer<F>, B: Observer<F>> Observer<F> for Chain<A, B> {
    fn observe(&mut self, step: usize, t: F, x: ArrayView2<F>) -> Result<()> {
        self.0.observe(step, t, x)?;
        self.1.observe(step, t, x)
    }
    fn constrain(&mut self, step: usize, t: F, mut x: ArrayViewMut2<F>) -> Result<()> {
        self.0.constrain(step, t, x.view_mut())?;
        self.1.constrain(step, t, x)
    }
    fn constrains(&self) -> bool {
        self.0.constrains() || self.1.constrains()
    }
}

/// An observer from a closure `FnMut(step, t, x) -> Result<()>`.
pub struct ObserverFn<C>(pub C);
impl<C> std::fmt::Debug for ObserverFn<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObserverFn")
    }
}
impl<F: Real, C: FnMut(usize, F, ArrayView2<F>) -> Result<()>> Observer<F> for ObserverFn<C> {
    fn observe(&mut self, step: usize, t: F, x: ArrayView2<F>) -> Result<()> {
        (self.0)(step, t, x)
    }
}

/// Records the state (or the first `rows` rows of it) every `every` steps.
///
/// ```
/// use score_sde::observe::{Observer, Trajectory};
/// use ndarray::array;
/// let mut tr = Trajectory::new(2, Some(1));
/// for step in 1..=4 {
///     tr.observe(step, step as f64, array![[step as f64], [0.0]].view()).unwrap();
/// }
/// assert_eq!(tr.frames().len(), 2);
/// assert_eq!(tr.frames()[1].2, array![[4.0]]);
/// ```
#[derive(Debug, Clone)]
pub struct Trajectory<F> {
    every: usize,
    rows: Option<usize>,
    frames: Vec<(usize, F, Array2<F>)>,
}
impl<F: Real> Trajectory<F> {
    /// Record every `every`-th step (at least 1), keeping the first `rows` rows (all if `None`).
    pub fn new(every: usize, rows: Option<usize>) -> Self {
        Self {
            every: every.max(1),
            rows,
            frames: Vec::new(),
        }
    }
    /// The recorded `(step, t, state)` frames.
    pub fn frames(&self) -> &[(usize, F, Array2<F>)] {
        &self.frames
    }
    /// Take the frames out.
    pub fn into_frames(self) -> Vec<(usize, F, Array2<F>)> {
        self.frames
    }
}
impl<F: Real> Observer<F> for Trajectory<F> {
    fn observe(&mut self, step: usize, t: F, x: ArrayView2<F>) -> Result<()> {
        if step % self.every == 0 {
            let n = self.rows.map_or(x.nrows(), |r| r.min(x.nrows()));
            self.frames
                .push((step, t, x.slice(ndarray::s![..n, ..]).to_owned()));
        }
        Ok(())
    }
}
