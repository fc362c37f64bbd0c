//! Property tests of the noise schedules: the drift and diffusion coefficients are the
//! derivatives they claim to be, the log-SNR is `log α − log σ` with derivative
//! `−g²/(2σ²)`, and `t_of_log_snr` inverts `log_snr`.
//!
//! Every schedule is checked through `Box<dyn Schedule<f64>>`, so the forwarding impls and
//! each schedule's closed-form overrides are exercised together.
//!
//! Finite differences are central, `D_h φ(t) = (φ(t+h) − φ(t−h)) / 2h`, with error
//! `h²/6 |φ'''| + (rounding of φ)/h`. Each assertion states both parts.

mod common;
use proptest::prelude::*;
use score_sde::schedule::{DiscreteVp, Edm, Schedule, SubVp, Ve, VpCosine, VpLinear};

const EPS: f64 = f64::EPSILON;

/// Number of steps of the discrete DDPM table under test (Ho et al. 2020).
const N_DDPM: usize = 1000;

/// Random but valid parameters for each continuous family.
#[derive(Debug, Clone, Copy)]
struct Params {
    beta_min: f64,
    beta_max: f64,
    cos_s: f64,
    cos_beta_max: f64,
    ve_min: f64,
    ve_max: f64,
    edm_min: f64,
    edm_max: f64,
}

fn params() -> impl Strategy<Value = Params> {
    (
        (0.01f64..1.0, 5.0f64..30.0),
        (0.001f64..0.02, 50.0f64..999.0),
        (0.002f64..0.1, 5.0f64..100.0),
        (0.001f64..0.01, 10.0f64..100.0),
    )
        .prop_map(
            |(
                (beta_min, beta_max),
                (cos_s, cos_beta_max),
                (ve_min, ve_max),
                (edm_min, edm_max),
            )| {
                Params {
                    beta_min,
                    beta_max,
                    cos_s,
                    cos_beta_max,
                    ve_min,
                    ve_max,
                    edm_min,
                    edm_max,
                }
            },
        )
}

/// All schedule families: the published defaults and one random parameterisation of each.
fn schedules(p: Params) -> Vec<(&'static str, Box<dyn Schedule<f64>>)> {
    vec![
        ("VpLinear default", Box::new(VpLinear::default())),
        (
            "VpLinear random",
            Box::new(VpLinear::new(p.beta_min, p.beta_max).unwrap()),
        ),
        ("VpCosine default", Box::new(VpCosine::default())),
        (
            "VpCosine random",
            Box::new(VpCosine::new(p.cos_s, p.cos_beta_max).unwrap()),
        ),
        ("SubVp default", Box::new(SubVp::default())),
        (
            "SubVp random",
            Box::new(SubVp::new(p.beta_min, p.beta_max).unwrap()),
        ),
        ("Ve default", Box::new(Ve::default())),
        ("Ve random", Box::new(Ve::new(p.ve_min, p.ve_max).unwrap())),
        ("Edm default", Box::new(Edm::default())),
        (
            "Edm random",
            Box::new(Edm::new(p.edm_min, p.edm_max).unwrap()),
        ),
        (
            "DiscreteVp ddpm_linear",
            Box::new(DiscreteVp::ddpm_linear(N_DDPM, 1e-4, 0.02).unwrap()),
        ),
    ]
}

/// A time in the schedule's range from `u ∈ [0, 1]`. For the discrete table (the last
/// schedule, piecewise linear in `log α` with knots at `k/N`) the time is put inside a
/// segment, at relative position `w ∈ [0.05, 0.95]`, so that `t ± h` never crosses a knot.
fn time_for(name: &str, s: &dyn Schedule<f64>, u: f64, w: f64) -> f64 {
    let (lo, hi) = s.t_range();
    if name.starts_with("DiscreteVp") {
        // Segments [ (k−1)/N, k/N ] for k = 2..=N lie inside [1/N, 1].
        let k = 2 + ((u * (N_DDPM - 1) as f64) as usize).min(N_DDPM - 2);
        ((k - 1) as f64 + w) / N_DDPM as f64
    } else {
        lo + u * (hi - lo)
    }
}

