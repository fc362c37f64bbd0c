//! A progress bar for long runs (feature `progress`, built on `indicatif`).
//!
//! [`ProgressBar`] is an [`Observer`]: pass it to [`Sampler::run_with`](crate::Sampler::run_with)
//! and it shows the step (of the total, when given), the time `t` reached, and score
//! evaluations per second. Score evaluations are counted by wrapping the model with
//! [`ProgressBar::counting`]; without the wrapper the bar shows steps per second instead.
//!
//! The bar draws on standard error and only when standard error is a terminal, so logs,
//! pipes and CI output stay clean; the counts are kept either way. Library code never
//! creates one: it is the caller's choice.
//!
//! ```
//! use score_sde::prelude::*;
//! use score_sde::progress::ProgressBar;
//! use score_sde::sample::DpmSolverPp;
//! use rand::SeedableRng;
//!
//! let sde = VpSde::<f64>::default();
//! let model = AnalyticScore::new(problems::ring2d(), *sde.schedule());
//! let sampler = DpmSolverPp::new(sde.clone(), TimeGrid::log_snr(sde.schedule(), 20)?)?;
//! let mut bar = ProgressBar::new(Some(20)).message("DPM-Solver++ 2M");
//! let counted = bar.counting(&model);
//! let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
//! let x = sampler.initial_state(256, 2, &mut rng)?;
//! let run = sampler.run_with(&counted, x, &mut rng, &mut bar)?;
//! bar.finish();
//! assert_eq!(bar.steps(), run.steps);
//! assert_eq!(bar.score_evals(), run.nfe);
//! # Ok::<(), score_sde::Error>(())
//! ```

use crate::error::Result;
use crate::num::Real;
use crate::observe::Observer;
use crate::score::ScoreModel;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A progress-bar [`Observer`]: step, `t`, and score evaluations (or steps) per second.
#[derive(Debug)]
pub struct ProgressBar {
    bar: indicatif::ProgressBar,
    nfe: Arc<AtomicUsize>,
    counting: bool,
    steps: usize,
    last_t: Option<f64>,
    start: Instant,
}

impl ProgressBar {
    /// A bar for a run of `total_steps` steps (`None`: unknown, shown as a counter). Drawn on
    /// standard error when it is a terminal, hidden otherwise.
    pub fn new(total_steps: Option<usize>) -> Self {
        let bar = match total_steps {
            Some(n) => indicatif::ProgressBar::new(n as u64),
            None => indicatif::ProgressBar::no_length(),
        };
        Self::with_bar(bar, total_steps.is_some())
    }

    /// A bar that never draws (for tests, or to keep the counts without output).
    pub fn hidden(total_steps: Option<usize>) -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(
            total_steps.map(|n| n as u64),
            indicatif::ProgressDrawTarget::hidden(),
        );
        Self::with_bar(bar, total_steps.is_some())
    }

    fn with_bar(bar: indicatif::ProgressBar, bounded: bool) -> Self {
        let template = if bounded {
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} {prefix}"
        } else {
            "{msg} [{elapsed_precise}] step {pos} {prefix}"
        };
        // The templates are constants and valid; fall back to the default style if not.
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        // Redraw on a timer too, so slow steps still show the elapsed time moving.
        bar.enable_steady_tick(Duration::from_millis(250));
        Self {
            bar,
            nfe: Arc::new(AtomicUsize::new(0)),
            counting: false,
            steps: 0,
            last_t: None,
            start: Instant::now(),
        }
    }

    /// Text shown before the bar (e.g. the sampler's name).
    pub fn message(self, msg: impl Into<String>) -> Self {
        self.bar.set_message(msg.into());
        self
    }

    /// Wrap `model` so every batch score evaluation is counted by this bar.
    pub fn counting<'a, F: Real>(&mut self, model: &'a dyn ScoreModel<F>) -> Counting<'a, F> {
        self.counting = true;
        Counting {
            inner: model,
            nfe: Arc::clone(&self.nfe),
        }
    }

    /// Steps observed so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The time `t` of the last observed step.
    pub fn last_t(&self) -> Option<f64> {
        self.last_t
    }

    /// Score evaluations counted through [`ProgressBar::counting`] wrappers.
    pub fn score_evals(&self) -> usize {
        self.nfe.load(Ordering::Relaxed)
    }

    /// Score evaluations (or, without a counting wrapper, steps) per second since creation.
    pub fn rate(&self) -> f64 {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let count = if self.counting {
            self.score_evals()
        } else {
            self.steps
        };
        count as f64 / secs
    }

    /// The status text after the bar: `t`, and the evaluation rate.
    pub fn status(&self) -> String {
        let t = self
            .last_t
            .map_or_else(|| "-".to_string(), |t| format!("{t:.4}"));
        if self.counting {
            format!("t {t}  {:.0} score evals/s", self.rate())
        } else {
            format!("t {t}  {:.1} steps/s", self.rate())
        }
    }

    /// Stop the bar, leaving its last state on screen.
    pub fn finish(&self) {
        self.bar.set_prefix(self.status());
        self.bar.finish();
    }
}

