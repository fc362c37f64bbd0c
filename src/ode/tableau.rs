//! Explicit Runge–Kutta methods as data: Butcher tableaux.
//!
//! A tableau `(c, A, b)` with `s` stages defines one step of size `h` from `(t, y)`:
//!
//! ```text
//! k_i = F(t + c_i h, y + h Σ_{j<i} a_ij k_j),     y_new = y + h Σ_i b_i k_i
//! ```
//!
//! (Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.1). An embedded pair adds error
//! weights `e = b − b̂` whose combination `h Σ e_i k_i` estimates the local error of the
//! lower-order solution `b̂`; with `fsal` ("first same as last") the right-hand side at
//! the new point, `F(t + h, y_new)`, is one more stage `k_{s+1}` that enters the error
//! estimate and is reused as the next step's `k_1`. Adding a method is adding a constant
//! here: [`integrate_fixed`](super::integrate_fixed) runs any tableau on a grid and
//! [`AdaptiveRk`](super::AdaptiveRk) runs any embedded pair with step-size control.

/// An explicit Runge–Kutta method (see the [module docs](crate::ode)). Fields are public so a
/// user can write a method of their own as a constant; [`Tableau::validate`] checks it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tableau {
    /// A short name for messages.
    pub name: &'static str,
    /// Stage times `c_i` (fractions of the step).
    pub c: &'static [f64],
    /// The strictly lower-triangular `A`: row `i` holds `a_i0 … a_i(i−1)`.
    pub a: &'static [&'static [f64]],
    /// The weights `b_i` of the propagated solution.
    pub b: &'static [f64],
    /// Error weights `e_i = b_i − b̂_i` (one more entry, for `k_{s+1}`, when `fsal`), or
    /// `None` for a method without an embedded estimate.
    pub e: Option<&'static [f64]>,
    /// Order of the propagated solution.
    pub order: usize,
    /// Order of the embedded solution (the error estimate is `O(h^{order_err + 1})`).
    pub order_err: usize,
    /// Whether `F(t + h, y_new)` is the extra stage of the error estimate and the next
    /// step's first stage.
    pub fsal: bool,
}

impl Tableau {
    /// Number of stages `s` (right-hand-side calls of a fixed step without FSAL reuse).
    pub fn stages(&self) -> usize {
        self.b.len()
    }

    /// Check the shapes (`c`, `A`, `b` of one length `s ≥ 1`, row `i` of `A` with `i`
    /// entries, `e` of length `s` or `s + 1` with FSAL), finiteness, `c_s = 1` and
    /// `A`'s last row `= b` for FSAL, and at most 15 stages.
    pub fn validate(&self) -> crate::Result<()> {
        use crate::Error;
        let s = self.stages();
        let bad = |why: &'static str| Err(Error::param("tableau", s as f64, why));
        if s == 0 || s + usize::from(self.fsal) > super::explicit::MAX_STAGES {
            return bad("needs 1 to 15 stages");
        }
        if self.c.len() != s || self.a.len() != s {
            return bad("c, A and b must have one length");
        }
        if self.a.iter().enumerate().any(|(i, row)| row.len() != i) {
            return bad("row i of A must have i entries (explicit methods)");
        }
        let all = self
            .c
            .iter()
            .chain(self.b)
            .chain(self.a.iter().flat_map(|r| r.iter()))
            .chain(self.e.unwrap_or(&[]));
        if all.clone().any(|v| !v.is_finite()) {
            return bad("coefficients must be finite");
        }
        if let Some(e) = self.e {
            if e.len() != s + usize::from(self.fsal) {
                return bad("e needs one weight per stage (and one for the FSAL stage)");
            }
        }
        Ok(())
    }
}

/// Euler's method: order 1, one stage.
pub const EULER: Tableau = Tableau {
    name: "Euler",
    c: &[0.0],
    a: &[&[]],
    b: &[1.0],
    e: None,
    order: 1,
    order_err: 0,
    fsal: false,
};

/// Heun's method (the explicit trapezoidal rule): order 2, two stages.
pub const HEUN: Tableau = Tableau {
    name: "Heun",
    c: &[0.0, 1.0],
    a: &[&[], &[1.0]],
    b: &[0.5, 0.5],
    e: None,
    order: 2,
    order_err: 0,
    fsal: false,
};

