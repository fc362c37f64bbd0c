//! The blocked kernel (every instruction-set copy this CPU runs) against the row-wise
//! path and against an independent f64 oracle written here: Cholesky of each
//! `α² S_k + σ² I`, its explicit inverse, and a per-row log-sum-exp with `f64::exp`.
//!
//! ## Tolerances
//!
//! Every quantity is a short chain of dot products of length `D` over the precisions, so
//! its rounding error is at most a small multiple of `ε · D · κ` times its scale, with `κ`
//! the largest condition number of a component covariance, and the logits carry an
//! extra `ε (q + D)` (`q` the largest Mahalanobis² of the row), which moves the
//! responsibilities by as much. We allow `64 ε κ (D + q)` times the scale of each output:
//! `1 + max_k |s_k|` for the score (the component scores bound every mixture of them),
//! `1 + max_k (|s_k|² + tr P_k)` for the Laplacian, `1 + |log p|` for the log-density and
//! `1` for the responsibilities. In f64 that is about `10⁻¹⁰` of the scale near the
//! data; a wrong sign, a missed component or a wrong normaliser exceeds it by orders of
//! magnitude.

use super::Outputs;
use super::block::BlockWorkspace;
use super::dispatch;
use super::rowwise::{self, RowWorkspace};
use crate::gmm::{GaussianMixture, problems};
use crate::num::Real;
use crate::num::simd::Isa;
use ndarray::{Array1, Array2, Array3, ArrayView2, Axis, s};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

/// All four outputs of one evaluation.
#[derive(Debug)]
struct Eval<F> {
    log_prob: Array1<F>,
    score: Array2<F>,
    laplacian: Array1<F>,
    resp: Array2<F>,
}

impl<F: Real> Eval<F> {
    fn zeros(n: usize, d: usize, k: usize) -> Self {
        Self {
            log_prob: Array1::zeros(n),
            score: Array2::zeros((n, d)),
            laplacian: Array1::zeros(n),
            resp: Array2::zeros((n, k)),
        }
    }
    fn outputs(&mut self) -> Outputs<'_, F> {
        Outputs {
            log_prob: Some(self.log_prob.view_mut()),
            score: Some(self.score.view_mut()),
            laplacian: Some(self.laplacian.view_mut()),
            responsibilities: Some(self.resp.view_mut()),
        }
    }
}

fn run_block<F: Real>(isa: Isa, gm: &GaussianMixture<F>, a: F, sg: F, x: ArrayView2<F>) -> Eval<F> {
    let (k, d) = (gm.n_components(), gm.dim());
    let mut ev = Eval::zeros(x.nrows(), d, k);
    let mut ws = BlockWorkspace::new(k, d);
    // As `kernel::evaluate` with the instruction set fixed: the fast path, then the
    // scale-aware repair of the rows it flagged or could not represent.
    let mut out = ev.outputs();
    dispatch::evaluate(isa, &gm.parts(), a, sg, x, &mut ws, &mut out);
    if !out.all_finite() {
        super::safe::repair(&gm.parts(), a, sg, x, &mut out).expect("representable");
    }
    ev
}

fn run_rowwise<F: Real>(gm: &GaussianMixture<F>, a: F, sg: F, x: ArrayView2<F>) -> Eval<F> {
    let (k, d) = (gm.n_components(), gm.dim());
    let mut ev = Eval::zeros(x.nrows(), d, k);
    let mut ws = RowWorkspace::new(k, d);
    rowwise::evaluate(&gm.parts(), a, sg, x, &mut ws, ev.outputs());
    ev
}

// ------------------------------------------------------------------ independent oracle

