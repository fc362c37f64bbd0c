//! UniPC (Zhao, Bai, Rao, Zhou & Lu 2023, "UniPC: A Unified Predictor-Corrector Framework
//! for Fast Sampling of Diffusion Models", Alg. 2 and App. B–C): the multistep predictor
//! UniP-p and the corrector UniC-p in data prediction with `B(h) = h` (**bh1**) or
//! `B(h) = e^h − 1` (**bh2**), as diffusers' `UniPCMultistepScheduler` (`predict_x0=True`).
//!
//! With data predictions `m₀ = D_i` (at `λ_i`) and earlier `m_k` (at `λ_{i−k}`), a step to
//! `λ_{i+1}`, `h = λ_{i+1} − λ_i`, `ĥ = −h`, `r_k = (λ_{i−k} − λ_i)/h`,
//! `D¹_k = (m_k − m₀)/r_k`:
//!
//! ```text
//! UniP-p:  x̃_{i+1} = (σ_{i+1}/σ_i) x_i − α_{i+1} (e^{ĥ} − 1) m₀ − α_{i+1} B(h) Σ_{k<p} ρ_k D¹_k
//! UniC-p:  x_{i+1}  = (σ_{i+1}/σ_i) x_i − α_{i+1} (e^{ĥ} − 1) m₀
//!                     − α_{i+1} B(h) (Σ_{k<p} ρ_k D¹_k + ρ_p (D(x̃_{i+1}) − m₀))
//! ```
//!
//! where `ρ` solves `R ρ = g` with `R_{jk} = r_k^{j−1}` (`r_p = 1`) and
//! `g_j = ĥ φ_j(ĥ) j!/B(h)`, `ĥφ₁ = e^{ĥ} − 1`, `φ_{j+1} = φ_j/ĥ − 1/(j+1)!` (App. B,
//! eq. 9; UniP uses the first `p − 1` equations, and order 2 takes `ρ = ½` as diffusers;
//! UniC-1 takes `ρ = ½`). The model output at the predicted `x̃_{i+1}` serves both the
//! corrector and the next predictor (one NFE per step); the last step is not corrected.
//! UniP-p with UniC-p is of order `p + 1`.

use super::driver::{Advance, GridSampler, Plan, StepContext, StepInfo, StepMethod};
use crate::error::{Error, Result};
use crate::grid::{FinalSigmas, TimeGrid};
use crate::num::Real;
use crate::sde::MarginalSde;
use crate::tweedie::denoise_into;
use ndarray::Array2;
use rand::RngCore;

/// UniPC's `B(h)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UniPcVariant {
    /// `B(h) = h` (diffusers `solver_type="bh1"`; recommended below 10 steps).
    Bh1,
    /// `B(h) = e^h − 1` (diffusers `solver_type="bh2"`, its default).
    Bh2,
}

/// One UniPC step (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct UniPcStep<F, S> {
    sde: S,
    order: usize,
    variant: UniPcVariant,
    corrector: bool,
    lower_order_final: bool,
    final_zero: bool,
    _f: std::marker::PhantomData<fn() -> F>,
}

/// Per-run state: the last `p` data predictions and their log-SNRs, the current model
/// output, the state before the last predictor and that predictor's order.
#[derive(Debug)]
pub struct UniPcState<F> {
    m: Vec<Array2<F>>,
    lam: [F; 3],
    cur: Array2<F>,
    last: Array2<F>,
    last_sig: F,
    count: usize,
    last_order: usize,
}

/// `(B(h), e^{ĥ} − 1, g)` for `ĥ = −h` and `p` equations (App. B, eq. 9).
fn rhs<F: Real>(variant: UniPcVariant, h: F, p: usize) -> (F, F, [F; 3]) {
    let hh = -h;
    let h_phi_1 = hh.exp_m1();
    let b_h = match variant {
        UniPcVariant::Bh1 => hh,
        UniPcVariant::Bh2 => h_phi_1,
    };
    let mut g = [F::zero(); 3];
    let mut h_phi_k = h_phi_1 / hh - F::one();
    let mut fact = F::one();
    for (j, gj) in g.iter_mut().enumerate().take(p) {
        *gj = h_phi_k * fact / b_h;
        fact *= F::from_usize_lossy(j + 2);
        h_phi_k = h_phi_k / hh - F::one() / fact;
    }
    (b_h, h_phi_1, g)
}