impl<F: Real> Observer<F> for ProgressBar {
    fn observe(&mut self, step: usize, t: F, _x: ArrayView2<F>) -> Result<()> {
        self.steps = step;
        self.last_t = Some(t.as_f64());
        self.bar.set_position(step as u64);
        self.bar.set_prefix(self.status());
        Ok(())
    }
}

/// A [`ScoreModel`] that counts batch evaluations for a [`ProgressBar`]
/// (made by [`ProgressBar::counting`]). `score` and `score_rows` count one each.
pub struct Counting<'a, F> {
    inner: &'a dyn ScoreModel<F>,
    nfe: Arc<AtomicUsize>,
}

impl<F> std::fmt::Debug for Counting<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counting")
            .field("nfe", &self.nfe.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<F: Real> ScoreModel<F> for Counting<'_, F> {
    fn score(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()> {
        self.nfe.fetch_add(1, Ordering::Relaxed);
        self.inner.score(x, t, out)
    }
    fn score_rows(&self, x: ArrayView2<F>, t: ArrayView1<F>, out: ArrayViewMut2<F>) -> Result<()> {
        self.nfe.fetch_add(1, Ordering::Relaxed);
        self.inner.score_rows(x, t, out)
    }
    fn divergence(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut1<F>) -> Option<Result<()>> {
        self.inner.divergence(x, t, out)
    }
    fn dim(&self) -> Option<usize> {
        self.inner.dim()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::ScoreFn;
    use ndarray::{Array2, array};

    #[test]
    fn counts_steps_time_and_evaluations_without_a_terminal() {
        let mut bar = ProgressBar::hidden(Some(3));
        let model = ScoreFn::new(|x: ArrayView2<f64>, _t: f64, mut out: ArrayViewMut2<f64>| {
            out.assign(&(-&x));
            Ok(())
        });
        let counted = bar.counting(&model);
        let x = array![[1.0, 2.0]];
        let mut s = Array2::zeros((1, 2));
        for _ in 0..5 {
            counted.score(x.view(), 0.5, s.view_mut()).unwrap();
        }
        counted
            .score_rows(x.view(), array![0.1].view(), s.view_mut())
            .unwrap();
        assert_eq!(s, array![[-1.0, -2.0]]);
        for (step, t) in [(1, 0.9), (2, 0.6), (3, 0.3)] {
            bar.observe(step, t, x.view()).unwrap();
        }
        assert_eq!(bar.steps(), 3);
        assert_eq!(bar.last_t(), Some(0.3));
        assert_eq!(bar.score_evals(), 6);
        assert!(bar.rate() > 0.0);
        assert!(bar.status().contains("score evals/s"));
        bar.finish();
    }

    #[test]
    fn without_a_counting_wrapper_the_rate_is_steps() {
        let mut bar = ProgressBar::hidden(None);
        Observer::<f64>::observe(&mut bar, 1, 1.0, array![[0.0]].view()).unwrap();
        assert_eq!(bar.score_evals(), 0);
        assert!(bar.status().contains("steps/s"));
    }
}
