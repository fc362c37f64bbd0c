//! Small dense linear algebra for the mixture oracle (crate-private, f64).
//!
//! Matrices here are `D × D` covariances (D up to a few hundred), factorised once at
//! construction; nothing here runs per sample. Cholesky (Golub & Van Loan 2013, Alg. 4.2.1)
//! validates positive definiteness; the cyclic Jacobi method (Golub & Van Loan 2013,
//! §8.5.2) gives the eigendecomposition `S = U diag(λ) Uᵀ` that lets the diffused
//! covariance `α² S + σ² I = U diag(α² λ + σ²) Uᵀ` be used at every `t` without refactoring.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

/// Lower Cholesky factor `L` with `L Lᵀ = a`, or the index and value of the first
/// non-positive pivot.
pub(crate) fn cholesky(a: ArrayView2<f64>) -> Result<Array2<f64>, (usize, f64)> {
    let n = a.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for j in 0..n {
        let mut d = a[[j, j]];
        for k in 0..j {
            d -= l[[j, k]] * l[[j, k]];
        }
        if d.is_nan() || d <= 0.0 {
            return Err((j, d));
        }
        let ljj = d.sqrt();
        l[[j, j]] = ljj;
        for i in j + 1..n {
            let mut s = a[[i, j]];
            for k in 0..j {
                s -= l[[i, k]] * l[[j, k]];
            }
            l[[i, j]] = s / ljj;
        }
    }
    Ok(l)
}

/// Solve `L y = b` for lower-triangular `L`.
pub(crate) fn solve_lower(l: ArrayView2<f64>, b: ArrayView1<f64>) -> Array1<f64> {
    let n = l.nrows();
    let mut y = Array1::<f64>::zeros(n);
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[[i, k]] * y[k];
        }
        y[i] = s / l[[i, i]];
    }
    y
}

/// Solve `Lᵀ x = y` for lower-triangular `L`.
pub(crate) fn solve_lower_t(l: ArrayView2<f64>, y: ArrayView1<f64>) -> Array1<f64> {
    let n = l.nrows();
    let mut x = Array1::<f64>::zeros(n);
    for i in (0..n).rev() {
        let mut s = y[i];
        for k in i + 1..n {
            s -= l[[k, i]] * x[k];
        }
        x[i] = s / l[[i, i]];
    }
    x
}

/// Solve `(L Lᵀ) x = b`.
pub(crate) fn cho_solve(l: ArrayView2<f64>, b: ArrayView1<f64>) -> Array1<f64> {
    let y = solve_lower(l, b);
    solve_lower_t(l, y.view())
}

/// `q_k − q_j` for the quadratic forms `q_i = r_iᵀ (L_i L_iᵀ)⁻¹ r_i`, given `δ = r_k − r_j`
/// computed directly (e.g. `μ_j − μ_k`, exact where `r_k` and `r_j` are large and close):
///
/// ```text
/// q_k − q_j = δᵀ P_k (r_k + r_j) + (r_jᵀ P_k r_j − r_jᵀ P_j r_j)
/// ```
///
/// (expand `r_k = r_j + δ`). Subtracting the two `q` loses everything when `|r| ≫ |δ|`
/// (observations ~1e200 from means 10 apart); here the first term is `O(|δ| |r|)` and the
/// second vanishes exactly when `L_k = L_j` (a shared covariance), so the weights of
/// conditionals and posteriors keep their limit far out.
pub(crate) fn quad_difference(
    l_k: ArrayView2<f64>,
    l_j: ArrayView2<f64>,
    r_k: ArrayView1<f64>,
    r_j: ArrayView1<f64>,
    delta: ArrayView1<f64>,
) -> f64 {
    let sum = &r_k + &r_j;
    let first = delta.dot(&cho_solve(l_k, sum.view()));
    let (a, b) = (solve_lower(l_k, r_j), solve_lower(l_j, r_j));
    first + (a.dot(&a) - b.dot(&b))
}

