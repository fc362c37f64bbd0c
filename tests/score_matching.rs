//! Implicit (Hyvärinen 2005) and sliced (Song et al. 2019) score matching against their
//! closed-form minimum on a Gaussian.
//!
//! For `p = N(μ, S)` both objectives equal `½ E‖s − ∇log p‖² − ½ E‖∇log p‖²`, and
//! `E‖∇log p‖² = tr S⁻¹`: the exact score attains `J* = −½ tr S⁻¹`, a score scaled by `1 + c`
//! exceeds it by `½ c² tr S⁻¹`, and one shifted by a constant `b` by `½ ‖b‖²`. The tests
//! check all three on the same samples within 4 standard errors (per-row values are i.i.d.),
//! with `approx` for the deterministic identities.

mod common;
use approx::assert_relative_eq;
use common::rng;
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut1, ArrayViewMut2, array};
use score_sde::jacobian::Probe;
use score_sde::prelude::*;
use score_sde::train::{
    ScoreMatchingLoss, SlicedScoreMatching, TraceMethod, implicit_score_matching,
};

/// A 3-D Gaussian with correlated coordinates; `tr S⁻¹` by an explicit 3 × 3 inverse.
fn gauss3() -> (GaussianMixture<f64>, f64) {
    let s = array![[1.0, 0.4, 0.1], [0.4, 0.6, -0.2], [0.1, -0.2, 0.8]];
    let gm = GaussianMixture::gaussian(array![0.5, -1.0, 2.0], s.clone()).unwrap();
    // tr S⁻¹ = Σ cofactors of the diagonal / det.
    let det = s[[0, 0]] * (s[[1, 1]] * s[[2, 2]] - s[[1, 2]] * s[[2, 1]])
        - s[[0, 1]] * (s[[1, 0]] * s[[2, 2]] - s[[1, 2]] * s[[2, 0]])
        + s[[0, 2]] * (s[[1, 0]] * s[[2, 1]] - s[[1, 1]] * s[[2, 0]]);
    let c00 = s[[1, 1]] * s[[2, 2]] - s[[1, 2]] * s[[2, 1]];
    let c11 = s[[0, 0]] * s[[2, 2]] - s[[0, 2]] * s[[2, 0]];
    let c22 = s[[0, 0]] * s[[1, 1]] - s[[0, 1]] * s[[1, 0]];
    (gm, (c00 + c11 + c22) / det)
}

/// The exact score (and divergence) with an affine perturbation `(1 + c) s + b`.
struct Perturbed {
    exact: AnalyticScore<f64, VpLinear<f64>>,
    scale: f64,
    shift: Array1<f64>,
}
impl ScoreModel<f64> for Perturbed {
    fn score(&self, x: ArrayView2<f64>, t: f64, mut out: ArrayViewMut2<f64>) -> Result<()> {
        self.exact.score(x, t, out.view_mut())?;
        out.mapv_inplace(|v| self.scale * v);
        out += &self.shift;
        Ok(())
    }
    fn divergence(
        &self,
        x: ArrayView2<f64>,
        t: f64,
        mut out: ArrayViewMut1<f64>,
    ) -> Option<Result<()>> {
        let r = self.exact.divergence(x, t, out.view_mut())?;
        out.mapv_inplace(|v| self.scale * v);
        Some(r)
    }
    fn dim(&self) -> Option<usize> {
        Some(3)
    }
}

fn models(gm: &GaussianMixture<f64>) -> [Perturbed; 3] {
    let exact = AnalyticScore::new(gm.clone(), VpLinear::default()); // t = 0: exact score
    [
        Perturbed {
            exact: exact.clone(),
            scale: 1.0,
            shift: Array1::zeros(3),
        },
        Perturbed {
            exact: exact.clone(),
            scale: 1.1,
            shift: Array1::zeros(3),
        },
        Perturbed {
            exact,
            scale: 1.0,
            shift: array![0.3, -0.2, 0.1],
        },
    ]
}

