//! Latent editing on the 2-D ring (Song et al. 2021, §4.3 and Fig. 3): encode two samples
//! with the probability-flow ODE, interpolate their latents on the great circle (slerp),
//! decode; and rescale the temperature of prior latents.
//!
//! ```text
//! cargo run --release --example latent_interpolation
//! ```
//!
//! Writes `target/examples-out/latent_interpolation/strip.png` (one panel per interpolant:
//! the decoded point over exact ring samples, the decoded path so far) and
//! `temperature.png` (decoded prior latents scaled by τ = 1, 0.75, 0.5, 0.25).

#[allow(dead_code)]
mod common;

pub use common::Scale;
use common::{BoxResult, EXACT, HIGHLIGHT, Panel, SAMPLED};
use ndarray::{Array2, array, s};
use rand::SeedableRng;
use score_sde::latent::temperature;
use score_sde::prelude::*;
use score_sde::sample::{Dopri5, ProbabilityFlow};
use std::path::{Path, PathBuf};

fn main() -> BoxResult<()> {
    let dir = common::default_out_dir("latent_interpolation")?;
    let pictures = run(&dir, Scale::Full)?;
    common::report(&pictures);
    Ok(())
}

/// The example's core: the two pictures' paths.
pub fn run(out_dir: &Path, scale: Scale) -> BoxResult<Vec<PathBuf>> {
    let sde = VpSde::<f64>::default();
    let ring = problems::ring2d::<f64>();
    let model = AnalyticScore::new(ring.clone(), *sde.schedule());
    let pf = ProbabilityFlow::adaptive(sde.clone(), Dopri5::new(1e-6, 1e-6)?);
    let mut rng = rand_pcg::Pcg64::seed_from_u64(11);
    let exact = ring.sample(scale.pick(300, 2000), &mut rng)?;

    // Two samples on different components (0 and 3), interpolated through their latents.
    let (a, b) = (array![3.9, 0.2], array![-2.7, 2.9]);
    let k = scale.pick(5, 9);
    let (z, x) = pf.interpolate(&model, a.view(), b.view(), k)?;
    println!("slerp between the latents of {a} and {b}:");
    println!(
        "{:>3} {:>10} {:>10} {:>10} {:>10}",
        "i", "|z|", "x0", "x1", "radius"
    );
    for i in 0..k {
        let (zr, xr) = (z.row(i), x.row(i));
        println!(
            "{i:>3} {:>10.4} {:>10.4} {:>10.4} {:>10.4}",
            zr.dot(&zr).sqrt(),
            xr[0],
            xr[1],
            xr.dot(&xr).sqrt()
        );
    }
    let items: Vec<Panel<'_>> = (0..k)
        .map(|i| {
            Panel::new(format!("λ = {:.2}", i as f64 / (k - 1) as f64))
                .points(exact.view(), EXACT)
                .path(x.slice(s![..=i, ..]).to_owned(), HIGHLIGHT)
        })
        .collect();
    let strip = common::panels(
        &out_dir.join("strip.png"),
        "PF-ODE latents of two ring samples, slerped and decoded",
        k,
        5.5,
        220,
        &items,
    )?;

    // Temperature: prior latents scaled by τ, decoded.
    let n = scale.pick(300, 2000);
    let z0 = sde.sample_prior(n, 2, &mut rng)?;
    let taus = [1.0, 0.75, 0.5, 0.25];
    let mut decoded: Vec<Array2<f64>> = Vec::new();
    for &tau in &taus {
        let (x, _) = pf.decode(&model, temperature(z0.view(), tau)?)?;
        let r = x.rows().into_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / n as f64;
        let spread = x
            .rows()
            .into_iter()
            .map(|r| (r.dot(&r).sqrt() - 4.0).powi(2))
            .sum::<f64>()
            / n as f64;
        println!(
            "τ = {tau}: mean radius {r:.3}, rms distance from the ring {:.3}",
            spread.sqrt()
        );
        decoded.push(x);
    }
    let items: Vec<Panel<'_>> = taus
        .iter()
        .zip(&decoded)
        .map(|(tau, x)| Panel::new(format!("τ = {tau}")).points(x.view(), SAMPLED))
        .collect();
    let temp = common::panels(
        &out_dir.join("temperature.png"),
        "Decoded prior latents at temperature τ",
        taus.len(),
        5.5,
        260,
        &items,
    )?;
    Ok(vec![strip, temp])
}