/// Lower Cholesky factor.
fn cholesky(a: &Array2<f64>) -> Array2<f64> {
    let n = a.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for j in 0..n {
        let mut dj = a[[j, j]];
        for k in 0..j {
            dj -= l[[j, k]] * l[[j, k]];
        }
        assert!(dj > 0.0, "oracle: not positive definite");
        l[[j, j]] = dj.sqrt();
        for i in j + 1..n {
            let mut v = a[[i, j]];
            for k in 0..j {
                v -= l[[i, k]] * l[[j, k]];
            }
            l[[i, j]] = v / l[[j, j]];
        }
    }
    l
}

/// Per component: `α μ`, the precision, `log w − ½ log det(2π Σ)`, `tr P`, `κ(Σ)`.
struct Oracle {
    shift: Array2<f64>,
    prec: Array3<f64>,
    log_norm: Array1<f64>,
    trace: Array1<f64>,
    kappa: f64,
}

/// Per-row oracle values and tolerance scales.
struct Row {
    log_prob: f64,
    score: Array1<f64>,
    laplacian: f64,
    resp: Array1<f64>,
    /// `ε`-free part of the tolerance: `64 κ (D + q_max)`.
    err: f64,
    score_scale: f64,
    lap_scale: f64,
}

impl Oracle {
    fn new<F: Real>(gm: &GaussianMixture<F>, a: f64, sg: f64) -> Self {
        let (k_n, d) = (gm.n_components(), gm.dim());
        let mut prec = Array3::zeros((k_n, d, d));
        let mut log_norm = Array1::zeros(k_n);
        let mut trace = Array1::zeros(k_n);
        let mut kappa = 1.0_f64;
        for k in 0..k_n {
            let mut cov = gm
                .covs()
                .index_axis(Axis(0), k)
                .mapv(|v| a * a * v.as_f64());
            for j in 0..d {
                cov[[j, j]] += sg * sg;
            }
            let l = cholesky(&cov);
            // Columns of Σ⁻¹ by forward and back substitution.
            for c in 0..d {
                let mut y = vec![0.0; d];
                for i in 0..d {
                    let mut v = if i == c { 1.0 } else { 0.0 };
                    for m in 0..i {
                        v -= l[[i, m]] * y[m];
                    }
                    y[i] = v / l[[i, i]];
                }
                for i in (0..d).rev() {
                    let mut v = y[i];
                    for m in i + 1..d {
                        v -= l[[m, i]] * prec[[k, m, c]];
                    }
                    prec[[k, i, c]] = v / l[[i, i]];
                }
            }
            let log_det: f64 = (0..d).map(|j| 2.0 * l[[j, j]].ln()).sum();
            log_norm[k] = gm.weights()[k].as_f64().ln()
                - 0.5 * log_det
                - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
            trace[k] = (0..d).map(|j| prec[[k, j, j]]).sum();
            // κ ≤ ‖Σ‖_F ‖Σ⁻¹‖_F, an upper bound is all the tolerance needs.
            let fro = |m: ndarray::ArrayView2<f64>| m.iter().map(|v| v * v).sum::<f64>().sqrt();
            kappa = kappa.max(fro(cov.view()) * fro(prec.index_axis(Axis(0), k)));
        }
        Self {
            shift: gm.means().mapv(|m| a * m.as_f64()),
            prec,
            log_norm,
            trace,
            kappa,
        }
    }

