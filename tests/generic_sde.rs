//! The samplers and the likelihood on SDEs given only through `ForwardSde` — the three
//! exact tests of the solver framework:
//!
//! (a) the VP SDE written as a plain `ForwardSde` (no `linear_schedule`) gives the samples
//!     and log-likelihoods of the specialised `VpSde` path, same seed, to rounding;
//! (b) overdamped Langevin `dx = ∇log π dt + √2 dw` with π a Gaussian mixture has `p_t = π`
//!     for all t (π is its stationary law), so its score is known (`∇log π`) and the reverse
//!     sampler started from π must return π: checked at the Monte-Carlo noise floor, and
//!     the same check is shown to reject a reverse drift with the wrong sign or the
//!     probability-flow weight ½;
//! (c) its probability-flow ODE is `dx/dt = ∇log π − ½·2·∇log π = 0`, so the likelihood is
//!     `log π` exactly (to rounding), with the drift's divergence from the SDE or estimated.

mod common;
use common::{max_abs_diff, rng};

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut1, ArrayViewMut2, array};
use rand::RngCore;
use score_sde::likelihood::{DivergenceMethod, OdeLikelihood};
use score_sde::prelude::*;
use score_sde::sample::{
    Advance, AncestralSampling, Dopri5, EulerMaruyama, FixedMethod, GridSampler, Pc, Plan,
    ProbabilityFlow, ReverseDiffusion, StepContext, StepInfo, StepMethod,
};

// ---------------------------------------------------------------- (a) the VP SDE, plainly

/// The VP SDE of Song et al. 2021 (eq. 11) through `ForwardSde` alone: drift `−½β(t) x`,
/// diffusion `√β(t)`, prior `N(0, I)` (the draws of `VpSde`'s prior), and `discretize` the
/// exact transition (as `LinearSde` has it) so that the reverse-diffusion predictor agrees
/// too. `div` says whether it reports its drift's divergence `D f(t)`.
#[derive(Debug)]
struct PlainVp {
    vp: VpSde<f64>,
    div: bool,
}