/// Step for central differences: proportional to `t` (the VP, sub-VP and EDM log-SNR behave
/// like `−log t` near 0, whose relative truncation error is `h²/(3t²)`), at most `10⁻⁶`
/// for `t ≤ 1`. For the table, `h ≤ 10⁻⁶` is far below the distance `≥ 5·10⁻⁵` to a knot.
fn step(t: f64) -> f64 {
    1e-6 * t.max(1e-2)
}

fn central(phi: impl Fn(f64) -> f64, t: f64, h: f64) -> (f64, f64) {
    let (a, b) = (phi(t + h), phi(t - h));
    ((a - b) / (2.0 * h), a.abs().max(b.abs()))
}

/// 64 cases from a fixed seed, so every run checks the same cases (raise `PROPTEST_CASES`
/// or change the seed to explore further; failures found that way are kept in the
/// `.proptest-regressions` file next to this one).
fn config() -> ProptestConfig {
    common::proptest_config(64, 0x5c4e_d01e)
}

proptest! {
    #![proptest_config(config())]

    /// `f = d log α / dt` and `g² = dσ²/dt − 2 f σ²` (Kingma et al. 2021, eq. 3; Song et al.
    /// 2021, App. B), for every schedule, against central differences of `α` and `σ`.
    #[test]
    fn drift_and_diffusion_are_the_derivatives(p in params(), u in 0.0f64..=1.0, w in 0.05f64..0.95) {
        for (name, s) in schedules(p) {
            let t = time_for(name, s.as_ref(), u, w);
            let h = step(t);

            // f versus D_h log α. Truncation: the worst case is the cosine schedule at its
            // clipped end time, where log α = log cos θ has |φ'''|/|φ'| ≈ 2θ'²/(π/2 − θ)²,
            // giving a relative error h²θ'²/(3(π/2−θ)²) < 10⁻⁷ for β(T) ≤ 999 and h ≤ 10⁻⁶;
            // we allow 10⁻⁶ relative. Rounding: log α is computed to ≈ ε(1 + |log α|)
            // (absolute), so the difference quotient carries ≤ 8ε(1 + |log α|)/h.
            let (fd, mag) = central(|t| s.alpha(t).ln(), t, h);
            let f = s.f(t);
            let tol = 1e-6 * f.abs() + 8.0 * EPS * (1.0 + mag) / h;
            prop_assert!((fd - f).abs() <= tol,
                "{name}: f({t}) = {f}, but D_h log α = {fd} (tol {tol})");

            // g² versus D_h σ² − 2 f σ². Truncation: σ² is a smooth combination of α² (VP,
            // cosine, sub-VP), an exponential e^{2t log(σ_max/σ_min)} (VE, relative error
            // h²(2 log r)²/6 < 10⁻¹⁰) or t² (EDM, exact); 10⁻⁶ relative to the larger of the
            // two terms covers them all. Rounding: σ² carries a relative error of a few ε,
            // so the quotient carries ≤ 8ε|σ²|/h.
            let (fd_s2, mag_s2) = central(|t| s.sigma(t).powi(2), t, h);
            let s2 = s.sigma(t).powi(2);
            let expect = fd_s2 - 2.0 * f * s2;
            let g2 = s.g2(t);
            let tol = 1e-6 * (fd_s2.abs() + (2.0 * f * s2).abs()) + 8.0 * EPS * mag_s2 / h;
            prop_assert!((expect - g2).abs() <= tol,
                "{name}: g2({t}) = {g2}, but D_h σ² − 2fσ² = {expect} (tol {tol})");
        }
    }

    /// `λ = log α − log σ`, `dλ/dt = −g²/(2σ²)` (which follows from the definitions of f
    /// and g²), and `t_of_log_snr(log_snr(t)) = t`.
    #[test]
    fn log_snr_and_its_inverse(p in params(), u in 0.0f64..=1.0, w in 0.05f64..0.95) {
        for (name, s) in schedules(p) {
            let t = time_for(name, s.as_ref(), u, w);
            let h = step(t);
            let lam = s.log_snr(t);

            // The closed-form overrides agree with the definition. Each of log α, log σ is
            // computed to a few ε(1 + |value|) absolute; allow 64ε of the magnitudes.
            let (la, ls) = (s.alpha(t).ln(), s.sigma(t).ln());
            let tol = 64.0 * EPS * (1.0 + la.abs() + ls.abs());
            prop_assert!((lam - (la - ls)).abs() <= tol,
                "{name}: log_snr({t}) = {lam} but log α − log σ = {}", la - ls);

            // dλ/dt = f − ½ dσ²/dt / σ² = −g²/(2σ²). Truncation: λ behaves at worst like
            // −log t (relative error h²/(3t²) ≤ 3·10⁻⁷ with h ≤ 10⁻⁶ max(t, 0.01)), or like
            // log cos θ near the cosine end time (< 10⁻⁷, as above); we allow 10⁻⁶ relative.
            // Rounding: λ is computed to 64ε(1 + |λ|) (see above), over h.
            let (fd, mag) = central(|t| s.log_snr(t), t, h);
            let dlam = -s.g2(t) / (2.0 * s.sigma(t).powi(2));
            let tol = 1e-6 * dlam.abs() + 64.0 * EPS * (1.0 + mag) / h;
            prop_assert!((fd - dlam).abs() <= tol,
                "{name}: dλ/dt({t}) = {dlam} by −g²/2σ², but D_h λ = {fd} (tol {tol})");
            prop_assert!(dlam < 0.0, "{name}: λ must decrease, dλ/dt({t}) = {dlam}");

            // Round trip. Conditioning: an error δλ ≈ 64ε(1 + |λ|) in λ moves t by δλ/|λ'|.
            // Algorithmic slack 10⁻¹²(1 + t): the closed-form inverses go through
            // acos(α cos θ₀) (cosine; near t = 0 this amplifies rounding by 1/sin θ ≤ 1/θ₀ ≈ 80),
            // a square root of a quantity near 0 (VP, sub-VP) or bisection to the last bit
            // (table), each losing at most a few hundred ε.
            let back = s.t_of_log_snr(lam).unwrap();
            let tol = 64.0 * EPS * (1.0 + lam.abs()) / dlam.abs() + 1e-12 * (1.0 + t);
            prop_assert!((back - t).abs() <= tol,
                "{name}: t_of_log_snr(log_snr({t})) = {back} (tol {tol})");
        }
    }
}

