//! Step-size control for embedded Runge–Kutta pairs, as plain functions of scalars: the
//! error norm, the PI controller and the starting-step heuristic (Hairer, Nørsett &
//! Wanner, *Solving ODEs I*, §II.4 and the `DOPRI5` code; the PI form of Gustafsson 1991
//! in Hairer & Wanner II, §IV.2). Any adaptive method — a tableau here, or a diffusion
//! solver with its own error estimate — can use them.

use crate::error::{Error, Result};
use crate::num::Real;

/// The error norm over a batch: for each row (sample), the RMS over its columns of
/// `e / (atol + rtol · max(|y|, |ŷ|))`, maximised over the rows; NaN propagates. Every
/// sample then meets the tolerance, and an augmented row `[x, Δ]` is judged as a whole.
pub(crate) fn batch_error_norm<F: Real>(
    e: &[F],
    y: &[F],
    yn: &[F],
    d: usize,
    (atol, rtol): (F, F),
) -> F {
    let mut worst = F::zero();
    let dd = F::from_usize_lossy(d);
    for ((er, yr), ynr) in e.chunks(d).zip(y.chunks(d)).zip(yn.chunks(d)) {
        let mut s = F::zero();
        for j in 0..d {
            let sc = atol + rtol * yr[j].abs().max(ynr[j].abs());
            let q = er[j] / sc;
            s += q * q;
        }
        let r = (s / dd).sqrt();
        if r.is_nan() || r > worst {
            worst = r;
        }
    }
    worst
}

/// The PI step-size controller of the `DOPRI5` code: after a step with error norm `err`
/// (≤ 1 accepted) the step is divided by
/// `fac = clamp(err^{1/(q+1) − 0.75 β} / err_old^β / safety, 1/fac_max, 1/fac_min)`,
/// `q` the order of the embedded solution; after a rejection by
/// `min(1/fac_min, err^{1/(q+1) − 0.75 β}/safety)`. Hairer's constants: safety 0.9, step
/// ratio in `[0.2, 10]`, β = 0.04 (0 gives the classic I controller).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PiController<F> {
    pub safety: F,
    pub beta: F,
    /// `1/(q + 1) − 0.75 β`.
    pub expo1: F,
    /// Bounds of `h/h_new`: `[1/10, 1/0.2]`.
    pub fac_lo: F,
    pub fac_hi: F,
}

impl<F: Real> PiController<F> {
    /// The controller for an embedded solution of order `order_err`.
    pub fn new(order_err: usize, safety: F, beta: F) -> Self {
        let q1 = F::from_usize_lossy(order_err + 1);
        Self {
            safety,
            beta,
            expo1: F::one() / q1 - beta * F::lit(0.75),
            fac_lo: F::lit(0.1),
            fac_hi: F::lit(5.0),
        }
    }
    /// The next step after an accepted one.
    pub fn accept(&self, h: F, err: F, err_old: F) -> F {
        let fac11 = err.powf(self.expo1);
        let fac = (fac11 / err_old.powf(self.beta) / self.safety)
            .max(self.fac_lo)
            .min(self.fac_hi);
        h / fac
    }
    /// The retried step after a rejection.
    pub fn reject(&self, h: F, err: F) -> F {
        let fac11 = err.powf(self.expo1);
        h / self.fac_hi.min(fac11 / self.safety)
    }
}

/// The first guess of the starting-step heuristic from `d0 = ‖y₀‖` and `d1 = ‖F(t₀, y₀)‖`
/// (both in the error norm): `h₀ = 0.01 d0/d1`, or `10⁻⁶` when either is tiny; at most `span`.
pub(crate) fn first_step_guess<F: Real>(d0: F, d1: F, span: F) -> F {
    let l = F::lit;
    let h0 = if d0 < l(1e-5) || d1 < l(1e-5) {
        l(1e-6)
    } else {
        l(0.01) * d0 / d1
    };
    h0.min(span)
}

/// The starting step from the guess `h0`, `d1 = ‖F(t₀, y₀)‖` and the second-derivative
/// estimate `d2 = ‖F(t₀ + h₀, y₀ + h₀ F) − F(t₀, y₀)‖ / h₀`: `h₁ = (0.01 / max(d1, d2))^{1/p}`
/// for a method of order `p`, then `min(100 h₀, h₁, span)`; a non-finite result falls back
/// to `min(10⁻⁶, span)`.
pub(crate) fn starting_step<F: Real>(h0: F, d1: F, d2: F, order: usize, span: F) -> F {
    let l = F::lit;
    let m = d1.max(d2);
    let h1 = if m <= l(1e-15) {
        l(1e-6).max(h0 * l(1e-3))
    } else {
        (l(0.01) / m).powf(F::one() / F::from_usize_lossy(order))
    };
    let h = (l(100.0) * h0).min(h1).min(span);
    if h.is_finite() && h > F::zero() {
        h
    } else {
        l(1e-6).min(span)
    }
}

