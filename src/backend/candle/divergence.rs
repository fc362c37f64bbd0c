//! The exact divergence of a candle score network by automatic differentiation.
//!
//! The probability-flow likelihood needs `∇ₓ · s(x, t)` (Song et al. 2021, eq. 39; Chen et
//! al. 2018, Thm. 1). Every [`Parameterization`] makes the score affine in the network's
//! output, `s = a(t) net(x, t) + b(t) x` (e.g. `a = −1/σ`, `b = 0` for ε-prediction), so
//!
//! ```text
//! ∇ₓ · s = a(t) tr J_net(x, t) + b(t) D
//! ```
//!
//! and `tr J` comes from one backward pass: each row is repeated `D` times (copy `j` of row
//! `r` is `x_r`), the network runs once on the `N·D` rows, and the gradient of
//! `L = Σ_{r,j} net(copy j of x_r)_j` with respect to the copies holds `∂net_j/∂x_j` in
//! column `j` of copy `j`: `tr J(x_r) = Σ_j ∂L/∂(copy j of x_r)_j`. This needs a network
//! whose rows do not interact (no batch normalisation): true of [`TimeMlp`](super::TimeMlp)
//! and [`TimeUnet`](super::TimeUnet) (group normalisation is per sample). The cost is one
//! forward and backward pass on `D` times the batch, done in chunks of
//! [`AutogradDivergence::chunk_rows`] rows.
//!
//! Build the network for this from plain tensors
//! ([`Checkpoint::var_builder`](super::Checkpoint::var_builder)), not from a `VarMap`:
//! candle's backward pass computes the gradient of every variable in the graph, and the
//! parameters' gradients are not needed here.

use super::{CandleNetwork, TimeModule, candle_err};
use crate::error::Result;
use crate::num::Real;
use crate::schedule::Schedule;
use crate::score::{Parameterization, Parameterized, ScoreModel, to_score_inplace};
use candle_core::{Tensor, Var, WithDType};
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, s};

/// A candle score network with its exact divergence by automatic differentiation (see the
/// module docs): a [`ScoreModel`] whose [`divergence`](ScoreModel::divergence) makes
/// [`DivergenceMethod::Exact`](crate::likelihood::DivergenceMethod::Exact) work.
#[derive(Debug, Clone)]
pub struct AutogradDivergence<M, S> {
    model: Parameterized<CandleNetwork<M>, S>,
    schedule: S,
    chunk_rows: usize,
}

impl<M: TimeModule, S: Clone> AutogradDivergence<M, S> {
    /// The score model of `network` (predicting `kind`) under `schedule`, with the exact
    /// divergence; chunks of 64 rows.
    pub fn new(network: CandleNetwork<M>, schedule: S, kind: Parameterization) -> Self {
        Self {
            model: Parameterized::new(network, schedule.clone(), kind),
            schedule,
            chunk_rows: 64,
        }
    }

    /// Rows per forward/backward pass of the divergence (each becomes `D` rows); at least 1.
    pub fn chunk_rows(mut self, rows: usize) -> Self {
        self.chunk_rows = rows.max(1);
        self
    }

    /// The score model without the divergence.
    pub fn model(&self) -> &Parameterized<CandleNetwork<M>, S> {
        &self.model
    }
}