/// The DDPM table against the products of Ho et al. 2020 computed here independently:
/// `ᾱ_k = ∏_{j ≤ k} (1 − β_j)` at the knots `t = k/N`, and `log α` linear in between
/// (the interpolation of Lu et al. 2022, App. D).
#[test]
fn discrete_vp_is_the_ddpm_product_table() {
    let (n, b0, b1) = (N_DDPM, 1e-4, 0.02);
    let s = DiscreteVp::<f64>::ddpm_linear(n, b0, b1).unwrap();
    assert_eq!(s.len(), n);
    let mut abar = vec![1.0_f64];
    for j in 0..n {
        let beta = b0 + (b1 - b0) * j as f64 / (n - 1) as f64;
        let last = *abar.last().unwrap();
        abar.push(last * (1.0 - beta));
    }
    // The products and the table's cumulative sums of log(1 − β) both lose ≈ ε per factor:
    // over N = 1000 factors the relative error is ≤ 2Nε ≈ 4.4·10⁻¹³; allow 10⁻¹².
    let tol = 1e-12;
    let table = s.alphas_cumprod();
    for k in [1, 2, 10, 500, 999, 1000] {
        let t = k as f64 / n as f64;
        assert!(
            (s.alpha(t).powi(2) / abar[k] - 1.0).abs() < tol,
            "knot {k}: α² = {} but ᾱ = {}",
            s.alpha(t).powi(2),
            abar[k]
        );
        assert!((table[k] / abar[k] - 1.0).abs() < tol);
        // VP: σ² = 1 − ᾱ.
        assert!((s.sigma(t).powi(2) - (1.0 - abar[k])).abs() < tol);
    }
    // Between knots: log α at the midpoint is the mean of the neighbours, and f is the slope
    // N (log α_k − log α_{k−1}), and g² = −2f.
    for k in [2, 37, 640, 1000] {
        let mid = (k as f64 - 0.5) / n as f64;
        let (l0, l1) = (0.5 * abar[k - 1].ln(), 0.5 * abar[k].ln());
        assert!((s.alpha(mid).ln() - 0.5 * (l0 + l1)).abs() < tol);
        let slope = (l1 - l0) * n as f64;
        // The slope is a difference of two logs of size ≤ 5 times N = 1000: absolute error
        // ≈ 2·10⁻¹³·1000; allow 10⁻⁹ relative to its size (≈ 10⁻²).
        assert!((s.f(mid) - slope).abs() < 1e-9 * slope.abs().max(1e-2));
        assert!((s.g2(mid) + 2.0 * s.f(mid)).abs() < 1e-12);
    }
}

