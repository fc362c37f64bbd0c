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
use crate::num::Real;
use crate::score::ScoreModel;
use ndarray::{Array2, Array3, ArrayView2, ArrayViewMut1, Axis, Ix2, Ix3, Zip};
use rand::RngCore;

/// The distribution of Hutchinson probe vectors (both have `E[v vᵀ] = I`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Probe {
    /// Entries ±1 with probability ½ (the lower-variance choice, Hutchinson 1990).
    Rademacher,
    /// Standard normal entries (Skilling 1989).
    Gaussian,
}

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
    plus: Array2<F>,
    minus: Array2<F>,
    s_plus: Array2<F>,
    s_minus: Array2<F>,
    step: Vec<F>,
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
                for v in p.iter_mut() {
                    *v = match probe {
                        Probe::Rademacher => {
                            if rng.next_u32() & 1 == 0 {
                                F::one()
                            } else {
                                -F::one()
                            }
                        }
                        Probe::Gaussian => F::standard_normal(rng),
                    };
                }
                p
            }
            _ => Array3::zeros((0, 0, 0)),
        };
        let buf = || check::zeros::<F, _>("divergence buffer (N × D)", Ix2(n, d));
        let mut step = check::vec_with_capacity("divergence steps", n)?;
        step.resize(n, F::zero());
        Ok(Self {
            method,
            probes,
            plus: buf()?,
            minus: buf()?,
            s_plus: buf()?,
            s_minus: buf()?,
            step,
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
        check::same_shape("divergence batch", self.plus.shape(), x.shape())?;
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
                self.set_steps(&x);
                let d = x.ncols();
                for j in 0..d {
                    self.plus.assign(&x);
                    self.minus.assign(&x);
                    for i in 0..x.nrows() {
                        self.plus[[i, j]] += self.step[i];
                        self.minus[[i, j]] -= self.step[i];
                    }
                    model.score(self.plus.view(), t, self.s_plus.view_mut())?;
                    model.score(self.minus.view(), t, self.s_minus.view_mut())?;
                    for i in 0..x.nrows() {
                        out[i] += (self.s_plus[[i, j]] - self.s_minus[[i, j]])
                            / (F::lit(2.0) * self.step[i]);
                    }
                }
                Ok(2 * d)
            }
            DivergenceMethod::Hutchinson { probes, .. } => {
                out.fill(F::zero());
                self.set_steps(&x);
                for p in 0..probes {
                    let v = self.probes.index_axis(Axis(0), p);
                    Zip::from(self.plus.rows_mut())
                        .and(self.minus.rows_mut())
                        .and(x.rows())
                        .and(v.rows())
                        .and(&self.step)
                        .for_each(|mut a, mut b, xr, vr, &h| {
                            Zip::from(&mut a).and(&mut b).and(&xr).and(&vr).for_each(
                                |a, b, &x, &v| {
                                    *a = x + h * v;
                                    *b = x - h * v;
                                },
                            );
                        });
                    model.score(self.plus.view(), t, self.s_plus.view_mut())?;
                    model.score(self.minus.view(), t, self.s_minus.view_mut())?;
                    let inv_m = F::one() / F::from_usize_lossy(probes);
                    Zip::from(&mut out)
                        .and(self.s_plus.rows())
                        .and(self.s_minus.rows())
                        .and(v.rows())
                        .and(&self.step)
                        .for_each(|o, sp, sm, vr, &h| {
                            let mut q = F::zero();
                            for j in 0..vr.len() {
                                q += vr[j] * (sp[j] - sm[j]);
                            }
                            *o += q / (F::lit(2.0) * h) * inv_m;
                        });
                }
                Ok(2 * probes)
            }
        }
    }

    /// `h_i = ε^{1/3} max(1, ‖x_i‖_∞)` (see the module docs).
    fn set_steps(&mut self, x: &ArrayView2<F>) {
        let base = F::EPS.cbrt();
        for (h, r) in self.step.iter_mut().zip(x.rows()) {
            let m = r.iter().fold(F::one(), |a, v| a.max(v.abs()));
            *h = base * m;
        }
    }
}