/// The classic fourth-order Runge–Kutta method (Kutta 1901): four stages.
pub const RK4: Tableau = Tableau {
    name: "RK4",
    c: &[0.0, 0.5, 0.5, 1.0],
    a: &[&[], &[0.5], &[0.0, 0.5], &[0.0, 0.0, 1.0]],
    b: &[1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
    e: None,
    order: 4,
    order_err: 0,
    fsal: false,
};

/// Dormand & Prince 1980, "A family of embedded Runge–Kutta formulae", J. Comp. Appl.
/// Math. 6, Table 2 (RK5(4)7M; Hairer, Nørsett & Wanner I, Table II.5.2): six stages, the
/// fifth-order solution propagated (local extrapolation), FSAL.
pub const DOPRI5: Tableau = Tableau {
    name: "Dormand–Prince 5(4)",
    c: &[0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0],
    a: &[
        &[],
        &[1.0 / 5.0],
        &[3.0 / 40.0, 9.0 / 40.0],
        &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
        &[
            19372.0 / 6561.0,
            -25360.0 / 2187.0,
            64448.0 / 6561.0,
            -212.0 / 729.0,
        ],
        &[
            9017.0 / 3168.0,
            -355.0 / 33.0,
            46732.0 / 5247.0,
            49.0 / 176.0,
            -5103.0 / 18656.0,
        ],
    ],
    b: &[
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
    ],
    e: Some(&[
        71.0 / 57600.0,
        0.0,
        -71.0 / 16695.0,
        71.0 / 1920.0,
        -17253.0 / 339200.0,
        22.0 / 525.0,
        -1.0 / 40.0,
    ]),
    order: 5,
    order_err: 4,
    fsal: true,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The order conditions up to order 4 (Hairer, Nørsett & Wanner I, Table II.2.1) and
    /// the row-sum condition `c_i = Σ_j a_ij`, for every tableau, to rounding. A mistyped
    /// coefficient breaks one of them.
    #[test]
    fn tableaux_satisfy_their_order_conditions() {
        for tab in [EULER, HEUN, RK4, DOPRI5] {
            let s = tab.stages();
            assert_eq!(tab.a.len(), s, "{}", tab.name);
            assert_eq!(tab.c.len(), s, "{}", tab.name);
            for (i, row) in tab.a.iter().enumerate() {
                assert_eq!(row.len(), i, "{}", tab.name);
                let sum: f64 = row.iter().sum();
                assert!((sum - tab.c[i]).abs() < 1e-14, "{} row {i}", tab.name);
            }
            let b = tab.b;
            let c = tab.c;
            let av = |v: &dyn Fn(usize) -> f64, i: usize| -> f64 {
                (0..i).map(|j| tab.a[i][j] * v(j)).sum()
            };
            let conds: Vec<(usize, f64, f64)> = vec![
                (1, b.iter().sum(), 1.0),
                (2, (0..s).map(|i| b[i] * c[i]).sum(), 0.5),
                (3, (0..s).map(|i| b[i] * c[i] * c[i]).sum(), 1.0 / 3.0),
                (3, (0..s).map(|i| b[i] * av(&|j| c[j], i)).sum(), 1.0 / 6.0),
                (4, (0..s).map(|i| b[i] * c[i].powi(3)).sum(), 0.25),
                (
                    4,
                    (0..s).map(|i| b[i] * c[i] * av(&|j| c[j], i)).sum(),
                    1.0 / 8.0,
                ),
                (
                    4,
                    (0..s).map(|i| b[i] * av(&|j| c[j] * c[j], i)).sum(),
                    1.0 / 12.0,
                ),
                (
                    4,
                    (0..s).map(|i| b[i] * av(&|j| av(&|k| c[k], j), i)).sum(),
                    1.0 / 24.0,
                ),
            ];
            for (order, got, want) in conds {
                if order <= tab.order {
                    assert!(
                        (got - want).abs() < 1e-14,
                        "{}: order-{order} condition",
                        tab.name
                    );
                }
            }
            // The embedded weights: b̂ = b − e has order `order_err` (its first condition,
            // Σ b̂ = 1, means Σ e = 0 over the stages, FSAL stage included).
            if let Some(e) = tab.e {
                assert_eq!(e.len(), s + usize::from(tab.fsal), "{}", tab.name);
                let sum: f64 = e.iter().sum();
                assert!(sum.abs() < 1e-15, "{}: Σ e = {sum}", tab.name);
            }
        }
    }
}