/// The error norm of the diffusion solvers' embedded pairs — adaptive DPM-Solver (Lu et al.
/// 2022, "DPM-Solver", §4.2 / App. C, Alg. 4–5) and "Gotta Go Fast" (Jolicoeur-Martineau
/// et al. 2021, Alg. 1): for each row, the RMS over its columns of
/// `(hi − lo) / max(atol, rtol · max(|lo|, |prev|))` with `prev` the lower-order solution
/// of the last accepted step, maximised over the rows; NaN propagates.
pub(crate) fn pair_error_norm<F: Real>(
    hi: &[F],
    lo: &[F],
    prev: &[F],
    d: usize,
    (atol, rtol): (F, F),
    over: BatchNorm,
) -> F {
    if over == BatchNorm::Rms {
        return pair_error_rms(hi, lo, prev, (atol, rtol));
    }
    let mut worst = F::zero();
    let dd = F::from_usize_lossy(d);
    for ((h, l), p) in hi.chunks(d).zip(lo.chunks(d)).zip(prev.chunks(d)) {
        let mut s = F::zero();
        for j in 0..d {
            let sc = atol.max(rtol * l[j].abs().max(p[j].abs()));
            let q = (h[j] - l[j]) / sc;
            s += q * q;
        }
        let r = (s / dd).sqrt();
        if r.is_nan() || r > worst {
            worst = r;
        }
    }
    worst
}

/// The RMS of the same scaled differences over the whole batch.
fn pair_error_rms<F: Real>(hi: &[F], lo: &[F], prev: &[F], (atol, rtol): (F, F)) -> F {
    let mut s = F::zero();
    for ((&h, &l), &p) in hi.iter().zip(lo).zip(prev) {
        let q = (h - l) / atol.max(rtol * l.abs().max(p.abs()));
        s += q * q;
    }
    (s / F::from_usize_lossy(hi.len().max(1))).sqrt()
}

/// How an adaptive diffusion solver sharing one step over a batch combines the samples'
/// errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchNorm {
    /// The largest per-sample RMS error: every sample meets the tolerance (the official
    /// adaptive DPM-Solver; Gotta Go Fast's per-sample control made batch-wide). Steps
    /// shrink as the batch grows (its extreme samples do).
    MaxSample,
    /// The RMS over the whole batch: the error of a typical sample; the steps do not
    /// depend on the batch size.
    Rms,
}

/// The I controller of the same papers: the next step `θ h err^{−expo}` (`θ = 0.9`,
/// `expo = 1/k` for an error estimate of local order `k`; 0.9 in Gotta Go Fast). A zero
/// error gives `+∞` (the caller caps the step by what is left); a non-finite one a tenth.
pub(crate) fn i_controller<F: Real>(h: F, err: F, theta: F, expo: F) -> F {
    if err.is_finite() {
        theta * h * err.powf(-expo)
    } else {
        h * F::lit(0.1)
    }
}

/// The step-size bookkeeping of an adaptive diffusion solver crossing a span in some
/// coordinate (time, log-SNR) with the [`i_controller`]: the current step, the attempt
/// budget, the underflow check and the landing on the end point.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanSteps<F> {
    h: F,
    attempts: usize,
    max_steps: usize,
}

impl<F: Real> SpanSteps<F> {
    pub fn new(h0: F, max_steps: usize) -> Self {
        Self {
            h: h0,
            attempts: 0,
            max_steps,
        }
    }
    /// Attempts made so far.
    pub fn attempts(&self) -> usize {
        self.attempts
    }
    /// The next attempt with `left > 0` still to go (at time `t`, for messages): the step
    /// and whether it lands on the end (`h ← min(h, left)`, Lu et al. 2022 Alg. 4 step 9;
    /// Jolicoeur-Martineau et al. 2021 Alg. 1). Errors when the budget is spent or the step
    /// underflowed (`h ≤ 1e-10 · max(left, 1)`).
    pub fn propose(&mut self, left: F, t: F, what: &'static str) -> Result<(F, bool)> {
        if self.attempts >= self.max_steps {
            return Err(Error::StepBudgetExceeded {
                max_steps: self.max_steps,
                t_reached: t.as_f64(),
            });
        }
        if self.h.is_nan() || self.h <= F::lit(1e-10) * left.abs().max(F::one()) {
            return Err(Error::NoConvergence {
                what,
                reason: format!(
                    "the step underflowed at t = {} (a non-finite or wildly varying model \
                     output)",
                    t.as_f64()
                ),
            });
        }
        self.attempts += 1;
        let last = self.h >= left * (F::one() - F::lit(1e-12));
        Ok((if last { left } else { self.h }, last))
    }
    /// After an attempt of size `h_used` with error norm `err`: the next step
    /// `θ h err^{−expo}`; returns whether the attempt is accepted (`err ≤ 1`).
    pub fn settle(&mut self, h_used: F, err: F, theta: F, expo: F) -> bool {
        let next = i_controller(h_used, err, theta, expo);
        let accepted = err <= F::one();
        self.h = if next > F::zero() { next } else { h_used };
        accepted
    }
}
