//! [`AnalyticScore`]: the exact score model of a diffused Gaussian mixture.

use super::kernel::safe::Failure;
use super::kernel::{self, Outputs, Workspace};
use super::{GaussianMixture, unrepresentable};
use crate::error::Result;
use crate::num::Real;
use crate::num::par::{ROW_BLOCK, row_blocks};
use crate::schedule::{Schedule, check_t_from_zero};
use crate::score::{ScoreModel, check_score_call};
use crate::{check, error::Error};
use ndarray::{ArrayView2, ArrayViewMut1, ArrayViewMut2};
use std::sync::Mutex;

// Bit-identical results for any thread count need a row's score to be the same whatever
// parallel block it is evaluated in: the kernel's own row blocks start at the call's first
// row and `ROW_BLOCK` (4096) is a multiple of their size, so every row meets the kernel at
// the same offset as in one call on the whole batch (`tests/parallel.rs` checks the result).
const _: () = assert!(ROW_BLOCK.is_power_of_two() && ROW_BLOCK >= 1024);

/// The failure of the lowest row among the row blocks of one call (blocks may run on
/// several threads, so the first to fail is not necessarily the lowest).
#[derive(Default)]
struct FirstFailure(Mutex<Option<(usize, Failure)>>);

impl FirstFailure {
    /// Record `r` of the block `xb` of `x` (its first row found from the addresses: `xb`
    /// is a row slice of `x`).
    fn note<F>(&self, x: &ArrayView2<F>, xb: &ArrayView2<F>, r: std::result::Result<(), Failure>) {
        let Err(f) = r else { return };
        let stride = x.strides()[0].unsigned_abs() * std::mem::size_of::<F>();
        let offset = (xb.as_ptr() as usize).abs_diff(x.as_ptr() as usize);
        let row = f.row + offset.checked_div(stride).unwrap_or(0);
        if let Ok(mut g) = self.0.lock() {
            if g.as_ref().is_none_or(|(r0, _)| row < *r0) {
                *g = Some((row, f));
            }
        }
    }
    fn into_result(self) -> Result<()> {
        match self.0.into_inner().ok().flatten() {
            Some((row, f)) => Err(unrepresentable(f, Some(row))),
            None => Ok(()),
        }
    }
}

/// The exact score `∇ₓ log p_t(x)` of `p_t = Σ w_k N(α(t) μ_k, α(t)² S_k + σ(t)² I)`.
///
/// Implements [`ScoreModel`] with the exact divergence (the Hessian trace). Each call
/// reuses a workspace from an internal pool, so after the first call per thread it
/// allocates nothing. `t` must lie in `[0, T]` of the schedule.
///
/// Batches are evaluated in fixed blocks of rows; with the `rayon` feature the blocks run
/// on rayon's thread pool, and the results do not depend on the number of threads.
///
/// ```
/// use score_sde::gmm::{AnalyticScore, problems};
/// use score_sde::schedule::VpLinear;
/// use score_sde::ScoreModel;
/// use ndarray::{array, Array2};
/// let model = AnalyticScore::new(problems::ring2d::<f64>(), VpLinear::default());
/// let x = array![[0.0, 0.0]];
/// let mut s = Array2::zeros((1, 2));
/// model.score(x.view(), 0.5, s.view_mut()).unwrap();
/// assert!(s.iter().all(|v| v.abs() < 1e-12)); // the ring is symmetric about 0
/// ```
#[derive(Debug)]
pub struct AnalyticScore<F, S> {
    mixture: GaussianMixture<F>,
    schedule: S,
    pool: Mutex<Vec<Workspace<F>>>,
}

impl<F: Real, S: Clone> Clone for AnalyticScore<F, S> {
    fn clone(&self) -> Self {
        Self {
            mixture: self.mixture.clone(),
            schedule: self.schedule.clone(),
            pool: Mutex::new(Vec::new()),
        }
    }
}

impl<F: Real, S: Schedule<F>> AnalyticScore<F, S> {
    /// The exact score of `mixture` diffused under `schedule`.
    pub fn new(mixture: GaussianMixture<F>, schedule: S) -> Self {
        Self {
            mixture,
            schedule,
            pool: Mutex::new(Vec::new()),
        }
    }
    /// The data distribution `p_0`.
    pub fn mixture(&self) -> &GaussianMixture<F> {
        &self.mixture
    }
    /// The schedule.
    pub fn schedule(&self) -> &S {
        &self.schedule
    }
    /// The exact marginal `p_t`.
    pub fn marginal(&self, t: F) -> Result<GaussianMixture<F>> {
        self.mixture.diffuse(&self.schedule, t)
    }

