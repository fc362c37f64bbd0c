//! Exact log-likelihood through the probability-flow ODE, beside the closed form.
//!
//! ```text
//! cargo run --release --example likelihood
//! ```
//!
//! For points of the 2-D ring and the 16-D mixture, integrates the augmented PF-ODE
//! (Dormand–Prince, rtol = atol = 1e-8, exact divergence) and prints `log p_{t₀}(x)` next to
//! the closed-form density of the diffused mixture. The ODE's end state is scored under the
//! exact `p_T` and under the N(0, I) prior, to show the prior-mismatch term.
//!
//! Then it evaluates the ODE log-density of the ring on a grid and draws it as a heat map
//! beside the closed form: `target/examples-out/likelihood/heatmap.png`.

#[allow(dead_code)]
mod common;

pub use common::Scale;
use common::{BoxResult, Panel};
use rand::SeedableRng;
use score_sde::likelihood::{DivergenceMethod, OdeLikelihood};
use score_sde::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn main() -> BoxResult<()> {
    let dir = common::default_out_dir("likelihood")?;
    let pictures = run(&dir, Scale::Full)?;
    common::report(&pictures);
    Ok(())
}

/// Print the tables, draw the heat maps; the picture's path.
pub fn run(out_dir: &Path, scale: Scale) -> BoxResult<Vec<PathBuf>> {
    table(scale)?;
    Ok(vec![heat_map(out_dir, scale)?])
}

/// `log p_{t₀}` of the ring through the PF-ODE on a grid, beside the closed form.
fn heat_map(out_dir: &Path, scale: Scale) -> BoxResult<PathBuf> {
    let (range, res) = (6.0, scale.pick(16, 80));
    let ring = problems::ring2d::<f64>();
    let sde = VpSde::<f64>::default();
    let model = AnalyticScore::new(ring.clone(), *sde.schedule());
    let p_eps = ring.diffuse(sde.schedule(), 1e-3)?;
    let p_t = ring.diffuse(sde.schedule(), 1.0)?;
    let lik = OdeLikelihood::new(sde.clone())?.tolerances(1e-6, 1e-6)?;
    let x = common::grid_points(range, res);
    let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
    let r = lik.log_prob(&model, x.view(), &mut rng)?;
    let ode = (&r.delta_log_p + &p_t.log_prob(r.latent.view())?).to_vec();
    let exact = p_eps.log_prob(x.view())?.to_vec();
    // Where the density matters (within 12 nats of its peak, the heat map's colour range).
    let peak = exact.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let worst = ode
        .iter()
        .zip(&exact)
        .filter(|(_, e)| **e > peak - 12.0)
        .map(|(o, e)| (o - e).abs())
        .fold(0.0, f64::max);
    println!(
        "\nheat map: {res}×{res} grid, largest |ODE − exact| within 12 nats of the peak: {worst:.2e}"
    );
    let items = [
        Panel::new(format!("PF-ODE log p (NFE {})", r.nfe)).heat(&ode),
        Panel::new("exact log p").heat(&exact),
    ];
    common::panels(
        &out_dir.join("heatmap.png"),
        "2-D ring: log-density at t = 1e-3, PF-ODE beside closed form",
        2,
        range,
        340,
        &items,
    )
}

/// The tables: a few points, then means over many, for the ring and the 16-D mixture.
fn table(scale: Scale) -> Result<()> {
    let sde = VpSde::<f64>::default();
    let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
    for (name, p0) in [
        ("ring2d", problems::ring2d::<f64>()),
        ("rand16d", problems::rand16d::<f64>()),
    ] {
        let model = AnalyticScore::new(p0.clone(), *sde.schedule());
        let p_eps = p0.diffuse(sde.schedule(), 1e-3)?;
        let p_t = p0.diffuse(sde.schedule(), 1.0)?;
        let lik = OdeLikelihood::new(sde.clone())?.tolerances(1e-8, 1e-8)?;
        println!("\n{name}: log p_t0(x), t0 = 1e-3");
        println!(
            "{:>4} {:>14} {:>14} {:>12} {:>14}",
            "i", "ODE (exact p_T)", "closed form", "difference", "ODE (N(0,I))"
        );
        let x = p_eps.sample(5, &mut rng)?;
        let r = lik.log_prob(&model, x.view(), &mut rng)?;
        let ode = &r.delta_log_p + &p_t.log_prob(r.latent.view())?;
        let exact = p_eps.log_prob(x.view())?;
        for i in 0..5 {
            println!(
                "{i:>4} {:>14.8} {:>14.8} {:>12.2e} {:>14.8}",
                ode[i],
                exact[i],
                ode[i] - exact[i],
                r.log_p[i]
            );
        }
        let n = scale.pick(300, 10_000);
        let x = p_eps.sample(n, &mut rng)?;
        for (label, method) in [
            ("exact divergence", DivergenceMethod::Exact),
            ("Hutchinson, 1 probe", DivergenceMethod::hutchinson(1)),
        ] {
            let lik = OdeLikelihood::new(sde.clone())?
                .tolerances(1e-5, 1e-5)?
                .divergence(method)?;
            let start = Instant::now();
            let r = lik.log_prob(&model, x.view(), &mut rng)?;
            let secs = start.elapsed().as_secs_f64();
            let ode = (&r.delta_log_p + &p_t.log_prob(r.latent.view())?)
                .mean()
                .unwrap_or(f64::NAN);
            let exact = p_eps.log_prob(x.view())?.mean().unwrap_or(f64::NAN);
            println!(
                "mean over {n} ({label}, rtol 1e-5): ODE {ode:.6}  exact {exact:.6}  diff {:.2e}  (N(0,I) prior: {:.6}); {} steps, NFE {}, {secs:.2} s",
                ode - exact,
                r.log_p.mean().unwrap_or(f64::NAN),
                r.steps,
                r.nfe
            );
        }
    }
    Ok(())
}
