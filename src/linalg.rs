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