/// Eigendecomposition of a symmetric matrix by cyclic Jacobi rotations:
/// returns `(λ, U)` with `a = U diag(λ) Uᵀ`, `U` orthogonal (eigenvectors in columns).
/// Converges quadratically; stops when the off-diagonal mass is below `1e-30` of the
/// total or after 100 sweeps.
pub(crate) fn symmetric_eigen(a: ArrayView2<f64>) -> (Array1<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut m = a.to_owned();
    let mut u = Array2::<f64>::eye(n);
    let total: f64 = m.iter().map(|v| v * v).sum::<f64>().max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let mut off = 0.0;
        for p in 0..n {
            for q in p + 1..n {
                off += m[[p, q]] * m[[p, q]];
            }
        }
        if off <= 1e-30 * total {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[[p, q]];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (m[[p, p]], m[[q, q]]);
                // Rotation angle that zeroes m[p,q] (Golub & Van Loan, Alg. 8.5.1).
                let tau = (aqq - app) / (2.0 * apq);
                let t = tau.signum() / (tau.abs() + (1.0 + tau * tau).sqrt());
                let t = if tau == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[[k, p]], m[[k, q]]);
                    m[[k, p]] = c * mkp - s * mkq;
                    m[[k, q]] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[[p, k]], m[[q, k]]);
                    m[[p, k]] = c * mpk - s * mqk;
                    m[[q, k]] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (ukp, ukq) = (u[[k, p]], u[[k, q]]);
                    u[[k, p]] = c * ukp - s * ukq;
                    u[[k, q]] = s * ukp + c * ukq;
                }
            }
        }
    }
    let lambda = Array1::from_iter((0..n).map(|i| m[[i, i]]));
    (lambda, u)
}

/// `v · 2^e` for `|e| ≤ 1100` in two exact steps, so that no factor leaves the range of
/// f64 (exact whenever the result is a normal number).
fn scale2(v: f64, e: i32) -> f64 {
    let h = e / 2;
    v * 2f64.powi(h) * 2f64.powi(e - h)
}

/// A validated covariance: the symmetrised matrix and its eigendecomposition.
pub(crate) struct Covariance {
    /// `S/2 + Sᵀ/2`.
    pub sym: Array2<f64>,
    /// Eigenvalues, each a normal float of the target type, with finite `Σ λ` and `Σ 1/λ`.
    pub eigvals: Array1<f64>,
    /// Eigenvectors in columns (the identity for a diagonal `S`).
    pub eigvecs: Array2<f64>,
    /// `S` is diagonal.
    pub diagonal: bool,
}

/// Limits of the float type a covariance will be used in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FloatRange {
    /// Machine epsilon.
    pub eps: f64,
    /// Smallest positive normal value.
    pub min_positive: f64,
    /// Largest finite value.
    pub max: f64,
}

