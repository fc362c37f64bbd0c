//! Quickstart: the forward process of the 2-D eight-component ring, exactly and by
//! Monte Carlo. Built in, nothing downloaded:
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! For each t it diffuses exact ring samples with `VpSde::perturb` and compares their
//! mean and covariance with the closed-form marginal `Σ w_k N(α μ_k, α² S_k + σ² I)`.

use rand::SeedableRng;
use score_sde::prelude::*;

fn main() -> Result<()> {
    let ring = problems::ring2d::<f64>();
    let sde = VpSde::<f64>::default();
    let mut rng = rand_pcg::Pcg64::seed_from_u64(2024);
    let n = 200_000;
    let x0 = ring.sample(n, &mut rng)?;

    println!("Forward VP-SDE (β_min 0.1, β_max 20) of the 2-D ring, N = {n} samples");
    println!(
        "{:>6} {:>8} {:>8} | {:>10} {:>10} | {:>10} {:>10} {:>8}",
        "t", "alpha", "sigma", "var exact", "var MC", "cov01 ex", "cov01 MC", "z-score"
    );
    for &t in &[0.001, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0] {
        let (xt, _) = sde.perturb(x0.view(), t, &mut rng)?;
        let exact = ring.diffuse(sde.schedule(), t)?;
        let c = exact.covariance();
        let mc = score_sde::metrics::sample_covariance(xt.view())?;
        // Standard error of a Gaussian-like variance estimate: var · √(2/N) (a guide only:
        // the ring is not Gaussian, so the z-score is indicative).
        let se = c[[0, 0]] * (2.0 / n as f64).sqrt();
        println!(
            "{t:>6.3} {:>8.4} {:>8.4} | {:>10.4} {:>10.4} | {:>10.4} {:>10.4} {:>8.2}",
            sde.alpha(t),
            sde.sigma(t),
            c[[0, 0]],
            mc[[0, 0]],
            c[[0, 1]],
            mc[[0, 1]],
            (mc[[0, 0]] - c[[0, 0]]) / se
        );
    }
    Ok(())
}
