//! A sampler of one's own, written outside the crate through its public traits only: a
//! Heun-type predictor for the reverse-time SDE (the improved Euler step of
//! Jolicoeur-Martineau et al. 2021, "Gotta Go Fast When Generating Data with Score-Based
//! Models", Alg. 1, without the step-size control) and a user's Langevin corrector with a
//! fixed step rule, run by the crate's predictor–corrector driver with observers,
//! imputation and the non-finite check — and checked against the closed-form answer.

mod common;
use common::rng;

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip, array};
use score_sde::condition::Imputation;
use score_sde::prelude::*;
use score_sde::sample::corrector::CorrectorAt;
use score_sde::sample::{
    Corrector, EulerMaruyama, NoCorrector, Pc, PcBuffers, Predictor, StepContext, StepInfo,
};

/// The reverse-time SDE `dx = [f − g² s] dt + g dw̄` integrated backwards by the stochastic
/// Heun (improved Euler) step: with `d(x, t) = g(t)² s(x, t) − f(x, t)` (the drift in
/// reverse time), `h = t − t'` and one `z` for both stages,
///
/// ```text
/// x' = x + h d(x, t) + g(t) √h z
/// x ← x + h (d(x, t) + d(x', t'))/2 + (g(t) + g(t'))/2 · √h z
/// ```
///
/// Two score calls per step; weakly second order for additive noise. The last step adds
/// no noise.
#[derive(Debug, Clone, Copy)]
struct ReverseHeun;

impl Predictor<f64> for ReverseHeun {
    fn nfe(&self) -> usize {
        2
    }
    fn predict(
        &self,
        sde: &dyn ForwardSde<f64>,
        ctx: &mut StepContext<'_, f64>,
        buf: &mut PcBuffers<f64>,
        x: &mut Array2<f64>,
        step: &StepInfo<f64>,
    ) -> Result<()> {
        let (t, tn, h) = (step.t, step.t_next, step.h());
        let (g, gn) = (sde.diffusion(t), sde.diffusion(tn));
        let noisy = !step.is_last();
        buf.ensure_noise();
        buf.ensure_work();
        buf.ensure_extra(2);
        let PcBuffers {
            score,
            noise,
            work,
            extra,
        } = buf;
        let (xp, f2) = extra.split_at_mut(1);
        let (xp, f2) = (&mut xp[0], &mut f2[0]);
        // d1 = g² s(x, t) − f(x, t) into `work`.
        ctx.model().score(x.view(), t, score.view_mut())?;
        sde.drift(x.view(), t, work.view_mut())?;
        Zip::from(&mut *work)
            .and(&*score)
            .for_each(|d, &s| *d = g * g * s - *d);
        if noisy {
            ctx.noise()?.fill(noise.view_mut());
        } else {
            noise.fill(0.0);
        }
        // The Euler proposal x'.
        let c = g * h.sqrt();
        Zip::from(&mut *xp)
            .and(&*x)
            .and(&*work)
            .and(&*noise)
            .for_each(|p, &x, &d, &z| *p = x + h * d + c * z);
        // s(x', t') and f(x', t'), then the trapezoid.
        ctx.model().score(xp.view(), tn, score.view_mut())?;
        sde.drift(xp.view(), tn, f2.view_mut())?;
        let cz = 0.5 * (g + gn) * h.sqrt();
        Zip::from(&mut *x)
            .and(&*work)
            .and(&*score)
            .and(&*f2)
            .and(&*noise)
            .for_each(|x, &d1, &s2, &f2, &z| {
                let d2 = gn * gn * s2 - f2;
                *x += 0.5 * h * (d1 + d2) + cz * z;
            });
        Ok(())
    }
}

/// A user's corrector: Langevin steps `x ← x + ε s + √(2ε) z` with `ε = c σ(t)²`, `c` fixed.
#[derive(Debug, Clone, Copy)]
struct FixedLangevin(f64);

impl Corrector<f64> for FixedLangevin {
    fn check(&self, sde: &dyn ForwardSde<f64>) -> Result<()> {
        match sde.linear_schedule() {
            Some(_) => Ok(()),
            None => Err(Error::Model("FixedLangevin needs σ(t)".into())),
        }
    }
    fn steps(&self) -> usize {
        1
    }
    fn correct(
        &self,
        sde: &dyn ForwardSde<f64>,
        ctx: &mut StepContext<'_, f64>,
        buf: &mut PcBuffers<f64>,
        x: &mut Array2<f64>,
        at: CorrectorAt<f64>,
    ) -> Result<()> {
        let sigma = sde.linear_schedule().map_or(1.0, |s| s.sigma(at.t));
        let eps = self.0 * sigma * sigma;
        let c = (2.0 * eps).sqrt();
        ctx.model().score(x.view(), at.t, buf.score.view_mut())?;
        ctx.noise()?
            .update(x.view_mut(), buf.score.view(), |x, s, z| {
                x + eps * s + c * z
            });
        Ok(())
    }
}

/// Data N(μ, v) in 1-D: under VP, p_t = N(α μ, α² v + σ²) exactly, and its score is linear.
fn gaussian() -> GaussianMixture<f64> {
    GaussianMixture::gaussian(array![1.5], array![[0.25]]).unwrap()
}