/// The closed forms of the continuous schedules, written here from the papers.
#[test]
fn closed_forms_match_the_papers() {
    // VP linear (Song et al. 2021, eq. 29): α = exp(−¼t²(β₁−β₀) − ½tβ₀), g² = β(t).
    let vp = VpLinear::<f64>::default();
    // Sub-VP (eq. 12 and App. B): σ = 1 − α², g² = β(t)(1 − e^{−2∫β}).
    let sub = SubVp::<f64>::default();
    // Cosine (Nichol & Dhariwal 2021, eq. 17): ᾱ = f(t)/f(0), f(t) = cos²((t+s)/(1+s)·π/2).
    let cos = VpCosine::<f64>::default();
    // VE (eq. 30): σ = σ_min (σ_max/σ_min)^t.
    let ve = Ve::<f64>::default();
    let pi2 = std::f64::consts::FRAC_PI_2;
    for t in [0.001_f64, 0.1, 0.37, 0.5, 0.9, 0.99] {
        let int_beta = 0.1 * t + 0.5 * t * t * (20.0 - 0.1);
        let beta = 0.1 + t * (20.0 - 0.1);
        let a = (-0.5 * int_beta).exp();
        // All of these are a handful of correctly rounded operations: 10⁻¹³ relative.
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-13 * y.abs().max(1e-300);
        assert!(close(vp.alpha(t), a));
        // 1 − α² written as −expm1(−∫β), which has no cancellation at small t.
        let one_m_a2 = -(-int_beta).exp_m1();
        assert!(close(vp.sigma(t), one_m_a2.sqrt()));
        assert!(close(vp.g2(t), beta));
        assert!(close(vp.f(t), -0.5 * beta));
        assert!(close(sub.alpha(t), a));
        assert!(close(sub.sigma(t), one_m_a2));
        assert!(close(sub.g2(t), beta * -(-2.0 * int_beta).exp_m1()));
        let ft = |t: f64| ((t + 0.008) / 1.008 * pi2).cos().powi(2);
        assert!(close(cos.alpha(t).powi(2), ft(t) / ft(0.0)));
        assert!(close(ve.sigma(t), 0.01 * (50.0_f64 / 0.01).powf(t)));
    }
    // The cosine schedule's end time is where β = −2f reaches 999 (the continuous version of
    // the paper's clipping β ≤ 0.999 per step of 1/1000).
    let (_, t_max) = cos.t_range();
    assert!(t_max < 1.0);
    assert!((cos.g2(t_max) / 999.0 - 1.0).abs() < 1e-9);
}

/// Regression: the sub-VP inverse computed `−2 log α = −log1p(−σ)` from `σ = 1 − α²`,
/// which cancels when `α² ≪ 1`: at `t ≈ 0.988` with `β ∈ [0.52, 29.66]` (`α² ≈ 4·10⁻⁷`)
/// the round trip was off by 4.6·10⁻¹² (found by `log_snr_and_its_inverse`). The conditioning
/// bound there is `64ε(1 + |λ|)/|λ'| ≈ 10⁻¹⁵`; we allow the same slack as the property.
#[test]
fn sub_vp_inverse_is_accurate_when_alpha_is_small() {
    let s = SubVp::<f64>::new(0.519_748_670_418_600_6, 29.663_507_138_822_375).unwrap();
    for t in [0.9, 0.987_985_152_712_478_4, 1.0] {
        let back = s.t_of_log_snr(s.log_snr(t)).unwrap();
        assert!((back - t).abs() <= 1e-12 * (1.0 + t), "t = {t}: {back}");
    }
}
