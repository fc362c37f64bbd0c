//! Imputation (inpainting) by replacement, in the data basis or an orthogonal one.

use crate::check;
use crate::error::{Error, Result};
use crate::num::Real;
use crate::observe::Observer;
use crate::schedule::Schedule;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use rand::SeedableRng;
use std::fmt;

/// What [`Imputation`] writes into the known coordinates at the final step (`t ≤ t_final`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FinalStep {
    /// The observed values themselves, noise-free (the default): the returned samples
    /// agree with the observation exactly, which is what inpainting is for.
    #[default]
    Clean,
    /// `α(t_min) y + σ(t_min) z` like every other step: the samples are then draws of the
    /// diffused `p_{t_min}` in every coordinate (as unconditional samplers return).
    Noisy,
}

/// Imputation by replacement (Song et al. 2021, App. I.2): an [`Observer`] whose
/// [`constrain`](Observer::constrain) hook, after every sampler step reaching time `t`,
/// overwrites the known coordinates `Ω` of each sample with a forward-noised copy of the
/// observed values,
///
/// ```text
/// x_t[Ω] ← α(t) y + σ(t) z,     z ~ N(0, I) fresh at every step
/// ```
///
/// while the sampler moves the free coordinates with the unconditional score. The noise
/// comes from the observer's own generator (`rand_pcg::Pcg64` seeded at construction), so
/// a run is deterministic given the sampler's seed and this one. Every sampler of the crate
/// honours it: the driver ([`GridSampler`](crate::sample::GridSampler)) calls
/// [`observe::after_step`](crate::observe::after_step) after every step and after the final
/// denoise, so the returned samples agree with the observation exactly (with
/// [`FinalStep::Clean`]). Code that calls only [`Observer::observe`] — a bare ODE
/// integration ([`AdaptiveRk::solve`](crate::ode::AdaptiveRk::solve)) — is stopped with
/// [`Error::Stopped`] at its first step rather than silently ignoring the observation.
///
/// At the final step (`t ≤ t_final`, by default the schedule's `t_min`) the known
/// coordinates get `y` itself ([`FinalStep::Clean`], default) or the noised copy
/// ([`FinalStep::Noisy`]).
///
/// **Accuracy.** The replacement method is an approximation: the free coordinates are
/// driven by `∇ log p_t(x_t)` at the *noised* known values, not by `∇ log p_t(x_t[Ω̄] | y)`,
/// and the independent noise draws ignore the correlation between `x_t[Ω]` and the past of
/// the free coordinates. Its bias against the exact conditional is measured in
/// `docs/conditioning.md` (16-D mixture, half the coordinates observed).
///
/// **Orthogonal bases** (colourisation, Song et al. 2021, App. I.3): with
/// [`Imputation::with_basis`] the mask and values refer to the coordinates `u = Qᵀ x` of
/// an orthogonal `Q` (its columns are the basis vectors); each step sets
/// `x ← x + Q_Ω (α y + σ z − Q_Ωᵀ x)`. Because `Q` is orthogonal the forward noise is
/// isotropic in `u` too, so this is exact replacement in the new basis. Colourisation uses
/// per pixel the basis whose first vector is `(1, 1, 1)/√3` (grey level observed, two
/// chroma coordinates free).
///
/// ```
/// use score_sde::condition::Imputation;
/// use score_sde::observe::Observer;
/// use score_sde::schedule::{Schedule, VpLinear};
/// use ndarray::array;
/// let vp = VpLinear::<f64>::default();
/// // Observe coordinate 1 (= 2.5) of 2-D points; coordinate 0 is free (NaN placeholder is fine).
/// let mut imp = Imputation::new(vp, &[false, true], array![f64::NAN, 2.5].view(), 7).unwrap();
/// let mut x = array![[0.1, 9.0], [0.2, -9.0]];
/// imp.constrain(1, 0.5, x.view_mut()).unwrap();
/// assert_eq!(x[[0, 0]], 0.1); // free coordinates untouched
/// assert!((x[[0, 1]] - vp.alpha(0.5) * 2.5).abs() < 5.0 * vp.sigma(0.5));
/// imp.constrain(2, 1e-3, x.view_mut()).unwrap(); // t_min: the clean value
/// assert_eq!(x[[1, 1]], 2.5);
/// // A mask of the wrong length is a typed error.
/// assert!(Imputation::new(vp, &[true], array![1.0, 2.0].view(), 0).is_err());
/// ```
pub struct Imputation<F: Real, S> {
    schedule: S,
    dim: usize,
    observed: Vec<usize>,
    /// Observed values, `1 × m` (shared) or `N × m` (per row).
    values: Array2<F>,
    /// `Q_Ω` (`D × m`), when working in an orthogonal basis.
    basis_obs: Option<Array2<F>>,
    final_step: FinalStep,
    t_final: F,
    rng: rand_pcg::Pcg64,
    target: Array1<F>,
    /// Set by `constrain`, cleared by `observe`: an `observe` without a `constrain` before
    /// it means the sampler does not apply constraints.
    constrained: bool,
}

