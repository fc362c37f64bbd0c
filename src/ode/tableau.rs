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

/// Bogacki & Shampine 1989, "A 3(2) pair of Runge–Kutta formulas", Appl. Math. Lett. 2(4),
/// eq. (2) (MATLAB's `ode23`, diffrax's `Bosh3`): three stages, the third-order solution
/// propagated, FSAL, so 3 right-hand-side calls per attempted step. The embedded
/// second-order weights are `b̂ = (7/24, 1/4, 1/3, 1/8)` (the last for the FSAL stage).
pub const BS3: Tableau = Tableau {
    name: "Bogacki–Shampine 3(2)",
    c: &[0.0, 0.5, 0.75],
    a: &[&[], &[0.5], &[0.0, 0.75]],
    b: &[2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0],
    e: Some(&[
        2.0 / 9.0 - 7.0 / 24.0,
        1.0 / 3.0 - 1.0 / 4.0,
        4.0 / 9.0 - 1.0 / 3.0,
        -1.0 / 8.0,
    ]),
    order: 3,
    order_err: 2,
    fsal: true,
};

/// Tsitouras 2011, "Runge–Kutta pairs of order 5(4) satisfying only the first column
/// simplifying assumption", Comput. Math. Appl. 62, Table 1 (Julia's `Tsit5`, diffrax's
/// `Tsit5`, whose digits these are checked against): six stages, the fifth-order solution
/// propagated, FSAL (6 calls per attempted step, as Dormand–Prince) with smaller error
/// constants. The error weights are written `b_i − b̂_i` from the paper's `b̂`.
pub const TSIT5: Tableau = Tableau {
    name: "Tsitouras 5(4)",
    c: &[0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0],
    a: &[
        &[],
        &[0.161],
        &[-0.008480655492356989, 0.335480655492357],
        &[2.8971530571054935, -6.359448489975075, 4.3622954328695815],
        &[
            5.325864828439257,
            -11.748883564062828,
            7.4955393428898365,
            -0.09249506636175525,
        ],
        &[
            5.86145544294642,
            -12.92096931784711,
            8.159367898576159,
            -0.071584973281401,
            -0.028269050394068383,
        ],
    ],
    b: &[
        0.09646076681806523,
        0.01,
        0.4798896504144996,
        1.379008574103742,
        -3.290069515436081,
        2.324710524099774,
    ],
    e: Some(&[
        0.09646076681806523 - 0.09468075576583945,
        0.01 - 0.009183565540343254,
        0.4798896504144996 - 0.4877705284247616,
        1.379008574103742 - 1.234297566930479,
        -3.290069515436081 + 2.7077123499835256,
        2.324710524099774 - 1.866628418170587,
        -1.0 / 66.0,
    ]),
    order: 5,
    order_err: 4,
    fsal: true,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// `c` and the strictly lower-triangular `A` as full rows, with the FSAL stage appended
    /// (`c = 1`, its row of `A` = `b`) when `fsal`.
    fn stages(tab: &Tableau) -> (Vec<f64>, Vec<Vec<f64>>) {
        let mut c = tab.c.to_vec();
        let mut a: Vec<Vec<f64>> = tab.a.iter().map(|r| r.to_vec()).collect();
        if tab.fsal {
            c.push(1.0);
            a.push(tab.b.to_vec());
        }
        (c, a)
    }

    /// The order conditions up to order 5 for weights `w` (Butcher's rooted trees under the
    /// row-sum assumption `c_i = Σ_j a_ij`: 1, 1, 2, 4 and 9 trees of orders 1–5; Hairer,
    /// Nørsett & Wanner I, Table II.2.1 and §II.2): `(order, Σ w Φ(tree), 1/γ(tree))`.
    fn order_conditions(c: &[f64], a: &[Vec<f64>], w: &[f64]) -> Vec<(usize, f64, f64)> {
        let s = w.len();
        let av = |v: &[f64]| -> Vec<f64> {
            (0..s)
                .map(|i| (0..i).map(|j| a[i][j] * v[j]).sum())
                .collect()
        };
        let mul =
            |u: &[f64], v: &[f64]| -> Vec<f64> { u.iter().zip(v).map(|(x, y)| x * y).collect() };
        let dot = |v: &[f64]| -> f64 { w.iter().zip(v).map(|(x, y)| x * y).sum() };
        let c = &c[..s];
        let one = vec![1.0; s];
        let c2 = mul(c, c);
        let c3 = mul(&c2, c);
        let c4 = mul(&c3, c);
        let ac = av(c);
        let ac2 = av(&c2);
        let aac = av(&ac);
        vec![
            (1, dot(&one), 1.0),
            (2, dot(c), 1.0 / 2.0),
            (3, dot(&c2), 1.0 / 3.0),
            (3, dot(&ac), 1.0 / 6.0),
            (4, dot(&c3), 1.0 / 4.0),
            (4, dot(&mul(c, &ac)), 1.0 / 8.0),
            (4, dot(&ac2), 1.0 / 12.0),
            (4, dot(&aac), 1.0 / 24.0),
            (5, dot(&c4), 1.0 / 5.0),
            (5, dot(&mul(&c2, &ac)), 1.0 / 10.0),
            (5, dot(&mul(c, &ac2)), 1.0 / 15.0),
            (5, dot(&mul(c, &aac)), 1.0 / 30.0),
            (5, dot(&mul(&ac, &ac)), 1.0 / 20.0),
            (5, dot(&av(&c3)), 1.0 / 20.0),
            (5, dot(&av(&mul(c, &ac))), 1.0 / 40.0),
            (5, dot(&av(&ac2)), 1.0 / 60.0),
            (5, dot(&av(&aac)), 1.0 / 120.0),
        ]
    }

    /// Every tableau satisfies the order conditions of its order and not all of the next
    /// (so `order` is not understated), its embedded weights `b̂ = b − e` those of
    /// `order_err`, and the row-sum condition `c_i = Σ_j a_ij`, to rounding (2e-14: sums of
    /// a dozen products of coefficients up to 13 in size). A mistyped coefficient breaks
    /// one of them.
    #[test]
    fn tableaux_satisfy_their_order_conditions() {
        for tab in [EULER, HEUN, RK4, DOPRI5, BS3, TSIT5] {
            tab.validate().unwrap();
            let s = tab.stages();
            assert_eq!(tab.a.len(), s, "{}", tab.name);
            assert_eq!(tab.c.len(), s, "{}", tab.name);
            for (i, row) in tab.a.iter().enumerate() {
                assert_eq!(row.len(), i, "{}", tab.name);
                let sum: f64 = row.iter().sum();
                assert!((sum - tab.c[i]).abs() < 2e-14, "{} row {i}", tab.name);
            }
            let (c, a) = stages(&tab);
            let check = |w: &[f64], order: usize, what: &str| {
                let conds = order_conditions(&c, &a, w);
                for &(o, got, want) in &conds {
                    if o <= order {
                        assert!(
                            (got - want).abs() < 2e-14,
                            "{} {what}: order-{o} condition {got} vs {want}",
                            tab.name
                        );
                    }
                }
                // Not of higher order: some condition of order + 1 fails (up to 5).
                if order < 5 {
                    assert!(
                        conds
                            .iter()
                            .any(|&(o, got, want)| o == order + 1 && (got - want).abs() > 1e-6),
                        "{} {what}: satisfies order {}",
                        tab.name,
                        order + 1
                    );
                }
            };
            check(tab.b, tab.order, "b");
            // The embedded weights b̂ = b − e (FSAL stage included) have order `order_err`.
            if let Some(e) = tab.e {
                assert_eq!(e.len(), s + usize::from(tab.fsal), "{}", tab.name);
                let mut bhat: Vec<f64> = tab.b.to_vec();
                bhat.resize(e.len(), 0.0);
                for (bh, ei) in bhat.iter_mut().zip(e) {
                    *bh -= ei;
                }
                check(&bhat, tab.order_err, "b̂");
            }
        }
    }
}
