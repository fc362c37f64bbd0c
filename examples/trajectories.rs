//! Paths of a few particles over the diffused density of the 2-D ring:
//!
//! ```text
//! cargo run --release --example trajectories
//! ```
//!
//! Three rows of panels, one per process, at `t = 1, 0.5, 0.25, t_min`; each panel shows
//! the exact `log p_t` as a heat map and the paths so far:
//!
//! - the forward process, by its exact Gaussian transitions `x_t | x_s ~ N(a x_s, v I)`
//!   (Kingma et al. 2021, eq. 33), from data at `t_min` up to `t`;
//! - the reverse-time SDE (Anderson 1982; Song et al. 2021, eq. 6), Euler–Maruyama, from the
//!   prior at `T = 1` down to `t`: noisy paths that end on the modes;
//! - the probability-flow ODE (Song et al. 2021, eq. 13), Heun, from the same prior draws:
//!   smooth, deterministic paths with the same marginals.
//!
//! Writes `target/examples-out/trajectories/paths.png`.

#[allow(dead_code)]
mod common;

pub use common::Scale;
use common::{BoxResult, PALETTE, Panel};
use ndarray::{Array2, Axis, concatenate};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use score_sde::observe::Trajectory;
use score_sde::prelude::*;
use score_sde::sample::{FixedMethod, Pc, PredictorKind, ProbabilityFlow};
use std::path::{Path, PathBuf};

fn main() -> BoxResult<()> {
    let dir = common::default_out_dir("trajectories")?;
    let pictures = run(&dir, Scale::Full)?;
    common::report(&pictures);
    Ok(())
}

/// A run's recorded states: times and the `(particles, 2)` state at each, in time order of
/// the run (increasing for the forward process, decreasing for the reverse ones).
struct Paths {
    times: Vec<f64>,
    states: Vec<Array2<f64>>,
}

impl Paths {
    fn from_frames(t0: f64, x0: Array2<f64>, frames: Vec<(usize, f64, Array2<f64>)>) -> Self {
        let mut times = vec![t0];
        let mut states = vec![x0];
        for (_, t, x) in frames {
            times.push(t);
            states.push(x);
        }
        Self { times, states }
    }

    /// Particle `p`'s positions while `keep(t)` holds.
    fn path(&self, p: usize, keep: impl Fn(f64) -> bool) -> Array2<f64> {
        let rows: Vec<_> = self
            .times
            .iter()
            .zip(&self.states)
            .filter(|(t, _)| keep(**t))
            .map(|(_, x)| x.row(p).insert_axis(Axis(0)))
            .collect();
        concatenate(Axis(0), &rows).unwrap_or_else(|_| Array2::zeros((0, 2)))
    }
}

/// Simulate, draw; the picture's path.
pub fn run(out_dir: &Path, scale: Scale) -> BoxResult<Vec<PathBuf>> {
    let particles = 6;
    let steps = scale.pick(60, 400);
    let res = scale.pick(40, 110);
    let range = 6.0;
    let ring = problems::ring2d::<f64>();
    let sde = VpSde::<f64>::default();
    let sched = *sde.schedule();
    let (t_min, t_max) = sched.t_range();
    let model = AnalyticScore::new(ring.clone(), sched);
    let grid = TimeGrid::uniform(&sched, steps)?;
    let mut rng = rand_pcg::Pcg64::seed_from_u64(11);

    // Forward: exact transitions along the grid's times, from data at t_min upwards.
    let mut x = ring.diffuse(&sched, t_min)?.sample(particles, &mut rng)?;
    let mut times: Vec<f64> = grid.times().to_vec();
    times.reverse();
    let mut forward = Paths {
        times: vec![times[0]],
        states: vec![x.clone()],
    };
    for w in times.windows(2) {
        let (a, sd) = sde.transition(w[0], w[1]);
        x.mapv_inplace(|v| a * v);
        x.mapv_inplace(|v| {
            let z: f64 = StandardNormal.sample(&mut rng);
            v + sd * z
        });
        forward.times.push(w[1]);
        forward.states.push(x.clone());
    }

    // Reverse SDE and PF-ODE from the same prior draws.
    let reverse_sampler =
        Pc::new(sde.clone(), grid.clone())?.predictor(PredictorKind::EulerMaruyama)?;
    let flow_sampler = ProbabilityFlow::fixed(sde.clone(), FixedMethod::Heun, grid.clone())?;
    let x_t = reverse_sampler.initial_state(particles, 2, &mut rng)?;
    let mut tr = Trajectory::new(1, None);
    reverse_sampler.run_with(&model, x_t.clone(), &mut rng, &mut tr)?;
    let reverse = Paths::from_frames(t_max, x_t.clone(), tr.into_frames());
    let mut tr = Trajectory::new(1, None);
    flow_sampler.run_with(&model, x_t.clone(), &mut rng, &mut tr)?;
    let flow = Paths::from_frames(t_max, x_t, tr.into_frames());

    let shown_t = [t_max, 0.5, 0.25, t_min];
    let heat: Vec<Vec<f64>> = shown_t
        .iter()
        .map(|&t| common::log_density_on_grid(&ring.diffuse(&sched, t)?, range, res))
        .collect::<BoxResult<_>>()?;
    let mut items = Vec::new();
    for (label, paths, forward_in_time) in [
        ("forward", &forward, true),
        ("reverse SDE", &reverse, false),
        ("PF-ODE", &flow, false),
    ] {
        for (k, &t) in shown_t.iter().enumerate() {
            let mut panel = Panel::new(format!("{label}, t = {t:.3}")).heat(&heat[k]);
            for p in 0..particles {
                // Slack of half a step so the panel's own time is included despite rounding.
                let eps = 0.5 / steps as f64;
                let path = if forward_in_time {
                    paths.path(p, |s| s <= t + eps)
                } else {
                    paths.path(p, |s| s >= t - eps)
                };
                panel = panel.path(path, PALETTE[p % PALETTE.len()]);
            }
            items.push(panel);
        }
    }
    let png = common::panels(
        &out_dir.join("paths.png"),
        "2-D ring: forward process, reverse SDE and PF-ODE paths over log p_t",
        4,
        range,
        260,
        &items,
    )?;
    Ok(vec![png])
}