    fn row(&self, x: &[f64]) -> Row {
        let (k_n, d) = self.shift.dim();
        let mut logits = Array1::zeros(k_n);
        let mut z = Array2::<f64>::zeros((k_n, d));
        let mut q_max = 0.0_f64;
        for k in 0..k_n {
            let r: Vec<f64> = (0..d).map(|j| x[j] - self.shift[[k, j]]).collect();
            for i in 0..d {
                z[[k, i]] = (0..d).map(|j| self.prec[[k, i, j]] * r[j]).sum();
            }
            let q: f64 = (0..d).map(|j| r[j] * z[[k, j]]).sum();
            q_max = q_max.max(q);
            logits[k] = self.log_norm[k] - 0.5 * q;
        }
        let m = logits.fold(f64::NEG_INFINITY, |a: f64, &b| a.max(b));
        let e = logits.mapv(|l| (l - m).exp());
        let sum = e.sum();
        let resp = &e / sum;
        let score = -resp.dot(&z);
        let sq: Array1<f64> = z.rows().into_iter().map(|zk| zk.dot(&zk)).collect();
        let laplacian = resp.dot(&(&sq - &self.trace)) - score.dot(&score);
        let score_scale = 1.0 + sq.iter().fold(0.0_f64, |a, &v| a.max(v.sqrt()));
        let lap_scale = 1.0 + (&sq + &self.trace).fold(0.0_f64, |a, &v| a.max(v));
        Row {
            log_prob: m + sum.ln(),
            score,
            laplacian,
            resp,
            err: 64.0 * self.kappa * (d as f64 + q_max),
            score_scale,
            lap_scale,
        }
    }
}

/// Check `ev` (computed in F) against the oracle on the rows of `x`.
fn check_against_oracle<F: Real>(
    what: &str,
    oracle: &Oracle,
    x: ArrayView2<F>,
    ev: &Eval<F>,
) -> Result<(), String> {
    let eps = F::EPS.as_f64();
    for i in 0..x.nrows() {
        let xr: Vec<f64> = x.row(i).iter().map(|v| v.as_f64()).collect();
        let o = oracle.row(&xr);
        let tol = eps * o.err;
        let bad = |name: &str, got: f64, want: f64, scale: f64| -> Result<(), String> {
            if got.is_finite() && (got - want).abs() <= tol * scale {
                Ok(())
            } else {
                Err(format!(
                    "{what}: row {i} {name}: got {got}, want {want}, tol {}",
                    tol * scale
                ))
            }
        };
        bad(
            "log p",
            ev.log_prob[i].as_f64(),
            o.log_prob,
            1.0 + o.log_prob.abs(),
        )?;
        bad(
            "laplacian",
            ev.laplacian[i].as_f64(),
            o.laplacian,
            o.lap_scale,
        )?;
        for j in 0..x.ncols() {
            bad(
                "score",
                ev.score[[i, j]].as_f64(),
                o.score[j],
                o.score_scale,
            )?;
        }
        for k in 0..o.resp.len() {
            bad("resp", ev.resp[[i, k]].as_f64(), o.resp[k], 1.0)?;
        }
    }
    Ok(())
}

/// Rows of `p_t` (the rows a sampler sees) followed by rows far from every component.
fn rows<F: Real>(
    gm: &GaussianMixture<F>,
    a: F,
    sg: F,
    n: usize,
    far: usize,
    seed: u64,
) -> Array2<F> {
    let mut rng = Pcg64::seed_from_u64(seed);
    let pt = gm.diffuse_with(a, sg).expect("valid (α, σ)");
    let near = pt.sample(n, &mut rng).expect("n > 0");
    let d = gm.dim();
    let mut x = Array2::zeros((n + far, d));
    x.slice_mut(s![..n, ..]).assign(&near);
    for i in 0..far {
        // |x| = 10³ in a random direction.
        let v: Vec<f64> = (0..d).map(|_| rng.random::<f64>() - 0.5).collect();
        let norm = v.iter().map(|u| u * u).sum::<f64>().sqrt().max(1e-3);
        for j in 0..d {
            x[[n + i, j]] = F::lit(1e3 * v[j] / norm);
        }
    }
    x
}

/// `(α, σ)` of VP-linear-like times from near the data to pure noise, and the data itself.
const TIMES: [(f64, f64); 4] = [(1.0, 0.0), (0.99, 0.14), (0.6, 0.8), (0.05, 0.999)];