    fn alpha_sigma(&self, t: F) -> Result<(F, F)> {
        check_t_from_zero(&self.schedule, t)?;
        Ok((self.schedule.alpha(t), self.schedule.sigma(t)))
    }

    fn with_workspace<R>(&self, f: impl FnOnce(&mut Workspace<F>) -> R) -> R {
        let (k, d) = (self.mixture.n_components(), self.mixture.dim());
        let taken = self.pool.lock().ok().and_then(|mut p| p.pop());
        let mut ws = match taken {
            Some(ws) if ws.fits(k, d) => ws,
            _ => Workspace::new(k, d),
        };
        let r = f(&mut ws);
        if let Ok(mut p) = self.pool.lock() {
            p.push(ws);
        }
        r
    }

    /// Log-density `log p_t(x)` per row into `out`.
    ///
    /// Errors as [`ScoreModel::score`] does; a log-density below the float range (`x`
    /// astronomically far from every component) is [`Error::Unrepresentable`].
    pub fn log_prob(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut1<F>) -> Result<()> {
        self.check_x(&x)?;
        check::same_shape("log_prob output", &[x.nrows()], out.shape())?;
        let (a, s) = self.alpha_sigma(t)?;
        let failed = FirstFailure::default();
        row_blocks(x, out, |xb, ob| {
            let r = self.with_workspace(|ws| {
                kernel::evaluate(
                    &self.mixture.parts(),
                    a,
                    s,
                    xb,
                    ws,
                    Outputs {
                        log_prob: Some(ob),
                        score: None,
                        laplacian: None,
                        responsibilities: None,
                    },
                )
            });
            failed.note(&x, &xb, r);
        });
        failed.into_result()
    }

    fn check_x(&self, x: &ArrayView2<F>) -> Result<()> {
        if x.ncols() != self.mixture.dim() {
            return Err(Error::shape(
                "x (columns = mixture dimension)",
                self.mixture.dim(),
                x.ncols(),
            ));
        }
        check::finite("x", x)
    }
}

impl<F: Real, S: Schedule<F>> ScoreModel<F> for AnalyticScore<F, S> {
    fn score(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()> {
        check_score_call(Some(self.mixture.dim()), &x, &out)?;
        self.check_x(&x)?;
        let (a, s) = self.alpha_sigma(t)?;
        let failed = FirstFailure::default();
        row_blocks(x, out, |xb, ob| {
            let r = self.with_workspace(|ws| {
                kernel::evaluate(
                    &self.mixture.parts(),
                    a,
                    s,
                    xb,
                    ws,
                    Outputs {
                        log_prob: None,
                        score: Some(ob),
                        laplacian: None,
                        responsibilities: None,
                    },
                )
            });
            failed.note(&x, &xb, r);
        });
        failed.into_result()
    }

    fn score_rows(
        &self,
        x: ArrayView2<F>,
        t: ndarray::ArrayView1<F>,
        mut out: ArrayViewMut2<F>,
    ) -> Result<()> {
        check_score_call(Some(self.mixture.dim()), &x, &out)?;
        check::same_shape("times", &[x.nrows()], t.shape())?;
        self.check_x(&x)?;
        self.with_workspace(|ws| -> Result<()> {
            for i in 0..x.nrows() {
                let (a, s) = self.alpha_sigma(t[i])?;
                let r = ndarray::s![i..i + 1, ..];
                kernel::evaluate(
                    &self.mixture.parts(),
                    a,
                    s,
                    x.slice(r),
                    ws,
                    Outputs {
                        log_prob: None,
                        score: Some(out.slice_mut(r)),
                        laplacian: None,
                        responsibilities: None,
                    },
                )
                .map_err(|f| unrepresentable(f, Some(i)))?;
            }
            Ok(())
        })
    }

    fn divergence(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut1<F>) -> Option<Result<()>> {
        Some((|| {
            self.check_x(&x)?;
            check::same_shape("divergence output", &[x.nrows()], out.shape())?;
            let (a, s) = self.alpha_sigma(t)?;
            let failed = FirstFailure::default();
            row_blocks(x, out, |xb, ob| {
                let r = self.with_workspace(|ws| {
                    kernel::evaluate(
                        &self.mixture.parts(),
                        a,
                        s,
                        xb,
                        ws,
                        Outputs {
                            log_prob: None,
                            score: None,
                            laplacian: Some(ob),
                            responsibilities: None,
                        },
                    )
                });
                failed.note(&x, &xb, r);
            });
            failed.into_result()
        })())
    }

    fn dim(&self) -> Option<usize> {
        Some(self.mixture.dim())
    }
}
