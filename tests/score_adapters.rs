//! Parameterisation adapters and user-defined SDEs against closed forms.

mod common;
use common::rng;
use ndarray::{Array2, ArrayView2, ArrayViewMut1, ArrayViewMut2, array};
use rand::RngCore;
use score_sde::prelude::*;
use score_sde::score::{from_score_inplace, to_score_inplace};
use std::sync::Arc;

/// A network that predicts `kind` exactly, by converting the exact mixture score.
fn exact_network(
    kind: Parameterization,
    model: Arc<AnalyticScore<f64, VpCosine<f64>>>,
) -> impl Network<f64> {
    NetworkFn::new(
        move |x: ArrayView2<f64>, t: f64, mut out: ArrayViewMut2<f64>| {
            model.score(x, t, out.view_mut())?;
            let s = model.schedule();
            from_score_inplace(kind, x, s.alpha(t), s.sigma(t), out);
            Ok(())
        },
    )
}

#[test]
fn every_parameterisation_round_trips_to_the_exact_score() {
    let sched = VpCosine::<f64>::default();
    let model = Arc::new(AnalyticScore::new(problems::rand16d::<f64>(), sched));
    let x = model
        .marginal(0.4)
        .unwrap()
        .sample(50, &mut rng(1))
        .unwrap();
    let mut exact = Array2::zeros(x.raw_dim());
    model.score(x.view(), 0.4, exact.view_mut()).unwrap();
    for kind in [
        Parameterization::Score,
        Parameterization::Noise,
        Parameterization::Data,
        Parameterization::Velocity,
    ] {
        let wrapped = Parameterized::new(exact_network(kind, model.clone()), sched, kind);
        let mut s = Array2::zeros(x.raw_dim());
        wrapped.score(x.view(), 0.4, s.view_mut()).unwrap();
        // Two conversions in f64 on scores of size ~10: round-off ~1e-14 relative.
        let err = (&s - &exact).iter().fold(0.0_f64, |a, v| a.max(v.abs()));
        assert!(err < 1e-10, "{kind:?}: max error {err}");
        // Per-row times take the same path.
        let t = ndarray::Array1::from_elem(x.nrows(), 0.4);
        let mut s_rows = Array2::zeros(x.raw_dim());
        wrapped
            .score_rows(x.view(), t.view(), s_rows.view_mut())
            .unwrap();
        assert!((&s_rows - &exact).iter().all(|v| v.abs() < 1e-10));
    }
}

#[test]
fn conversions_match_the_textbook_definitions() {
    // x = α x0 + σ ε with known x0, ε: the score of the Gaussian posterior is not needed —
    // the conversions are algebraic identities given consistent (x, x0, ε).
    let (alpha, sigma) = (0.8_f64, 0.6_f64);
    let x0 = array![[1.0, -2.0]];
    let eps = array![[0.5, 0.25]];
    let x = &x0 * alpha + &eps * sigma;
    let score = &eps * (-1.0 / sigma);
    let v = &eps * alpha - &x0 * sigma; // Salimans & Ho 2022, §4
    for (kind, pred) in [
        (Parameterization::Noise, eps.clone()),
        (Parameterization::Data, x0.clone()),
        (Parameterization::Velocity, v.clone()),
    ] {
        let mut p = pred.clone();
        to_score_inplace(kind, x.view(), alpha, sigma, p.view_mut());
        assert!(
            (&p - &score).iter().all(|e| e.abs() < 1e-14),
            "{kind:?} → score"
        );
        let mut back = score.clone();
        from_score_inplace(kind, x.view(), alpha, sigma, back.view_mut());
        assert!(
            (&back - &pred).iter().all(|e| e.abs() < 1e-14),
            "score → {kind:?}"
        );
    }
}