#[test]
fn a_users_heun_predictor_samples_the_closed_form_gaussian() {
    let sde = VpSde::<f64>::default();
    let gm = gaussian();
    let model = AnalyticScore::new(gm.clone(), *sde.schedule());
    let n = 40_000;
    let exact = gm.diffuse(sde.schedule(), 1e-3).unwrap();
    let (m, v) = (exact.mean()[0], exact.covariance()[[0, 0]]);
    let moments = |s: &dyn Sampler<f64>| {
        let run = s.sample(&model, n, 1, &mut rng(3)).unwrap();
        let x = run.samples.column(0);
        (run.nfe, x.mean().unwrap(), x.var(1.0))
    };
    // Converged: 200 Heun steps (400 NFE) match p_{t_min} at the Monte-Carlo floor.
    // SE(mean) = √(v/N) = 0.0025, SE(var) = v √(2/N) = 0.0018 at N = 40 000; the N(0, I)
    // prior differs from the exact p_T by α(1) μ = 0.01 in the mean, which the reverse flow
    // carries to t_min scaled by at most α(t_min)/α(1) · v_0/(α(1)² v_0 + σ(1)²) ≈ 0.03 of
    // it, < 0.001. Bands: 4.5 SE (+ 0.001 for the mean).
    let heun = |k| {
        Pc::new(sde.clone(), TimeGrid::uniform(sde.schedule(), k).unwrap())
            .unwrap()
            .predictor(ReverseHeun)
            .unwrap()
    };
    let (nfe, hm, hv) = moments(&heun(200));
    assert_eq!(nfe, 400);
    println!("Heun 200 steps: mean {hm:.4} (exact {m:.4}), var {hv:.4} (exact {v:.4})");
    assert!(
        (hm - m).abs() < 4.5 * (v / n as f64).sqrt() + 0.001,
        "mean {hm} vs {m}"
    );
    assert!(
        (hv - v).abs() < 4.5 * v * (2.0 / n as f64).sqrt(),
        "var {hv} vs {v}"
    );
    // Coarse: at 10 steps Euler–Maruyama's O(h) drift error moves the mean by ≈ 0.09 and
    // Heun's by ≈ 0.015 (measured, seed 3; the same seed in both, so the Monte Carlo part
    // mostly cancels, and 0.09 − 0.015 is 30 SE). A Heun average with a wrong sign or
    // weight would not beat Euler–Maruyama.
    let (_, hm10, _) = moments(&heun(10));
    let em = Pc::new(sde.clone(), TimeGrid::uniform(sde.schedule(), 10).unwrap())
        .unwrap()
        .predictor(EulerMaruyama)
        .unwrap();
    let (_, em10, _) = moments(&em);
    println!("10 steps: Heun mean {hm10:.4}, EM mean {em10:.4} (exact {m:.4})");
    assert!(
        (hm10 - m).abs() < 0.5 * (em10 - m).abs(),
        "Heun {hm10} vs EM {em10}"
    );
}

#[test]
fn a_users_predictor_and_corrector_run_with_observers_imputation_and_the_finite_check() {
    let vp = VpLinear::<f64>::default();
    let sde = VpSde::<f64>::default();
    let model = AnalyticScore::new(problems::ring2d::<f64>(), vp);
    let grid = TimeGrid::uniform(sde.schedule(), 40).unwrap();
    let pc = Pc::new(sde.clone(), grid.clone())
        .unwrap()
        .predictor(ReverseHeun)
        .unwrap()
        .corrector(FixedLangevin(0.01))
        .unwrap()
        .denoise_final(true);
    assert_eq!(pc.nfe(), Some(40 * 3 + 1));
    // Observers: a trajectory of every step ends at the returned samples.
    let x0 = pc.initial_state(200, 2, &mut rng(0)).unwrap();
    let mut tr = Trajectory::new(1, None);
    let run = pc
        .run_with(&model, x0.clone(), &mut rng(1), &mut tr)
        .unwrap();
    assert_eq!(run.nfe, 121);
    assert_eq!(tr.frames().len(), 41);
    assert_eq!(tr.frames()[40].2, run.samples);
    // Imputation: the observed coordinate is the observation, exactly.
    let mut imp = Imputation::new(vp, &[true, false], array![-2.0, f64::NAN].view(), 4).unwrap();
    let run = pc
        .run_with(&model, x0.clone(), &mut rng(1), &mut imp)
        .unwrap();
    assert!(run.samples.column(0).iter().all(|&v| v == -2.0));
    // The non-finite check: a model that returns NaN for row 7 from t = 0.5 down.
    let bad = ScoreFn::new(
        |x: ArrayView2<f64>, t: f64, mut out: ArrayViewMut2<f64>| -> Result<()> {
            model.score(x, t, out.view_mut())?;
            if t < 0.5 {
                out[[7, 1]] = f64::NAN;
            }
            Ok(())
        },
    );
    match pc.run(&bad, x0, &mut rng(1)) {
        Err(Error::Diverged { row: 7, t, .. }) => assert!(t < 0.5),
        other => panic!("{other:?}"),
    }
    // The user's corrector is checked against the SDE when the sampler is built: refused
    // for an SDE without a linear schedule... and a plain predictor-only PC works as well.
    let plain = Pc::new(sde, grid).unwrap().corrector(NoCorrector).unwrap();
    assert_eq!(plain.nfe(), Some(40));
}