impl<F: Real, S> fmt::Debug for Imputation<F, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imputation")
            .field("dim", &self.dim)
            .field("observed", &self.observed)
            .field("rows", &self.values.nrows())
            .field("basis", &self.basis_obs.is_some())
            .field("final_step", &self.final_step)
            .field("t_final", &self.t_final)
            .finish_non_exhaustive()
    }
}

impl<F: Real, S: Schedule<F>> Imputation<F, S> {
    /// Impute with the same observation for every sample: `mask[j]` says whether
    /// coordinate `j` is known, `values[j]` is its value (entries where the mask is false
    /// are ignored). `seed` seeds the observer's noise.
    ///
    /// Errors: [`Error::ShapeMismatch`] if `mask` and `values` differ in length,
    /// [`Error::Empty`] if nothing is observed, [`Error::NonFinite`] for a non-finite
    /// observed value.
    pub fn new(schedule: S, mask: &[bool], values: ArrayView1<F>, seed: u64) -> Result<Self> {
        let v = values.insert_axis(Axis(0));
        Self::per_row(schedule, mask, v, seed)
    }

    /// As [`Imputation::new`] with one observation per sample: `values` is `N × D` and the
    /// sampler's batch must then have `N` rows (a `1 × D` `values` is shared by all rows).
    pub fn per_row(schedule: S, mask: &[bool], values: ArrayView2<F>, seed: u64) -> Result<Self> {
        let d = values.ncols();
        check::same_shape(
            "imputation mask (length = D of values)",
            &[d],
            &[mask.len()],
        )?;
        if values.nrows() == 0 {
            return Err(Error::Empty {
                what: "observed values (no rows)",
            });
        }
        let observed: Vec<usize> = (0..d).filter(|&j| mask[j]).collect();
        if observed.is_empty() {
            return Err(Error::Empty {
                what: "observed coordinates (the mask has no true entry)",
            });
        }
        let m = observed.len();
        let mut vals = Array2::<F>::zeros((values.nrows(), m));
        for (i, row) in values.rows().into_iter().enumerate() {
            for (j, &o) in observed.iter().enumerate() {
                let v = row[o];
                if !v.is_finite() {
                    return Err(Error::NonFinite {
                        what: "observed values",
                        index: i * d + o,
                        value: v.as_f64(),
                    });
                }
                vals[[i, j]] = v;
            }
        }
        let t_final = schedule.t_range().0;
        Ok(Self {
            schedule,
            dim: d,
            observed,
            values: vals,
            basis_obs: None,
            final_step: FinalStep::default(),
            t_final,
            rng: rand_pcg::Pcg64::seed_from_u64(seed),
            target: Array1::zeros(m),
            constrained: false,
        })
    }