/// `mean ± 4 SE` contains `want`.
fn assert_mean(what: &str, rows: &Array1<f64>, want: f64) {
    let n = rows.len() as f64;
    let (m, se) = (rows.mean().unwrap(), rows.std(1.0) / n.sqrt());
    println!("{what}: {m:.5} ± {se:.5} (closed form {want:.5})");
    assert!((m - want).abs() < 4.0 * se, "{what}: {m} vs {want} ± {se}");
}

/// Check an objective: the exact score at −½ tr S⁻¹; the two perturbations' excesses over it
/// (paired on the same samples, so their SE is small) at ½ c² tr S⁻¹ and ½ ‖b‖², each more
/// than 4 SE above zero.
fn check(name: &str, eval: &dyn Fn(&Perturbed) -> ScoreMatchingLoss<f64>, tr_inv: f64) {
    let (gm, _) = gauss3();
    let [exact, scaled, shifted] = models(&gm);
    let j = eval(&exact);
    assert_mean(&format!("{name} exact"), &j.rows, -0.5 * tr_inv);
    for (m, want) in [(&scaled, 0.5 * 0.01 * tr_inv), (&shifted, 0.5 * 0.14)] {
        let excess = &eval(m).rows - &j.rows;
        assert_mean(
            &format!("{name} excess of {} / {}", m.scale, m.shift),
            &excess,
            want,
        );
        let se = excess.std(1.0) / (excess.len() as f64).sqrt();
        assert!(
            excess.mean().unwrap() > 4.0 * se,
            "{name}: a perturbed score must do worse"
        );
    }
}

#[test]
fn implicit_score_matching_attains_its_closed_form_minimum() {
    let (gm, tr_inv) = gauss3();
    let x = gm.sample(100_000, &mut rng(1)).unwrap();
    check(
        "ISM",
        &|m| implicit_score_matching(m, x.view(), 0.0, TraceMethod::Exact).unwrap(),
        tr_inv,
    );
    // The finite-difference trace agrees with the exact one to its rounding error
    // (relative ε^{2/3} ≈ 4e-11 per entry; 1e-7 leaves room for the sum over rows).
    let exact = AnalyticScore::new(gm.clone(), VpLinear::default());
    let a = implicit_score_matching(&exact, x.view(), 0.0, TraceMethod::Exact).unwrap();
    let b = implicit_score_matching(&exact, x.view(), 0.0, TraceMethod::FiniteDifference).unwrap();
    assert_relative_eq!(a.rows, b.rows, max_relative = 1e-7, epsilon = 1e-9);
    assert_eq!((a.nfe, b.nfe), (1, 7));
}

#[test]
fn sliced_score_matching_and_its_variance_reduced_form_attain_the_same_minimum() {
    let (gm, tr_inv) = gauss3();
    let x = gm.sample(100_000, &mut rng(2)).unwrap();
    for probe in [Probe::Gaussian, Probe::Rademacher] {
        for vr in [false, true] {
            let ssm = SlicedScoreMatching::new(1)
                .unwrap()
                .probe(probe)
                .variance_reduced(vr);
            // The same directions for every model (same seed): the excesses are paired.
            check(
                &format!("SSM {probe:?} vr={vr}"),
                &|m| ssm.loss(m, x.view(), 0.0, &mut rng(3)).unwrap(),
                tr_inv,
            );
        }
    }
    // The variance-reduced rows in closed form: with J = −S⁻¹ constant, a row is
    // (1/M) Σ_m v_mᵀ J v_m + ½ ‖S⁻¹ e‖² (e ~ N(0, S)), whose variance is
    // 2 tr S⁻²/M (Gaussian directions: Var vᵀAv = 2‖A‖_F²) + ½ tr S⁻² (Var ½‖w‖², w ~ N(0, S⁻¹)).
    // The sample variance of 10⁵ rows has a relative SE of about √(κ − 1)/√n ≈ 1 % for these
    // light-tailed rows; 5 % bounds it. A missing ½ on ‖s‖² (variance 2 tr S⁻² instead of
    // ½ tr S⁻²) or directions not averaged over M would each move it by 25 % or more.
    let exact = AnalyticScore::new(gm.clone(), VpLinear::default());
    let si = inv3(&gm.covs().index_axis(ndarray::Axis(0), 0).to_owned());
    let tr2 = si.dot(&si).diag().sum();
    for m in [1usize, 4] {
        let vr = SlicedScoreMatching::new(m).unwrap().variance_reduced(true);
        let j = vr.loss(&exact, x.view(), 0.0, &mut rng(4)).unwrap();
        assert_eq!(j.nfe, 1 + 2 * m);
        let var = j.rows.var(1.0);
        let want = (2.0 / m as f64 + 0.5) * tr2;
        println!("SSM-VR M = {m}: row variance {var:.3} (closed form {want:.3})");
        assert!((var / want - 1.0).abs() < 0.05, "M = {m}: {var} vs {want}");
    }
}

