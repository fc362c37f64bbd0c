//! The divergence `∇ₓ · s(x, t)` of a score model, three ways.
//!
//! The probability-flow ODE's log-density changes at the rate of the divergence of its
//! drift (the instantaneous change of variables, Chen et al. 2018, Thm. 1):
//! `d log p_t(x_t)/dt = −∇ · (f − ½ g² s)`. For a linear SDE `∇ · f = D f(t)`, so only the
//! score's divergence is needed:
//!
//! * [`DivergenceMethod::Exact`] — the model's own [`ScoreModel::divergence`]
//!   (`AnalyticScore` has it); 0 extra score calls.
//! * [`DivergenceMethod::FiniteDifference`] — `Σ_i ∂s_i/∂x_i` by central differences along
//!   the `D` coordinate axes; `2D` score calls.
//! * [`DivergenceMethod::Hutchinson`] — Hutchinson's (1990) / Skilling's (1989) unbiased
//!   estimator `E_v[vᵀ J v]` with `E[v vᵀ] = I`, Rademacher or Gaussian probes drawn once per
//!   solve and held fixed, as score_sde does (Grathwohl et al. 2019, §3.1); each `vᵀ J v` by a
//!   central difference along `v`; `2m` score calls for `m` probes.
//!
//! **Finite-difference rule.** A central difference `(s(x + h v) − s(x − h v))/(2h)` has
//! truncation error `O(h²)` and rounding error `O(ε/h)`; their sum is smallest at
//! `h ≈ ε^{1/3}` (Press et al. 2007, §5.7), scaled by the size of the point:
//! `h = ε^{1/3} · max(1, ‖x‖_∞)` per row, with `ε` the machine epsilon of the float type
//! (about `6e-6` for f64, `5e-3` for f32), giving a relative error near `ε^{2/3}`.

use crate::check;
use crate::error::{Error, Result};
pub use crate::jacobian::Probe;
use crate::jacobian::ScoreJvp;
use crate::num::Real;
use crate::score::ScoreModel;
use ndarray::{Array2, Array3, ArrayView2, ArrayViewMut1, Axis, Ix2, Ix3, Zip};
use rand::RngCore;

/// How to compute the score's divergence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DivergenceMethod {
    /// The model's exact divergence ([`ScoreModel::divergence`]); an error if it has none.
    Exact,
    /// Central differences along the `D` coordinate axes (exact up to the FD error).
    FiniteDifference,
    /// Hutchinson's estimator with `probes` fixed probe vectors per sample.
    Hutchinson {
        /// Number of probes per sample (≥ 1).
        probes: usize,
        /// Their distribution.
        probe: Probe,
    },
}

impl DivergenceMethod {
    /// Hutchinson with `probes` Rademacher probes.
    pub fn hutchinson(probes: usize) -> Self {
        DivergenceMethod::Hutchinson {
            probes,
            probe: Probe::Rademacher,
        }
    }
    /// Validate (probes ≥ 1).
    pub fn validate(&self) -> Result<()> {
        if let DivergenceMethod::Hutchinson { probes: 0, .. } = self {
            return Err(Error::param(
                "probes",
                0.0,
                "Hutchinson needs at least one probe",
            ));
        }
        Ok(())
    }
}

/// A divergence evaluator for batches of a fixed shape, with its probes and buffers made once.
#[derive(Debug)]
pub struct Divergence<F> {
    method: DivergenceMethod,
    /// Probe vectors `(m, N, D)`: the coordinate axes are implicit for finite differences.
    probes: Array3<F>,
    /// Central differences of the score along a direction ([`ScoreJvp`]).
    jvp: ScoreJvp<F>,
    /// The direction of a finite-difference column (`e_j` in every row).
    axis: Array2<F>,
    /// `J v` of the current direction.
    jv: Array2<F>,
}

impl<F: Real> Divergence<F> {
    /// Prepare for batches of `n × d`; Hutchinson probes are drawn here, once.
    pub fn new(
        method: DivergenceMethod,
        n: usize,
        d: usize,
        rng: &mut dyn RngCore,
    ) -> Result<Self> {
        method.validate()?;
        if n == 0 || d == 0 {
            return Err(Error::Empty {
                what: "divergence batch",
            });
        }
        // Sizes from the caller: every product and allocation is checked first.
        let probes = match method {
            DivergenceMethod::Hutchinson { probes, probe } => {
                let mut p: Array3<F> =
                    check::zeros("Hutchinson probes (probes × N × D)", Ix3(probes, n, d))?;
                for k in 0..probes {
                    probe.fill(p.index_axis_mut(Axis(0), k), rng);
                }
                p
            }
            _ => Array3::zeros((0, 0, 0)),
        };
        let fd = method == DivergenceMethod::FiniteDifference;
        let hutch = matches!(method, DivergenceMethod::Hutchinson { .. });
        Ok(Self {
            method,
            probes,
            jvp: ScoreJvp::new(n, d)?,
            axis: check::zeros("divergence buffer (N × D)", Ix2(if fd { n } else { 0 }, d))?,
            jv: check::zeros(
                "divergence buffer (N × D)",
                Ix2(if fd || hutch { n } else { 0 }, d),
            )?,
        })
    }

    /// The method.
    pub fn method(&self) -> DivergenceMethod {
        self.method
    }

    /// Score calls one [`Divergence::eval`] makes on the batch.
    pub fn calls_per_eval(&self, d: usize) -> usize {
        match self.method {
            DivergenceMethod::Exact => 0,
            DivergenceMethod::FiniteDifference => 2 * d,
            DivergenceMethod::Hutchinson { probes, .. } => 2 * probes,
        }
    }

    /// Write `∇ₓ · s(x, t)` (or its estimate) per row into `out`; returns the number of
    /// score calls made.
    pub fn eval(
        &mut self,
        model: &dyn ScoreModel<F>,
        x: ArrayView2<F>,
        t: F,
        mut out: ArrayViewMut1<F>,
    ) -> Result<usize> {
        check::same_shape(
            "divergence batch",
            &[self.jvp.shape().0, self.jvp.shape().1],
            x.shape(),
        )?;
        check::same_shape("divergence output", &[x.nrows()], out.shape())?;
        match self.method {
            DivergenceMethod::Exact => {
                model.divergence(x, t, out).unwrap_or(Err(Error::Model(
                    "the model has no exact divergence; choose FiniteDifference or Hutchinson"
                        .into(),
                )))?;
                Ok(0)
            }
            DivergenceMethod::FiniteDifference => {
                out.fill(F::zero());
                let d = x.ncols();
                for j in 0..d {
                    // ∂s_j/∂x_j: the j-th entry of J e_j.
                    self.axis.fill(F::zero());
                    self.axis.column_mut(j).fill(F::one());
                    self.jvp
                        .eval(model, x, t, self.axis.view(), self.jv.view_mut())?;
                    Zip::from(&mut out)
                        .and(self.jv.column(j))
                        .for_each(|o, &g| *o += g);
                }
                Ok(2 * d)
            }
            DivergenceMethod::Hutchinson { probes, .. } => {
                out.fill(F::zero());
                let inv_m = F::one() / F::from_usize_lossy(probes);
                for p in 0..probes {
                    let v = self.probes.index_axis(Axis(0), p);
                    self.jvp.eval(model, x, t, v, self.jv.view_mut())?;
                    // vᵀ J v per row.
                    Zip::from(&mut out)
                        .and(v.rows())
                        .and(self.jv.rows())
                        .for_each(|o, vr, jr| *o += vr.dot(&jr) * inv_m);
                }
                Ok(2 * probes)
            }
        }
    }
}