    /// Interpret the mask and values in the orthogonal basis `Q` (`D × D`, columns are the
    /// basis vectors, coordinates `u = Qᵀ x`): Song et al. 2021, App. I.3. Errors if `Q` has
    /// the wrong shape, is non-finite, or `‖QᵀQ − I‖_max` exceeds `1e-6` (f64) / `1e-4`
    /// (f32) — [`Error::InvalidParameter`] naming the deviation.
    pub fn with_basis(mut self, q: ArrayView2<F>) -> Result<Self> {
        let d = self.dim;
        check::same_shape("orthogonal basis Q (D × D)", &[d, d], q.shape())?;
        check::finite("orthogonal basis Q", &q)?;
        let qtq = q.t().dot(&q);
        let mut dev = 0.0_f64;
        for i in 0..d {
            for j in 0..d {
                let e = if i == j { 1.0 } else { 0.0 };
                dev = dev.max((qtq[[i, j]].as_f64() - e).abs());
            }
        }
        let tol = if F::EPS.as_f64() > 1e-10 { 1e-4 } else { 1e-6 };
        if dev > tol {
            return Err(Error::param(
                "Q (max |QᵀQ − I|)",
                dev,
                "the basis must be orthogonal",
            ));
        }
        let qo = Array2::from_shape_fn((d, self.observed.len()), |(i, j)| q[[i, self.observed[j]]]);
        self.basis_obs = Some(qo);
        Ok(self)
    }

    /// What to put into the known coordinates at the final step (default
    /// [`FinalStep::Clean`]).
    pub fn final_step(mut self, f: FinalStep) -> Self {
        self.final_step = f;
        self
    }

    /// The time at or below which a step counts as final (default: the schedule's `t_min`).
    pub fn final_time(mut self, t: F) -> Result<Self> {
        check::finite_scalar("final time", t)?;
        self.t_final = t;
        Ok(self)
    }

    /// The indices of the observed coordinates (in the basis of the mask).
    pub fn observed(&self) -> &[usize] {
        &self.observed
    }

    /// Apply the replacement to `x` at time `t` (what [`Observer::constrain`] does).
    fn replace(&mut self, t: F, mut x: ArrayViewMut2<F>) -> Result<()> {
        check::same_shape(
            "state (columns = imputation dimension)",
            &[self.dim],
            &[x.ncols()],
        )?;
        let shared = self.values.nrows() == 1;
        if !shared && self.values.nrows() != x.nrows() {
            return Err(Error::shape(
                "state rows (= rows of the per-row observed values)",
                self.values.nrows(),
                x.nrows(),
            ));
        }
        check::finite_scalar("t", t)?;
        let slack = F::lit(8.0) * F::EPS * self.t_final.abs().max(F::one());
        let clean = self.final_step == FinalStep::Clean && t <= self.t_final + slack;
        let (a, s) = if clean {
            (F::one(), F::zero())
        } else {
            (self.schedule.alpha(t), self.schedule.sigma(t))
        };
        for (i, mut row) in x.rows_mut().into_iter().enumerate() {
            let y = self.values.row(if shared { 0 } else { i });
            for (j, tg) in self.target.iter_mut().enumerate() {
                *tg = if clean {
                    y[j]
                } else {
                    a * y[j] + s * F::standard_normal(&mut self.rng)
                };
            }
            match &self.basis_obs {
                None => {
                    for (j, &o) in self.observed.iter().enumerate() {
                        row[o] = self.target[j];
                    }
                }
                Some(qo) => {
                    // x ← x + Q_Ω (target − Q_Ωᵀ x)
                    for j in 0..self.observed.len() {
                        let u = qo.column(j).dot(&row);
                        self.target[j] -= u;
                    }
                    for (j, &dj) in self.target.iter().enumerate() {
                        row.scaled_add(dj, &qo.column(j));
                    }
                }
            }
        }
        Ok(())
    }
}

impl<F: Real, S: Schedule<F>> Observer<F> for Imputation<F, S> {
    /// Checks that [`Observer::constrain`] ran before this call: a sampler that calls only
    /// `observe` (not [`observe::after_step`](crate::observe::after_step)) would otherwise
    /// ignore the imputation silently; it gets [`Error::Stopped`] instead.
    fn observe(&mut self, step: usize, _t: F, _x: ArrayView2<F>) -> Result<()> {
        if !std::mem::replace(&mut self.constrained, false) {
            return Err(Error::Stopped {
                step,
                reason: "imputation: this sampler does not call Observer::constrain \
                         (observe::after_step), so it cannot impute"
                    .into(),
            });
        }
        Ok(())
    }
    fn constrain(&mut self, _step: usize, t: F, x: ArrayViewMut2<F>) -> Result<()> {
        self.replace(t, x)?;
        self.constrained = true;
        Ok(())
    }
    fn constrains(&self) -> bool {
        true
    }
}