fn check_problem<F: Real>(name: &str, gm: &GaussianMixture<F>, n: usize, far: usize) {
    for (ti, &(a, sg)) in TIMES.iter().enumerate() {
        let x = rows(gm, F::lit(a), F::lit(sg), n, far, ti as u64);
        let oracle = Oracle::new(gm, a, sg);
        let reference = run_rowwise(gm, F::lit(a), F::lit(sg), x.view());
        for isa in Isa::available() {
            let ev = run_block(isa, gm, F::lit(a), F::lit(sg), x.view());
            let what = format!(
                "{name} {} {isa:?} (α, σ) = ({a}, {sg})",
                std::any::type_name::<F>()
            );
            // Every output is finite, also far away (stable log-sum-exp).
            assert!(
                ev.score.iter().all(|v| v.is_finite()),
                "{what}: non-finite score"
            );
            assert!(
                ev.log_prob.iter().all(|v| v.is_finite()),
                "{what}: non-finite log p"
            );
            assert!(
                ev.laplacian.iter().all(|v| v.is_finite()),
                "{what}: non-finite Δ"
            );
            if F::EPS.as_f64() < 1e-10 {
                check_against_oracle(&what, &oracle, x.view(), &ev)
                    .unwrap_or_else(|e| panic!("{e}"));
            } else {
                // f32: rows far away have logits ~ 10⁶ whose f32 rounding (~0.1) moves
                // the responsibilities by O(1) in any f32 evaluation, ours or the row-wise
                // one; they are checked for finiteness above, the others against the oracle.
                check_against_oracle(&what, &oracle, x.slice(s![..n, ..]), &ev)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            // The row-wise path agrees to the same accuracy.
            check_against_oracle(
                &format!("{what} row-wise"),
                &oracle,
                x.slice(s![..n, ..]),
                &reference,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn ring2d_matches_oracle() {
    // 3 blocks or more, and a ragged last block.
    check_problem("ring2d", &problems::ring2d::<f64>(), 2500, 7);
    check_problem("ring2d", &problems::ring2d::<f32>(), 2500, 7);
}

#[test]
fn rand16d_matches_oracle() {
    check_problem("rand16d", &problems::rand16d::<f64>(), 1000, 5);
    check_problem("rand16d", &problems::rand16d::<f32>(), 1000, 5);
}

#[test]
fn instruction_sets_agree_bitwise_up_to_fma_rounding() {
    // The copies differ only by fused multiply-adds, i.e. a few ulps of each step.
    let gm = problems::rand16d::<f64>();
    let x = rows(&gm, 0.8, 0.6, 300, 0, 9);
    let evs: Vec<_> = Isa::available()
        .into_iter()
        .map(|isa| run_block(isa, &gm, 0.8, 0.6, x.view()))
        .collect();
    for ev in &evs[1..] {
        for (a, b) in ev.score.iter().zip(evs[0].score.iter()) {
            assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}

#[test]
fn strided_input_and_output() {
    // x and the score output as non-contiguous views (every other row of a bigger array).
    let gm = problems::rand16d::<f64>();
    let x = rows(&gm, 0.7, 0.7, 200, 0, 3);
    let mut big = Array2::<f64>::zeros((400, 16));
    big.slice_mut(s![..;2, ..]).assign(&x);
    let xs = big.slice(s![..;2, ..]);
    let mut out = Array2::<f64>::zeros((400, 16));
    let mut ws = BlockWorkspace::new(gm.n_components(), gm.dim());
    for isa in Isa::available() {
        dispatch::evaluate(
            isa,
            &gm.parts(),
            0.7,
            0.7,
            xs,
            &mut ws,
            &mut Outputs {
                score: Some(out.slice_mut(s![1..;2, ..])),
                ..Outputs::none()
            },
        );
        let want = run_rowwise(&gm, 0.7, 0.7, x.view()).score;
        let got = out.slice(s![1..;2, ..]);
        for (a, b) in got.iter().zip(want.iter()) {
            assert!((a - b).abs() <= 1e-10 * (1.0 + b.abs()), "{a} vs {b}");
        }
        assert!(out.slice(s![..;2, ..]).iter().all(|&v| v == 0.0));
    }
}

#[test]
fn a_row_does_not_depend_on_its_batch() {
    // Bit for bit: the same row alone, first in a batch, and in a later, ragged block.
    for isa in Isa::available() {
        let gm = problems::rand16d::<f64>();
        let x = rows(&gm, 0.7, 0.7, 1500, 0, 5);
        let all = run_block(isa, &gm, 0.7, 0.7, x.view());
        for i in [0, 17, 1499] {
            let one = run_block(isa, &gm, 0.7, 0.7, x.slice(s![i..i + 1, ..]));
            assert_eq!(one.score.row(0), all.score.row(i));
            assert_eq!(one.laplacian[0], all.laplacian[i]);
            assert_eq!(one.log_prob[0], all.log_prob[i]);
        }
    }
}

fn mixture_strategy() -> impl Strategy<Value = (u64, usize, usize, bool)> {
    (any::<u64>(), 1usize..=8, 1usize..=5, any::<bool>())
}

/// Weights, means in `[−3, 3]`, covariances `A Aᵀ + 0.05 I` (or diagonal when `diag`).
fn random_mixture(seed: u64, d: usize, k: usize, diag: bool) -> GaussianMixture<f64> {
    let mut rng = Pcg64::seed_from_u64(seed);
    let w = Array1::from_shape_fn(k, |_| 0.1 + rng.random::<f64>());
    let w = &w / w.sum();
    let mu = Array2::from_shape_fn((k, d), |_| 6.0 * rng.random::<f64>() - 3.0);
    let mut covs = Array3::zeros((k, d, d));
    for c in 0..k {
        // Mix diagonal and full components when `diag` (one of each kind at least once).
        let this_diag = diag && c % 2 == 0;
        let a = Array2::from_shape_fn((d, d), |_| rng.random::<f64>() - 0.5);
        let mut s = if this_diag {
            Array2::from_diag(&a.diag().mapv(|v| v * v))
        } else {
            a.dot(&a.t())
        };
        for j in 0..d {
            s[[j, j]] += 0.05;
        }
        covs.index_axis_mut(Axis(0), c).assign(&s);
    }
    GaussianMixture::new(w, mu, covs).expect("valid mixture")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn random_mixtures_match_oracle(
        (seed, d, k, diag) in mixture_strategy(),
        a in 0.05f64..=1.0,
        sg in 0.0f64..=1.0,
        n in 1usize..300,
    ) {
        let gm = random_mixture(seed, d, k, diag);
        let x = rows(&gm, a, sg, n, 2, seed ^ 1);
        let oracle = Oracle::new(&gm, a, sg);
        for isa in Isa::available() {
            let ev = run_block(isa, &gm, a, sg, x.view());
            check_against_oracle(&format!("{isa:?} f64"), &oracle, x.view(), &ev)
                .map_err(TestCaseError::fail)?;
            // f32 on the rows near the data.
            let gm32 = GaussianMixture::<f32>::new(
                gm.weights().mapv(|v| v as f32),
                gm.means().mapv(|v| v as f32),
                gm.covs().mapv(|v| v as f32),
            ).expect("valid mixture");
            let x32 = x.slice(s![..n, ..]).mapv(|v| v as f32);
            let oracle32 = Oracle::new(&gm32, a, sg);
            let ev32 = run_block(isa, &gm32, a as f32, sg as f32, x32.view());
            check_against_oracle(&format!("{isa:?} f32"), &oracle32, x32.view(), &ev32)
                .map_err(TestCaseError::fail)?;
        }
    }
}

// ------------------------------------------------------------------ tied covariances

/// The kinds of covariance structure the kernel distinguishes.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Every component `s I` with the same `s` (tied path, diagonal `P`).
    TiedIsotropic,
    /// Every component the same full `S` (tied path, one `D×D` product per row).
    TiedFull,
    /// Independent full covariances (general path).
    Untied,
}

/// `K` components in `D` dimensions of the given kind, means in `[−3, 3]`.
fn kind_mixture<F: Real>(kind: Kind, seed: u64, d: usize, k: usize) -> GaussianMixture<F> {
    let gm = random_mixture(seed, d, k, false);
    let mut covs = gm.covs().to_owned();
    for c in 0..k {
        let s = match kind {
            Kind::TiedIsotropic => Array2::eye(d) * 0.3,
            Kind::TiedFull => gm.covs().index_axis(Axis(0), 0).to_owned(),
            Kind::Untied => continue,
        };
        covs.index_axis_mut(Axis(0), c).assign(&s);
    }
    GaussianMixture::new(
        gm.weights().mapv(F::lit),
        gm.means().mapv(F::lit),
        covs.mapv(F::lit),
    )
    .expect("valid mixture")
}

fn check_kind<F: Real>(kind: Kind, d: usize, seed: u64) {
    let k = 5;
    let gm = kind_mixture::<F>(kind, seed, d, k);
    assert_eq!(
        gm.parts().tied,
        !matches!(kind, Kind::Untied),
        "{kind:?}: tied detection"
    );
    for (ti, &(a, sg)) in TIMES.iter().enumerate() {
        // Ragged sizes: one row, less than a chunk, and more than one block.
        let bm = BlockWorkspace::<F>::new(k, d).bm;
        for n in [1, 37, bm + 21] {
            let x = rows(
                &gm,
                F::lit(a),
                F::lit(sg),
                n,
                0,
                seed ^ (ti as u64) ^ n as u64,
            );
            let oracle = Oracle::new(&gm, a, sg);
            for isa in Isa::available() {
                let ev = run_block(isa, &gm, F::lit(a), F::lit(sg), x.view());
                let what = format!(
                    "{kind:?} D = {d} n = {n} {} {isa:?} (α, σ) = ({a}, {sg})",
                    std::any::type_name::<F>()
                );
                check_against_oracle(&what, &oracle, x.view(), &ev)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}

#[test]
fn tied_and_untied_mixtures_match_oracle() {
    // The oracle's tolerance (module docs) covers the tied path too: its logits cancel
    // at the scale α² |μ_k − c|²_P of the spread of the means, which for rows near the
    // data is at most the largest Mahalanobis² `q` of the row already in the bound.
    for d in [1, 2, 3, 5, 16, 17] {
        for kind in [Kind::TiedIsotropic, Kind::TiedFull, Kind::Untied] {
            check_kind::<f64>(kind, d, 11 + d as u64);
            check_kind::<f32>(kind, d, 11 + d as u64);
        }
    }
}

#[test]
fn tied_single_gaussian_closed_form() {
    // One component N(μ, s I) at (α, σ): c = α² s + σ², score −(x − α μ)/c,
    // Laplacian −D/c, log p = −|x − α μ|²/(2c) − (D/2) log(2π c). All are a few
    // roundings from exact: 16 ε relative to each output's scale.
    let (d, s_var, a, sg) = (3, 0.5_f64, 0.8_f64, 0.6_f64);
    let mu = Array1::from_vec(vec![1.0, -2.0, 0.5]);
    let gm = GaussianMixture::gaussian(mu.clone(), Array2::eye(d) * s_var).expect("valid");
    assert!(gm.parts().tied);
    let c = a * a * s_var + sg * sg;
    let x = Array2::from_shape_vec((2, d), vec![0.3, 0.1, -0.7, 4.0, -1.0, 2.0]).expect("shape");
    for isa in Isa::available() {
        let ev = run_block(isa, &gm, a, sg, x.view());
        for i in 0..2 {
            let r = &x.row(i) - &(&mu * a);
            let q = r.dot(&r) / c;
            let lp = -0.5 * q - 0.5 * d as f64 * (2.0 * std::f64::consts::PI * c).ln();
            let tol = 16.0 * f64::EPSILON;
            assert!((ev.log_prob[i] - lp).abs() <= tol * (1.0 + lp.abs() + q));
            assert!((ev.laplacian[i] + d as f64 / c).abs() <= tol * d as f64 / c);
            assert!((ev.resp[[i, 0]] - 1.0).abs() <= tol);
            for j in 0..d {
                let want = -r[j] / c;
                assert!(
                    (ev.score[[i, j]] - want).abs() <= tol * (1.0 + r.dot(&r).sqrt() / c),
                    "{isa:?}: score {} vs {want}",
                    ev.score[[i, j]]
                );
            }
        }
    }
}

/// One output alone, evaluated with a fresh workspace.
fn run_one<F: Real>(
    isa: Isa,
    gm: &GaussianMixture<F>,
    a: F,
    sg: F,
    x: ArrayView2<F>,
    which: usize,
) -> Eval<F> {
    let (k, d) = (gm.n_components(), gm.dim());
    let mut ev = Eval::zeros(x.nrows(), d, k);
    let mut ws = BlockWorkspace::new(k, d);
    let out = match which {
        0 => Outputs {
            log_prob: Some(ev.log_prob.view_mut()),
            ..Outputs::none()
        },
        1 => Outputs {
            score: Some(ev.score.view_mut()),
            ..Outputs::none()
        },
        2 => Outputs {
            laplacian: Some(ev.laplacian.view_mut()),
            ..Outputs::none()
        },
        _ => Outputs {
            responsibilities: Some(ev.resp.view_mut()),
            ..Outputs::none()
        },
    };
    dispatch::evaluate(isa, &gm.parts(), a, sg, x, &mut ws, &mut { out });
    ev
}

#[test]
fn outputs_do_not_depend_on_which_are_asked_for() {
    // Bit for bit, on the tied (isotropic and full) and general paths, f32 and f64.
    fn check<F: Real>(kind: Kind) {
        let gm = kind_mixture::<F>(kind, 3, 4, 3);
        let (a, sg) = (F::lit(0.7), F::lit(0.7));
        let x = rows(&gm, a, sg, 70, 0, 1);
        for isa in Isa::available() {
            let all = run_block(isa, &gm, a, sg, x.view());
            assert_eq!(run_one(isa, &gm, a, sg, x.view(), 0).log_prob, all.log_prob);
            assert_eq!(run_one(isa, &gm, a, sg, x.view(), 1).score, all.score);
            assert_eq!(
                run_one(isa, &gm, a, sg, x.view(), 2).laplacian,
                all.laplacian
            );
            assert_eq!(run_one(isa, &gm, a, sg, x.view(), 3).resp, all.resp);
        }
    }
    for kind in [Kind::TiedIsotropic, Kind::TiedFull, Kind::Untied] {
        check::<f64>(kind);
        check::<f32>(kind);
    }
}

#[test]
fn a_tied_row_does_not_depend_on_its_batch() {
    // As `a_row_does_not_depend_on_its_batch`, on the tied path (ring2d, and a tied
    // full covariance), bit for bit, in f32 (where a changed order of operations would
    // show most).
    let full = kind_mixture::<f32>(Kind::TiedFull, 5, 3, 4);
    for gm in [problems::ring2d::<f32>(), full] {
        assert!(gm.parts().tied);
        let x = rows(&gm, 0.7, 0.7, 1500, 0, 5);
        for isa in Isa::available() {
            let all = run_block(isa, &gm, 0.7, 0.7, x.view());
            for i in [0, 17, 1499] {
                let one = run_block(isa, &gm, 0.7, 0.7, x.slice(s![i..i + 1, ..]));
                assert_eq!(one.score.row(0), all.score.row(i));
                assert_eq!(one.laplacian[0], all.laplacian[i]);
                assert_eq!(one.log_prob[0], all.log_prob[i]);
                assert_eq!(one.resp.row(0), all.resp.row(i));
            }
        }
    }
}