/// The inverse of a 3 × 3 matrix by cofactors.
fn inv3(s: &Array2<f64>) -> Array2<f64> {
    let c = |i: usize, j: usize| {
        let r: Vec<usize> = (0..3).filter(|&k| k != i).collect();
        let q: Vec<usize> = (0..3).filter(|&k| k != j).collect();
        let m = s[[r[0], q[0]]] * s[[r[1], q[1]]] - s[[r[0], q[1]]] * s[[r[1], q[0]]];
        if (i + j) % 2 == 0 { m } else { -m }
    };
    let cof = Array2::from_shape_fn((3, 3), |(i, j)| c(i, j));
    let det = (0..3).map(|j| s[[0, j]] * cof[[0, j]]).sum::<f64>();
    cof.t().to_owned() / det
}

#[test]
fn bad_input_is_a_typed_error() {
    let (gm, _) = gauss3();
    let exact = AnalyticScore::new(gm, VpLinear::default());
    assert!(SlicedScoreMatching::new(0).is_err());
    // 1 + 2·projections evaluations per row would overflow the count: refused, no panic.
    assert!(matches!(
        SlicedScoreMatching::new(usize::MAX / 2 + 1),
        Err(Error::TooLarge { .. })
    ));
    assert!(SlicedScoreMatching::new(usize::MAX / 2 - 1).is_ok());
    let wrong = Array2::<f64>::zeros((4, 2));
    assert!(matches!(
        implicit_score_matching(&exact, wrong.view(), 0.0, TraceMethod::Exact),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut nan = Array2::<f64>::zeros((4, 3));
    nan[[1, 2]] = f64::NAN;
    assert!(matches!(
        SlicedScoreMatching::new(1)
            .unwrap()
            .loss(&exact, nan.view(), 0.0, &mut rng(0)),
        Err(Error::NonFinite { .. })
    ));
    // No exact divergence: say so.
    let plain = ScoreFn::new(|x: ArrayView2<f64>, _t: f64, mut o: ArrayViewMut2<f64>| {
        o.assign(&(-&x));
        Ok(())
    });
    assert!(matches!(
        implicit_score_matching(
            &plain,
            Array2::zeros((2, 3)).view(),
            0.0,
            TraceMethod::Exact
        ),
        Err(Error::Model(_))
    ));
    // A model that returns NaN gives an error, not an Ok holding NaN.
    let bad = ScoreFn::new(|_x: ArrayView2<f64>, _t: f64, mut o: ArrayViewMut2<f64>| {
        o.fill(f64::NAN);
        Ok(())
    });
    assert!(matches!(
        implicit_score_matching(
            &bad,
            Array2::zeros((2, 3)).view(),
            0.0,
            TraceMethod::FiniteDifference
        ),
        Err(Error::NonFinite { .. })
    ));
}