impl ForwardSde<f64> for PlainVp {
    fn drift(&self, x: ArrayView2<f64>, t: f64, mut out: ArrayViewMut2<f64>) -> Result<()> {
        let f = self.vp.schedule().f(t);
        out.zip_mut_with(&x, |o, &x| *o = f * x);
        Ok(())
    }
    fn diffusion(&self, t: f64) -> f64 {
        self.vp.schedule().g2(t).sqrt()
    }
    fn t_range(&self) -> (f64, f64) {
        self.vp.t_range()
    }
    fn sample_prior(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<f64>> {
        self.vp.sample_prior(n, dim, rng)
    }
    fn prior_log_prob(&self, x: ArrayView2<f64>, out: ArrayViewMut1<f64>) -> Result<()> {
        self.vp.prior_log_prob(x, out)
    }
    fn discretize(
        &self,
        x: ArrayView2<f64>,
        t: f64,
        dt: f64,
        mut f_out: ArrayViewMut2<f64>,
    ) -> Result<f64> {
        let (a, v) = self.vp.schedule().transition(t - dt, t);
        f_out.zip_mut_with(&x, |o, &x| *o = (a - 1.0) * x);
        Ok(v.sqrt())
    }
    fn drift_divergence(
        &self,
        x: ArrayView2<f64>,
        t: f64,
        mut out: ArrayViewMut1<f64>,
    ) -> Option<Result<()>> {
        if !self.div {
            return None;
        }
        out.fill(x.ncols() as f64 * self.vp.schedule().f(t));
        Some(Ok(()))
    }
}

#[test]
fn a_plain_forward_sde_that_is_vp_samples_as_the_specialised_path() {
    let vp = VpSde::<f64>::default();
    let plain = PlainVp {
        vp: vp.clone(),
        div: true,
    };
    assert!(plain.linear_schedule().is_none());
    let ring = problems::ring2d::<f64>();
    let model = AnalyticScore::new(ring, *vp.schedule());
    let grid = TimeGrid::uniform(vp.schedule(), 100).unwrap();
    let pair = |a: &dyn Sampler<f64>, b: &dyn Sampler<f64>, what: &str, tol: f64| {
        let ra = a.sample(&model, 300, 2, &mut rng(5)).unwrap();
        let rb = b.sample(&model, 300, 2, &mut rng(5)).unwrap();
        assert_eq!(ra.nfe, rb.nfe, "{what}");
        let d = max_abs_diff(&ra.samples, &rb.samples);
        println!("{what}: max |Δ| = {d:.2e}");
        // To rounding: the fused linear update and the generic one (drift buffer, then
        // increment) round differently, ~1e-16 relative per step; over 100 steps of values
        // O(4) that stays below 1e-11. A wrong coefficient would move samples by O(0.01).
        assert!(d < tol, "{what}: {d}");
    };
    let pc = || Pc::new(vp.clone(), grid.clone()).unwrap();
    let pp = || {
        Pc::new(
            PlainVp {
                vp: vp.clone(),
                div: true,
            },
            grid.clone(),
        )
        .unwrap()
    };
    pair(
        &pc().predictor(EulerMaruyama).unwrap(),
        &pp().predictor(EulerMaruyama).unwrap(),
        "Euler–Maruyama",
        1e-11,
    );
    // `discretize` is called for the plain SDE (its exact transition) and fused for VpSde.
    pair(
        &pc().predictor(ReverseDiffusion).unwrap(),
        &pp().predictor(ReverseDiffusion).unwrap(),
        "reverse diffusion",
        1e-11,
    );
    pair(
        &ProbabilityFlow::fixed(vp.clone(), FixedMethod::Rk4, grid.clone()).unwrap(),
        &ProbabilityFlow::fixed(
            PlainVp {
                vp: vp.clone(),
                div: true,
            },
            FixedMethod::Rk4,
            grid.clone(),
        )
        .unwrap(),
        "PF-ODE RK4",
        1e-11,
    );
    // The adaptive solver: identical step sequence as long as the error norms round the
    // same way, so only to the tolerance's order if a step decision flips; it does not here.
    pair(
        &ProbabilityFlow::adaptive(vp.clone(), Dopri5::new(1e-5, 1e-5).unwrap()),
        &ProbabilityFlow::adaptive(
            PlainVp {
                vp: vp.clone(),
                div: true,
            },
            Dopri5::new(1e-5, 1e-5).unwrap(),
        ),
        "PF-ODE Dormand–Prince",
        1e-9,
    );
    // Ancestral sampling needs α, σ: refused for the plain SDE when the sampler is built.
    let e = Pc::new(
        PlainVp {
            vp: vp.clone(),
            div: true,
        },
        grid.clone(),
    )
    .unwrap()
    .predictor(AncestralSampling)
    .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");

    // The likelihood: exact divergence (the SDE's D f(t)) against VpSde's.
    let x = problems::ring2d::<f64>().sample(50, &mut rng(6)).unwrap();
    let lik = |div| {
        OdeLikelihood::new(vp.clone())
            .unwrap()
            .tolerances(1e-7, 1e-7)
            .unwrap()
            .divergence(div)
            .unwrap()
    };
    let plain_lik = |d: bool, div| {
        OdeLikelihood::new(PlainVp {
            vp: vp.clone(),
            div: d,
        })
        .unwrap()
        .tolerances(1e-7, 1e-7)
        .unwrap()
        .divergence(div)
        .unwrap()
    };
    let a = lik(DivergenceMethod::Exact)
        .log_prob(&model, x.view(), &mut rng(7))
        .unwrap();
    let b = plain_lik(true, DivergenceMethod::Exact)
        .log_prob(&model, x.view(), &mut rng(7))
        .unwrap();
    // To rounding (same solver path; 1e-9 nats is far below any method error).
    assert!(
        max_abs_diff(&a.log_p, &b.log_p) < 1e-9,
        "{}",
        max_abs_diff(&a.log_p, &b.log_p)
    );
    // Without the SDE's drift divergence, exact is refused, and Hutchinson estimates ∇ · f
    // with the same probes as the score's: for a linear drift vᵀ(∇f)v = f(t) ‖v‖² = D f(t)
    // exactly for Rademacher probes, up to the finite difference's rounding (~1e-10).
    let e = plain_lik(false, DivergenceMethod::Exact)
        .log_prob(&model, x.view(), &mut rng(7))
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    let h = DivergenceMethod::hutchinson(2);
    let a = lik(h).log_prob(&model, x.view(), &mut rng(8)).unwrap();
    let b = plain_lik(false, h)
        .log_prob(&model, x.view(), &mut rng(8))
        .unwrap();
    assert!(
        max_abs_diff(&a.log_p, &b.log_p) < 1e-6,
        "{}",
        max_abs_diff(&a.log_p, &b.log_p)
    );
}

// ---------------------------------------------------------------- (b), (c) Langevin SDE

/// Overdamped Langevin dynamics with stationary law π: `dx = ∇log π(x) dt + √2 dw`. Its
/// prior (at any t) is π itself. `div` says whether it reports `∇ · f = Δ log π`.
#[derive(Debug)]
struct LangevinSde {
    pi: GaussianMixture<f64>,
    div: bool,
}

impl ForwardSde<f64> for LangevinSde {
    fn drift(&self, x: ArrayView2<f64>, _t: f64, mut out: ArrayViewMut2<f64>) -> Result<()> {
        out.assign(&self.pi.score(x)?);
        Ok(())
    }
    fn diffusion(&self, _t: f64) -> f64 {
        std::f64::consts::SQRT_2
    }
    fn t_range(&self) -> (f64, f64) {
        (1e-3, 1.0)
    }
    fn sample_prior(&self, n: usize, _dim: usize, rng: &mut dyn RngCore) -> Result<Array2<f64>> {
        self.pi.sample(n, rng)
    }
    fn prior_log_prob(&self, x: ArrayView2<f64>, mut out: ArrayViewMut1<f64>) -> Result<()> {
        out.assign(&self.pi.log_prob(x)?);
        Ok(())
    }
    fn drift_divergence(
        &self,
        x: ArrayView2<f64>,
        _t: f64,
        mut out: ArrayViewMut1<f64>,
    ) -> Option<Result<()>> {
        if !self.div {
            return None;
        }
        Some(self.pi.hessian_trace(x).map(|h| out.assign(&h)))
    }
}

/// π: three well-overlapping 2-D components (variances 0.5–1.2), so the discretisation
/// bias of 250 reverse steps (h = 0.004, a ULA step: variance inflation ≤ h/(2·0.5) = 0.4 %)
/// is far below the Monte-Carlo floor of 20 000 samples.
fn pi() -> GaussianMixture<f64> {
    GaussianMixture::new(
        array![0.3, 0.5, 0.2],
        array![[-1.5, 0.0], [1.0, 1.0], [0.5, -1.5]],
        ndarray::Array3::from_shape_vec(
            (3, 2, 2),
            vec![0.8, 0.2, 0.2, 0.6, 1.2, -0.3, -0.3, 0.7, 0.5, 0.0, 0.0, 0.9],
        )
        .unwrap(),
    )
    .unwrap()
}

/// The score of π at every t (p_t = π for the Langevin SDE started at π).
fn pi_score(pi: GaussianMixture<f64>) -> impl ScoreModel<f64> {
    ScoreFn::new(
        move |x: ArrayView2<f64>, _t: f64, mut out: ArrayViewMut2<f64>| -> Result<()> {
            out.assign(&pi.score(x)?);
            Ok(())
        },
    )
    .with_dim(2)
}

/// Whether `x` (N × 2) is a sample of π at the Monte-Carlo noise floor: mean within 4.5
/// standard errors per coordinate; every covariance entry within 4.5 standard errors
/// (the SE of a sample covariance entry from the exact fourth moments is estimated from an
/// exact sample of the same size); the mean log-density within 4.5 standard errors of its
/// exact value, estimated from a second exact sample.
fn is_pi(x: &Array2<f64>) -> std::result::Result<(), String> {
    let pi = pi();
    let n = x.nrows() as f64;
    let exact = pi.sample(x.nrows(), &mut rng(99)).unwrap();
    let (m, c) = (pi.mean(), pi.covariance());
    let xm = x.mean_axis(ndarray::Axis(0)).unwrap();
    for j in 0..2 {
        let se = (c[[j, j]] / n).sqrt();
        if (xm[j] - m[j]).abs() > 4.5 * se {
            return Err(format!("mean[{j}] {} vs {} (SE {se:.4})", xm[j], m[j]));
        }
    }
    let centred = x - &xm;
    let cov = centred.t().dot(&centred) / (n - 1.0);
    let ec = &exact - &m;
    for j in 0..2 {
        for k in 0..2 {
            let prod: Array1<f64> = ec.column(j).to_owned() * ec.column(k);
            let se = prod.std(1.0) / n.sqrt();
            if (cov[[j, k]] - c[[j, k]]).abs() > 4.5 * se {
                return Err(format!(
                    "cov[{j},{k}] {} vs {} (SE {se:.4})",
                    cov[[j, k]],
                    c[[j, k]]
                ));
            }
        }
    }
    let lx = pi.log_prob(x.view()).unwrap();
    let le = pi.log_prob(exact.view()).unwrap();
    let se = (le.var(1.0) / n + lx.var(1.0) / n).sqrt();
    let gap = lx.mean().unwrap() - le.mean().unwrap();
    if gap.abs() > 4.5 * se {
        return Err(format!("log-likelihood gap {gap:.4} (SE {se:.4})"));
    }
    Ok(())
}

/// A reverse Euler–Maruyama step `x ← x − [f − w g² s] h + g √h z` with the weight `w` of
/// the user's choosing: `w = 1` is the reverse SDE, `w = −1` its sign error, `w = ½` the
/// probability-flow weight with noise. Written through the public trait only.
#[derive(Debug)]
struct WeightedEm {
    sde: LangevinSde,
    w: f64,
}

impl StepMethod<f64> for WeightedEm {
    type State = (Array2<f64>, Array2<f64>);
    fn check_plan(&self, plan: &Plan<f64>) -> Result<()> {
        plan.check_sampling_grid(self.sde.t_range())
    }
    fn is_stochastic(&self) -> bool {
        true
    }
    fn initial_state(&self, n: usize, d: usize, rng: &mut dyn RngCore) -> Result<Array2<f64>> {
        self.sde.sample_prior(n, d, rng)
    }
    fn init(
        &self,
        _: &mut StepContext<'_, f64>,
        x: &Array2<f64>,
        _: &Plan<f64>,
    ) -> Result<Self::State> {
        Ok((Array2::zeros(x.raw_dim()), Array2::zeros(x.raw_dim())))
    }
    fn step(
        &self,
        ctx: &mut StepContext<'_, f64>,
        (s, f): &mut Self::State,
        x: &mut Array2<f64>,
        step: &StepInfo<f64>,
    ) -> Result<Advance<f64>> {
        let (t, h) = (step.t, step.h());
        ctx.model().score(x.view(), t, s.view_mut())?;
        self.sde.drift(x.view(), t, f.view_mut())?;
        let g = self.sde.diffusion(t);
        let wg2 = self.w * g * g;
        f.zip_mut_with(s, |f, &s| *f = -(*f - wg2 * s) * h);
        let c = if step.is_last() { 0.0 } else { g * h.sqrt() };
        ctx.noise()?
            .update(x.view_mut(), f.view(), |x, inc, z| x + inc + c * z);
        Ok(Advance::Reached)
    }
}

#[test]
fn b_reverse_sampler_of_a_nonlinear_sde_keeps_its_stationary_law() {
    let sde = LangevinSde {
        pi: pi(),
        div: true,
    };
    let model = pi_score(pi());
    // 250 uniform steps over the SDE's range [1e-3, 1] (the VP schedule's range).
    let grid = TimeGrid::uniform(&VpLinear::<f64>::default(), 250).unwrap();
    let n = 20_000;
    // The library's Euler–Maruyama and reverse-diffusion predictors (the latter through the
    // default `discretize`, i.e. the same Euler–Maruyama step).
    for (name, s) in [
        (
            "EM",
            Box::new(
                Pc::new(
                    LangevinSde {
                        pi: pi(),
                        div: true,
                    },
                    grid.clone(),
                )
                .unwrap()
                .predictor(EulerMaruyama)
                .unwrap(),
            ) as Box<dyn Sampler<f64>>,
        ),
        (
            "RD",
            Box::new(
                Pc::new(
                    LangevinSde {
                        pi: pi(),
                        div: true,
                    },
                    grid.clone(),
                )
                .unwrap()
                .predictor(ReverseDiffusion)
                .unwrap(),
            ),
        ),
    ] {
        let run = s.sample(&model, n, 2, &mut rng(11)).unwrap();
        assert_eq!(run.nfe, 250);
        if let Err(e) = is_pi(&run.samples) {
            panic!("{name}: {e}");
        }
    }
    // The same check rejects a reverse drift with the wrong sign (x − 3 s h: uphill) and
    // the probability-flow weight ½ with noise (pure diffusion: variance +2 over [0, 1]).
    for (w, what) in [
        (1.0, None),
        (-1.0, Some("wrong sign")),
        (0.5, Some("weight ½")),
    ] {
        let s = GridSampler::with_grid(
            WeightedEm {
                sde: LangevinSde {
                    pi: pi(),
                    div: true,
                },
                w,
            },
            grid.clone(),
        )
        .unwrap();
        let run = s.sample(&model, n, 2, &mut rng(11)).unwrap();
        match what {
            None => assert!(is_pi(&run.samples).is_ok(), "{:?}", is_pi(&run.samples)),
            Some(what) => assert!(is_pi(&run.samples).is_err(), "{what} passed the check"),
        }
    }
    // The probability-flow ODE of this SDE does not move: f − ½ g² s = s − s = 0.
    let pf = ProbabilityFlow::fixed(sde, FixedMethod::Heun, grid).unwrap();
    let x0 = pf.initial_state(500, 2, &mut rng(12)).unwrap();
    let run = pf.run(&model, x0.clone(), &mut rng(0)).unwrap();
    assert!(max_abs_diff(&run.samples, &x0) < 1e-12);
}

#[test]
fn c_likelihood_of_the_langevin_sde_is_log_pi() {
    let model = pi_score(pi());
    let x = {
        // Bulk points and far-tail points (pushed 3× away from the mean).
        let bulk = pi().sample(40, &mut rng(21)).unwrap();
        let tail = &bulk * 3.0;
        ndarray::concatenate(ndarray::Axis(0), &[bulk.view(), tail.view()]).unwrap()
    };
    let exact = pi().log_prob(x.view()).unwrap();
    // ∇ · f from the SDE (Δ log π, exact) and the score's exact divergence... the score
    // model here has none, so the finite-difference divergence serves for the score while
    // the drift's comes from the SDE: the two cancel to the FD error (~1e-8 relative).
    let sde = LangevinSde {
        pi: pi(),
        div: true,
    };
    let lik = OdeLikelihood::new(sde)
        .unwrap()
        .divergence(DivergenceMethod::FiniteDifference)
        .unwrap();
    let r = lik.log_prob(&model, x.view(), &mut rng(0)).unwrap();
    assert!(
        max_abs_diff(&r.latent, &x) < 1e-12,
        "the PF-ODE does not move"
    );
    let err = max_abs_diff(&r.log_p, &exact);
    println!("drift divergence from the SDE: max |log p − log π| = {err:.2e}");
    assert!(err < 1e-6, "{err}");
    // Without the SDE's divergence, both parts by the same central differences: they
    // cancel to rounding.
    let sde = LangevinSde {
        pi: pi(),
        div: false,
    };
    let lik = OdeLikelihood::new(sde)
        .unwrap()
        .divergence(DivergenceMethod::FiniteDifference)
        .unwrap();
    let r = lik.log_prob(&model, x.view(), &mut rng(0)).unwrap();
    let err = max_abs_diff(&r.log_p, &exact);
    println!("drift divergence by finite differences: max |log p − log π| = {err:.2e}");
    assert!(err < 1e-9, "{err}");
    // A wrong weight on the score (the reverse-SDE g² instead of ½ g²) would move the points
    // and give log π + ∫ Δ log π dt: off by O(1) nats at these points, so the bounds above
    // are decisive.
    let lap = pi().hessian_trace(x.view()).unwrap();
    assert!(lap.iter().all(|v| v.abs() > 0.05));
}