impl<M: TimeModule> CandleNetwork<M> {
    /// `tr ∂net(x, t)/∂x` for every row of `x`, by one backward pass per chunk of
    /// `chunk_rows` rows (see [`AutogradDivergence`]).
    pub fn jacobian_trace<F: Real + WithDType>(
        &self,
        x: ArrayView2<F>,
        t: F,
        chunk_rows: usize,
        mut out: ArrayViewMut1<F>,
    ) -> Result<()> {
        crate::check::same_shape("trace output", &[x.nrows()], out.shape())?;
        let d = self.dim();
        let chunk_rows = chunk_rows.max(1);
        let module = self.module();
        let (dtype, dev) = (module.dtype(), module.device());
        let eye = Tensor::eye(d, dtype, dev).map_err(candle_err)?;
        for start in (0..x.nrows()).step_by(chunk_rows) {
            let stop = (start + chunk_rows).min(x.nrows());
            let rows = x.slice(s![start..stop, ..]);
            let n = rows.nrows();
            let (xs, ts) = self.inputs(rows, std::iter::repeat_n(t, n))?;
            let traces = || -> candle_core::Result<Vec<F>> {
                // Every row has the same t, so n·d copies of it in any order.
                let ts = ts.repeat((d, 1))?;
                let copies = xs
                    .unsqueeze(1)?
                    .broadcast_as((n, d, d))?
                    .reshape((n * d, d))?;
                let copies = Var::from_tensor(&copies)?;
                let y = module.forward_t(copies.as_tensor(), &ts)?;
                if y.dims() != [n * d, d] {
                    candle_core::bail!("network output {:?}, expected [{}, {d}]", y.dims(), n * d);
                }
                let diag = y.reshape((n, d, d))?.broadcast_mul(&eye)?.sum_all()?;
                let grads = diag.backward()?;
                let g = grads
                    .get(copies.as_tensor())
                    .ok_or_else(|| candle_core::Error::Msg("no gradient for the input".into()))?;
                g.reshape((n, d, d))?
                    .broadcast_mul(&eye)?
                    .sum((1, 2))?
                    .to_dtype(F::DTYPE)?
                    .to_vec1::<F>()
            };
            let tr = traces().map_err(candle_err)?;
            for (o, v) in out.slice_mut(s![start..stop]).iter_mut().zip(tr) {
                *o = v;
            }
        }
        Ok(())
    }
}

impl<F, M, S> ScoreModel<F> for AutogradDivergence<M, S>
where
    F: Real + WithDType,
    M: TimeModule,
    S: Schedule<F> + Clone + Send + Sync,
{
    fn score(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()> {
        self.model.score(x, t, out)
    }
    fn score_rows(&self, x: ArrayView2<F>, t: ArrayView1<F>, out: ArrayViewMut2<F>) -> Result<()> {
        self.model.score_rows(x, t, out)
    }
    fn divergence(&self, x: ArrayView2<F>, t: F, mut out: ArrayViewMut1<F>) -> Option<Result<()>> {
        let mut run = || -> Result<()> {
            let dim = self.model.network().dim();
            if x.ncols() != dim {
                return Err(crate::Error::shape(
                    "x (columns = model dimension)",
                    dim,
                    x.ncols(),
                ));
            }
            crate::check::finite_scalar("t", t)?;
            // The affine map pred → score at this t, read off the adapter's own formula:
            // a = s(pred = 1, x = 0), b = s(pred = 0, x = 1).
            let (alpha, sigma) = (self.schedule.alpha(t), self.schedule.sigma(t));
            let kind = self.model.parameterization();
            let coef = |pred: F, xv: F| {
                let mut p = Array2::from_elem((1, 1), pred);
                to_score_inplace(
                    kind,
                    Array2::from_elem((1, 1), xv).view(),
                    alpha,
                    sigma,
                    p.view_mut(),
                );
                p[[0, 0]]
            };
            let (a, b) = (coef(F::one(), F::zero()), coef(F::zero(), F::one()));
            self.model
                .network()
                .jacobian_trace(x, t, self.chunk_rows, out.view_mut())?;
            let bd = b * F::from_usize_lossy(x.ncols());
            out.mapv_inplace(|tr| a * tr + bd);
            if let Some(i) = out.iter().position(|v| !v.is_finite()) {
                return Err(crate::Error::NonFinite {
                    what: "autograd divergence",
                    index: i,
                    value: out[i].as_f64(),
                });
            }
            Ok(())
        };
        Some(run())
    }
    fn dim(&self) -> Option<usize> {
        Some(self.model.network().dim())
    }
}