/// Validate a covariance `s` (already checked finite) for use in a float type with `range`:
///
/// * **symmetry**, absolute plus relative: `|S_ij − S_ji| ≤ 256 ε (max(|S_ij|, |S_ji|) +
///   √|S_ii| √|S_jj|)`. The second term is the entry's natural scale (`|S_ij| ≤ √(S_ii S_jj)`
///   for a positive definite matrix), so the test does not depend on the units of other
///   coordinates, as a tolerance relative to the largest entry did (an off-diagonal pair
///   `−0` vs `−56.7` beside a diagonal of `f64::MAX` passed it);
/// * **symmetrisation** as `S/2 + Sᵀ/2`, which cannot overflow (`(S + Sᵀ)/2` does for entries
///   beyond `f64::MAX / 2`);
/// * **positive definiteness** by Cholesky (Golub & Van Loan 2013, Alg. 4.2.1);
/// * **range**: every eigenvalue a normal float of the target type (a subnormal `λ` makes
///   `1/λ` overflow when the density is evaluated), and `tr S = Σ λ` and `tr S⁻¹ = Σ 1/λ`
///   finite (the diffused covariance and the Laplacian `−tr P` need them).
///
/// The error is the reason, for [`Error::NotPositiveDefinite`](crate::Error).
pub(crate) fn validate_covariance(
    s: ArrayView2<f64>,
    range: FloatRange,
) -> Result<Covariance, String> {
    let d = s.nrows();
    let tol = 256.0 * range.eps;
    let mut diagonal = true;
    for i in 0..d {
        for j in 0..i {
            let (a, b) = (s[[i, j]], s[[j, i]]);
            // Everything halved: |a − b| and the scale could overflow for entries near
            // f64::MAX, their halves cannot.
            let half_scale =
                0.5 * a.abs().max(b.abs()) + 0.5 * s[[i, i]].abs().sqrt() * s[[j, j]].abs().sqrt();
            if (a * 0.5 - b * 0.5).abs() > tol * half_scale {
                return Err(format!(
                    "not symmetric: S[{i},{j}] = {a:?} but S[{j},{i}] = {b:?} \
                     (tolerance {:.1e} at this entry's scale)",
                    2.0 * tol * half_scale
                ));
            }
            if a != 0.0 || b != 0.0 {
                diagonal = false;
            }
        }
    }
    let sym = Array2::from_shape_fn((d, d), |(i, j)| s[[i, j]] * 0.5 + s[[j, i]] * 0.5);
    if let Err((j, pivot)) = cholesky(sym.view()) {
        return Err(format!("Cholesky pivot {j} is {pivot:?}"));
    }
    let (eigvals, eigvecs) = if diagonal {
        (sym.diag().to_owned(), Array2::eye(d))
    } else {
        // Jacobi's convergence test sums squares of the entries, which over- or underflows
        // for entries beyond ~1e154 or below ~1e-154: run it on `S · 2^−e` with the largest
        // entry near 1 (exact scaling) and scale the eigenvalues back.
        let m = sym.iter().fold(0.0_f64, |a, v| a.max(v.abs()));
        let e = m.log2().round() as i32;
        let (lam, u) = symmetric_eigen(sym.mapv(|v| scale2(v, -e)).view());
        (lam.mapv(|l| scale2(l, e)), u)
    };
    for (j, &l) in eigvals.iter().enumerate() {
        if l.is_nan() || l <= 0.0 {
            return Err(format!("eigenvalue {j} is {l:?}"));
        }
        if l < range.min_positive || l > range.max {
            return Err(format!(
                "eigenvalue {j} is {l:?}, outside the normal range [{:?}, {:?}] of the float \
                 type (its inverse or square root would over- or underflow)",
                range.min_positive, range.max
            ));
        }
    }
    let trace: f64 = eigvals.sum();
    let trace_inv: f64 = eigvals.iter().map(|l| 1.0 / l).sum();
    if trace.is_nan() || trace > range.max {
        return Err(format!(
            "the trace (sum of eigenvalues) {trace:e} overflows the float type"
        ));
    }
    if trace_inv.is_nan() || trace_inv > range.max {
        return Err(format!(
            "the trace of the inverse (sum of 1/eigenvalue) {trace_inv:e} overflows the float \
             type: the smallest eigenvalue {:e} is too small for the density's Laplacian",
            eigvals.iter().fold(f64::INFINITY, |m, &l| m.min(l))
        ));
    }
    Ok(Covariance {
        sym,
        eigvals,
        eigvecs,
        diagonal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn eigen_reconstructs_and_is_orthogonal() {
        let a = array![[4.0, 1.0, 0.5], [1.0, 3.0, -0.2], [0.5, -0.2, 1.0]];
        let (lam, u) = symmetric_eigen(a.view());
        let rec = u.dot(&Array2::from_diag(&lam)).dot(&u.t());
        assert!((&rec - &a).iter().all(|e| e.abs() < 1e-13));
        let id = u.t().dot(&u);
        assert!(
            (&id - &Array2::<f64>::eye(3))
                .iter()
                .all(|e| e.abs() < 1e-13)
        );
    }

    #[test]
    fn cholesky_solves_and_rejects_indefinite() {
        let a = array![[4.0, 2.0], [2.0, 3.0]];
        let l = cholesky(a.view()).unwrap();
        let x = cho_solve(l.view(), array![1.0, 2.0].view());
        let r = a.dot(&x) - array![1.0, 2.0];
        assert!(r.iter().all(|e| e.abs() < 1e-14));
        let bad = array![[1.0, 2.0], [2.0, 1.0]];
        assert_eq!(cholesky(bad.view()).unwrap_err().0, 1);
    }
}