/// Solve `R ρ = g` for `n ≤ 3` with `R_{jk} = r_k^j` (Gaussian elimination, partial pivoting).
fn solve<F: Real>(r: &[F], g: &[F], n: usize) -> Result<[F; 3]> {
    let mut a = [[F::zero(); 4]; 3];
    for j in 0..n {
        for k in 0..n {
            a[j][k] = r[k].powi(j as i32);
        }
        a[j][3] = g[j];
    }
    for c in 0..n {
        let piv = (c..n)
            .max_by(|&i, &j| {
                a[i][c]
                    .abs()
                    .partial_cmp(&a[j][c].abs())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .unwrap_or(c);
        a.swap(c, piv);
        if a[c][c] == F::zero() || !a[c][c].is_finite() {
            return Err(Error::NoConvergence {
                what: "UniPC coefficients",
                reason: "the log-SNR steps make the order system singular (repeated times?)".into(),
            });
        }
        for i in 0..n {
            if i != c {
                let f = a[i][c] / a[c][c];
                for k in c..4 {
                    a[i][k] -= f * a[c][k];
                }
            }
        }
    }
    let mut rho = [F::zero(); 3];
    for j in 0..n {
        rho[j] = a[j][3] / a[j][j];
    }
    Ok(rho)
}

impl<F: Real, S: MarginalSde<F>> UniPcStep<F, S> {
    /// `x ← a·base + c₀ m₀ + Σ_k c_k m_k (+ c_cur cur)`: the update of UniP (`cur` unused) or
    /// UniC, from `base` at `λ_b` (with `α`, `σ` there) to `t` with `p` history terms.
    #[allow(clippy::needless_range_loop)]
    fn update(
        &self,
        st: &UniPcState<F>,
        x: &mut Array2<F>,
        from_last: bool,
        (sig_b, t, h): (F, F, F),
        p: usize,
        correct: bool,
    ) -> Result<()> {
        let sch = self.sde.schedule();
        let (a_t, sig_t) = (sch.alpha(t), sch.sigma(t));
        // r_k = (λ_{i−k} − λ_i)/h for the history terms k = 1..p−1, then r_p = 1.
        let mut r = [F::one(); 3];
        for k in 1..p {
            r[k - 1] = (st.lam[k] - st.lam[0]) / h;
        }
        let (b_h, h_phi_1, g) = rhs(self.variant, h, p);
        let half = F::lit(0.5);
        // ρ: the predictor uses the first p − 1 equations (order 2: ρ = ½); the corrector
        // all p (order 1: ρ = ½).
        let rho = if correct {
            if p == 1 {
                [half, F::zero(), F::zero()]
            } else {
                solve(&r, &g, p)?
            }
        } else if p == 2 {
            [half, F::zero(), F::zero()]
        } else if p > 2 {
            solve(&r, &g, p - 1)?
        } else {
            [F::zero(); 3]
        };
        let ratio = sig_t / sig_b;
        let ab = -a_t * b_h;
        let mut c0 = -a_t * h_phi_1;
        let mut ck = [F::zero(); 3];
        for k in 1..p {
            ck[k] = ab * rho[k - 1] / r[k - 1];
            c0 -= ck[k];
        }
        let c_cur = if correct { ab * rho[p - 1] } else { F::zero() };
        c0 -= c_cur;
        if from_last {
            x.assign(&st.last);
        }
        x.zip_mut_with(&st.m[0], |x, &m| *x = ratio * *x + c0 * m);
        for k in 1..p {
            let c = ck[k];
            x.zip_mut_with(&st.m[k], |x, &m| *x += c * m);
        }
        if correct {
            x.zip_mut_with(&st.cur, |x, &m| *x += c_cur * m);
        }
        Ok(())
    }
}

impl<F: Real, S: MarginalSde<F>> StepMethod<F> for UniPcStep<F, S> {
    type State = UniPcState<F>;

    fn check_plan(&self, plan: &Plan<F>) -> Result<()> {
        plan.check_sampling_grid(self.sde.t_range())
    }
    fn is_stochastic(&self) -> bool {
        false
    }
    fn initial_state(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        self.sde.sample_prior(n, dim, rng)
    }
    fn initial_rows(
        &self,
        seed: u64,
        rows: std::ops::Range<usize>,
        dim: usize,
    ) -> Result<Array2<F>> {
        self.sde.sample_prior_rows(seed, rows, dim)
    }
    fn init(&self, _: &mut StepContext<'_, F>, x: &Array2<F>, _: &Plan<F>) -> Result<Self::State> {
        Ok(UniPcState {
            m: (0..self.order)
                .map(|_| Array2::zeros(x.raw_dim()))
                .collect(),
            lam: [F::zero(); 3],
            cur: Array2::zeros(x.raw_dim()),
            last: Array2::zeros(x.raw_dim()),
            last_sig: F::one(),
            count: 0,
            last_order: 0,
        })
    }
    fn step(
        &self,
        ctx: &mut StepContext<'_, F>,
        st: &mut UniPcState<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<Advance<F>> {
        let sch = self.sde.schedule();
        let (t, s) = (step.t, step.t_next);
        let (sig_t, lam_t) = (sch.sigma(t), sch.log_snr(t));
        denoise_into(ctx.model(), sch, x.view(), t, st.cur.view_mut())?;
        let i = step.index;
        if i > 0 && self.corrector && st.last_order > 0 {
            // UniC with the previous predictor's order, from the state before it.
            let h = lam_t - st.lam[0];
            self.update(st, x, true, (st.last_sig, t, h), st.last_order, true)?;
        }
        // Push D_i into the history (m₀ newest).
        st.m.rotate_right(1);
        std::mem::swap(&mut st.m[0], &mut st.cur);
        for k in (1..3).rev() {
            st.lam[k] = st.lam[k - 1];
        }
        st.lam[0] = lam_t;
        st.count = (st.count + 1).min(self.order);
        let mut p = st.count;
        if self.lower_order_final {
            if let Some(n) = step.steps {
                p = p.min(n + usize::from(self.final_zero) - i);
            }
        }
        st.last_order = p;
        st.last.assign(x);
        st.last_sig = sig_t;
        let h = sch.log_snr(s) - lam_t;
        self.update(st, x, false, (sig_t, s, h), p, false)?;
        Ok(Advance::Reached)
    }
    fn marginal(&self, t: F) -> Option<(F, F)> {
        let sch = self.sde.schedule();
        Some((sch.alpha(t), sch.sigma(t)))
    }
    fn nfe_per_step(&self) -> Option<usize> {
        Some(1)
    }
}

/// UniPC (Zhao et al. 2023; see the [module docs](crate::sample::unipc)): the [`GridSampler`] of a
/// [`UniPcStep`], diffusers' `UniPCMultistepScheduler` with `predict_x0=True`. One NFE per
/// step (+1 with [`GridSampler::denoise_final`]).
///
/// Defaults as diffusers: order 2 (UniP-2 with UniC-2, third order), `bh2`, corrector on,
/// lower-order final steps (step `i` of `n` uses order `≤ n − i`, where a final denoise set
/// by [`final_sigmas`](GridSampler::final_sigmas)`(FinalSigmas::Zero)` counts as the last
/// step, as diffusers' `final_sigmas_type="zero"` does).
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::{UniPc, UniPcVariant};
/// use rand::SeedableRng;
/// let sde = VpSde::<f64>::default();
/// let model = AnalyticScore::new(problems::ring2d(), *sde.schedule());
/// let grid = TimeGrid::log_snr(sde.schedule(), 15).unwrap();
/// let unipc = UniPc::new(sde.clone(), grid.clone()).unwrap().order(3).unwrap();
/// let run = unipc.sample(&model, 500, 2, &mut rand_pcg::Pcg64::seed_from_u64(2)).unwrap();
/// assert_eq!(run.nfe, 15);
/// let r = run.samples.rows().into_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / 500.0;
/// assert!((r - 4.0).abs() < 0.2);
/// assert!(UniPc::new(sde, grid).unwrap().order(4).is_err());
/// ```
pub type UniPc<F, S> = GridSampler<F, UniPcStep<F, S>>;

impl<F: Real, S: MarginalSde<F>> GridSampler<F, UniPcStep<F, S>> {
    /// UniPC-2 with `bh2` and lower-order final steps on a decreasing grid inside the range.
    pub fn new(sde: S, grid: TimeGrid<F>) -> Result<Self> {
        let step = UniPcStep {
            sde,
            order: 2,
            variant: UniPcVariant::Bh2,
            corrector: true,
            lower_order_final: true,
            final_zero: false,
            _f: std::marker::PhantomData,
        };
        GridSampler::with_grid(step, grid)
    }
    /// The predictor's order `p` (1, 2 or 3; diffusers' `solver_order`). With the corrector
    /// the method is of order `p + 1`.
    pub fn order(mut self, order: usize) -> Result<Self> {
        if !(1..=3).contains(&order) {
            return Err(Error::param("order", order as f64, "must be 1, 2 or 3"));
        }
        self.method.order = order;
        Ok(self)
    }
    /// `bh1` or `bh2`.
    pub fn variant(mut self, variant: UniPcVariant) -> Self {
        self.method.variant = variant;
        self
    }
    /// The corrector UniC on (UniPC, the default) or off (UniP alone).
    pub fn corrector(mut self, on: bool) -> Self {
        self.method.corrector = on;
        self
    }
    /// Lower the order on the final steps (diffusers' `lower_order_final`, default on):
    /// step `i` of `n` evaluations uses order `≤ n − i`.
    pub fn lower_order_final(mut self, on: bool) -> Self {
        self.method.lower_order_final = on;
        self
    }
    /// Where the run ends, as diffusers' `final_sigmas_type`: [`FinalSigmas::Zero`] adds the
    /// final Tweedie denoise ([`GridSampler::denoise_final`]), which then counts as the
    /// last, first-order step of [`lower_order_final`](Self::lower_order_final);
    /// [`FinalSigmas::SigmaMin`] ends at the grid's last time.
    pub fn final_sigmas(mut self, last: FinalSigmas) -> Self {
        let zero = last == FinalSigmas::Zero;
        self.method.final_zero = zero;
        self.denoise_final = zero;
        self
    }
}
