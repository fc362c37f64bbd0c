//! Annealed Langevin dynamics (Song & Ermon 2019) on the 2-D ring, one frame per noise level:
//!
//! ```text
//! cargo run --release --example annealed_langevin
//! ```
//!
//! The noise levels form a geometric ladder from `σ_max = 10` down to `σ_min = 0.05`; at each
//! level the sampler takes unadjusted Langevin steps with step size `δ σ_i²/σ_L²` on the
//! exact score of the ring convolved with `N(0, σ_i² I)` (the EDM schedule, whose time is the
//! noise level). Each frame shows the samples at the end of a level over the exact
//! `log p_σ` they should follow. Writes `target/examples-out/annealed_langevin/levels.png`.

#[allow(dead_code)]
mod common;

pub use common::Scale;
use common::{BoxResult, HIGHLIGHT, Panel};
use rand::SeedableRng;
use score_sde::observe::Trajectory;
use score_sde::prelude::*;
use score_sde::sample::AnnealedLangevin;
use std::path::{Path, PathBuf};

fn main() -> BoxResult<()> {
    let dir = common::default_out_dir("annealed_langevin")?;
    let pictures = run(&dir, Scale::Full)?;
    common::report(&pictures);
    Ok(())
}

/// Run the sampler, draw a frame per level; the picture's path.
pub fn run(out_dir: &Path, scale: Scale) -> BoxResult<Vec<PathBuf>> {
    let n = scale.pick(300, 2000);
    let levels = scale.pick(4, 8);
    let per_level = scale.pick(20, 100);
    let res = scale.pick(40, 100);
    let ring = problems::ring2d::<f64>();
    let edm = Edm::<f64>::default();
    let model = AnalyticScore::new(ring.clone(), edm);
    let sampler = AnnealedLangevin::new(10.0, 0.05, levels, per_level, 2e-4)?;
    let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
    let x = sampler.initial_state(n, 2, &mut rng)?;
    // One frame at the end of each level (the observer sees t = σ_i).
    let mut frames = Trajectory::new(per_level, None);
    let out = sampler.run_with(&model, x, &mut rng, &mut frames)?;
    println!(
        "annealed Langevin on the 2-D ring: {levels} levels × {per_level} steps, NFE {}",
        out.nfe
    );
    let frames = frames.into_frames();
    let mut heat = Vec::new();
    for (_, sigma, _) in &frames {
        // Window wide enough for the level's spread: the ring (radius 4) plus 3σ.
        let range = (4.0 + 3.0 * sigma).clamp(6.0, 30.0);
        heat.push(common::log_density_on_grid(
            &ring.diffuse(&edm, *sigma)?,
            range,
            res,
        )?);
    }
    let mut items = Vec::new();
    for ((_, sigma, x), h) in frames.iter().zip(&heat) {
        let range = (4.0 + 3.0 * sigma).clamp(6.0, 30.0);
        let r_mean = x.rows().into_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / x.nrows() as f64;
        println!("  σ = {sigma:7.3}: mean radius {r_mean:.3}");
        items.push(
            Panel::new(format!("σ = {sigma:.3}"))
                .range(range)
                .heat(h)
                .points(x.view(), HIGHLIGHT),
        );
    }
    let png = common::panels(
        &out_dir.join("levels.png"),
        "Annealed Langevin on the 2-D ring: samples at the end of each noise level",
        4,
        6.0,
        260,
        &items,
    )?;
    Ok(vec![png])
}