#[test]
fn wrappers_forward_to_the_model() {
    let model = AnalyticScore::new(problems::ring2d::<f64>(), VpLinear::default());
    let x = array![[1.0, 2.0]];
    let mut a = Array2::zeros((1, 2));
    let mut b = Array2::zeros((1, 2));
    model.score(x.view(), 0.5, a.view_mut()).unwrap();
    let boxed: Box<dyn ScoreModel<f64>> = Box::new(model.clone());
    boxed.score(x.view(), 0.5, b.view_mut()).unwrap();
    assert_eq!(a, b);
    let arc = Arc::new(model);
    let by_ref: &dyn ScoreModel<f64> = &&arc;
    by_ref.score(x.view(), 0.5, b.view_mut()).unwrap();
    assert_eq!(a, b);
    assert_eq!(ScoreModel::<f64>::dim(&arc), Some(2));
    // Wrong output shape is a typed error, not a panic.
    let mut bad = Array2::zeros((2, 2));
    assert!(matches!(
        arc.score(x.view(), 0.5, bad.view_mut()),
        Err(Error::ShapeMismatch { .. })
    ));
}

/// A user SDE with a non-linear drift: dx = −x³ dt + √2 dw (stationary law ∝ exp(−x⁴/4)).
#[derive(Debug)]
struct DoubleWellish;

impl ForwardSde<f64> for DoubleWellish {
    fn drift(&self, x: ArrayView2<f64>, _t: f64, mut out: ArrayViewMut2<f64>) -> Result<()> {
        ndarray::Zip::from(&mut out)
            .and(&x)
            .for_each(|o, &v| *o = -v * v * v);
        Ok(())
    }
    fn diffusion(&self, _t: f64) -> f64 {
        2.0_f64.sqrt()
    }
    fn t_range(&self) -> (f64, f64) {
        (1e-3, 1.0)
    }
    fn sample_prior(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<f64>> {
        Ok(Array2::from_shape_fn((n, dim), |_| {
            f64::standard_normal(rng)
        }))
    }
    fn prior_log_prob(&self, x: ArrayView2<f64>, mut out: ArrayViewMut1<f64>) -> Result<()> {
        for (o, r) in out.iter_mut().zip(x.rows()) {
            *o = -0.5 * r.dot(&r) - 0.5 * r.len() as f64 * (2.0 * std::f64::consts::PI).ln();
        }
        Ok(())
    }
}

#[test]
fn a_user_sde_with_nonlinear_drift_gets_euler_discretisation() {
    let sde = DoubleWellish;
    let x = array![[2.0], [-1.0]];
    let mut f = Array2::zeros((2, 1));
    let g = sde.discretize(x.view(), 0.5, 0.01, f.view_mut()).unwrap();
    // Default discretisation is Euler–Maruyama: f_i = f(x) dt, G_i = g √dt.
    assert!((f[[0, 0]] + 8.0 * 0.01).abs() < 1e-15 && (f[[1, 0]] - 0.01).abs() < 1e-15);
    assert!((g - (2.0_f64 * 0.01).sqrt()).abs() < 1e-15);
    let dynsde: &dyn ForwardSde<f64> = &sde;
    let z = dynsde.sample_prior(3, 2, &mut rng(0)).unwrap();
    assert_eq!(z.dim(), (3, 2));
}

#[test]
fn linear_sde_discretisation_is_the_exact_transition() {
    // Over [s, t] the forward kernel is N(a x, v) with a = α_t/α_s, v = σ_t² − a² σ_s².
    let sde = VpSde::<f64>::default();
    let (s, t) = (0.3, 0.31);
    let x = array![[1.5, -0.5]];
    let mut f = Array2::zeros((1, 2));
    let g = sde.discretize(x.view(), t, t - s, f.view_mut()).unwrap();
    let a = sde.alpha(t) / sde.alpha(s);
    assert!(((&x + &f) - &x * a).iter().all(|e| e.abs() < 1e-14));
    let v = sde.sigma(t).powi(2) - a * a * sde.sigma(s).powi(2);
    assert!((g * g - v).abs() < 1e-14);
    // For VP this is DDPM's √β_i with β_i = 1 − α_t²/α_s² = 1 − exp(−∫_s^t β(u) du).
    let beta_i = 1.0 - a * a;
    let int_beta = 0.1 * (t - s) + 0.5 * (20.0 - 0.1) * (t * t - s * s);
    assert!((g * g - beta_i).abs() < 1e-12);
    assert!((beta_i - (1.0 - (-int_beta).exp())).abs() < 1e-12);
}
