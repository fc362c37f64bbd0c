//! Construction of every sampler from generated settings — the one place of the fuzz suite
//! that knows the samplers' builders, so that the step-level refactor of `src/sample`
//! (issue "One solver framework") has a single file to adapt.
//!
//! Builders and settings exercised: `Pc` (3 predictors × no/Langevin/annealed corrector,
//! snr, corrector steps, the three step rules, final denoise), `Ula`, `Mala`,
//! `AnnealedLangevin` (denoise), `Ddim` (η, final denoise), `DpmSolverPp` (orders 0–4, ODE
//! and SDE variants, both third-order forms, lower-order final, final denoise), `EdmHeun`
//! (churn, churn window, S_noise, final denoise), `EulerAncestral` (η, S_noise, final
//! denoise), `ProbabilityFlow` (Euler/Heun/RK4 on a grid; Dormand–Prince with tolerances,
//! step budget, initial step, PI β and span). Every parameter is drawn from a palette with
//! invalid and extreme values, so most builders also see their error paths.

use super::draw::Gen;
use score_sde::Real;
use score_sde::gmm::GaussianMixture;
use score_sde::grid::TimeGrid;
use score_sde::prelude::{LinearSde, Schedule};
use score_sde::sample::{
    AnnealedLangevin, Corrector, Ddim, Dopri5, DpmSolverPp, DpmVariant, EdmHeun, EulerAncestral,
    FixedMethod, LangevinCorrector, Mala, Pc, Predictor, ProbabilityFlow, Sampler, StepRule,
    ThirdOrder, Ula,
};
use std::sync::Arc;

/// The SDE every generated sampler runs on: the linear SDE of any schedule.
pub type Sde<F> = LinearSde<F, Arc<dyn Schedule<F>>>;

/// A generated sampler and what the harness needs to know about it.
pub struct Built<F> {
    pub sampler: Box<dyn Sampler<F>>,
    /// Short description for failure reports.
    pub label: String,
    /// A Tweedie denoise after the last step is switched on (`denoise_final(true)` of DDIM,
    /// DPM-Solver++, EDM Heun and Euler-ancestral): the sampler driver of issue 18 owns the
    /// missing non-finite check after it.
    pub final_denoise_unchecked: bool,
}

/// A grid on the SDE's schedule: one of the four kinds, 0–12 steps.
fn grid<F: Real>(g: &mut Gen, sde: &Sde<F>) -> score_sde::Result<TimeGrid<F>> {
    let sched = sde.schedule();
    let n = g.small_count(12);
    match g.below(4) {
        0 => TimeGrid::uniform(sched, n),
        1 => TimeGrid::quadratic(sched, n),
        2 => TimeGrid::karras(sched, n, F::lit(g.near(7.0))),
        _ => TimeGrid::log_snr(sched, n),
    }
}

fn f<F: Real>(v: f64) -> F {
    F::lit(v)
}

/// One sampler of a kind chosen by `g`, on `sde`; `target` is MALA's log-density.
pub fn build<F: Real>(
    g: &mut Gen,
    sde: &Sde<F>,
    target: &GaussianMixture<F>,
) -> score_sde::Result<Built<F>> {
    let sde = sde.clone();
    let mut unchecked = false;
    let (sampler, label): (Box<dyn Sampler<F>>, String) = match g.below(11) {
        0 | 1 => {
            let predictor = g.pick(&[
                Predictor::EulerMaruyama,
                Predictor::ReverseDiffusion,
                Predictor::Ancestral,
            ]);
            let corrector = match g.below(3) {
                0 => Corrector::None,
                1 => Corrector::langevin(g.near(0.16))?,
                _ => Corrector::annealed_langevin(g.near(0.16))?,
            };
            let mut pc = Pc::new(sde.clone(), grid(g, &sde)?)?
                .predictor(predictor)
                .corrector(corrector)
                .denoise(g.chance(0.3));
            if g.chance(0.3) {
                pc = pc.corrector_steps(g.small_count(3))?;
            }
            if g.chance(0.3) {
                let rule = match g.below(3) {
                    0 => StepRule::BatchMean,
                    1 => StepRule::Sigma,
                    _ => StepRule::PerSample { cap: g.near(1.0) },
                };
                pc = pc.step_rule(rule)?;
            }
            if g.chance(0.2) {
                let c = LangevinCorrector::new(g.near(0.1))?.steps(g.small_count(2))?;
                pc = pc.corrector(Corrector::Langevin(c));
            }
            (Box::new(pc), format!("Pc {predictor:?} {corrector:?}"))
        }
        2 => {
            let mut s = Ula::new(f(g.near(0.01)), g.small_count(20))?;
            if g.chance(0.5) {
                s = s.score_time(f(g.within(0.0, 1.0)))?;
            }
            if g.chance(0.3) {
                s = s.initial_std(f(g.near(1.0)))?;
            }
            (Box::new(s), "Ula".into())
        }
        3 => {
            let mut s = Mala::new(target.clone(), f(g.near(0.01)), g.small_count(20))?;
            if g.chance(0.3) {
                s = s
                    .initial_std(f(g.near(1.0)))?
                    .score_time(f(g.within(0.0, 0.1)))?;
            }
            (Box::new(s), "Mala".into())
        }
        4 => {
            let s = AnnealedLangevin::new(
                f(g.near(10.0)),
                f(g.near(0.05)),
                g.small_count(6),
                g.small_count(4),
                f(g.near(2e-4)),
            )?
            .denoise(g.chance(0.5));
            (Box::new(s), "AnnealedLangevin".into())
        }
        5 => {
            let denoise = g.chance(0.4);
            unchecked = denoise;
            let s = Ddim::new(sde.clone(), grid(g, &sde)?)?
                .eta(f(g.within(0.0, 1.0)))?
                .denoise_final(denoise);
            (Box::new(s), format!("Ddim denoise_final={denoise}"))
        }
        6 | 7 => {
            let denoise = g.chance(0.4);
            unchecked = denoise;
            let order = g.pick(&[1, 2, 2, 3, 3, 0, 4]);
            let variant = g.pick(&[DpmVariant::Ode, DpmVariant::Sde]);
            let s = DpmSolverPp::new(sde.clone(), grid(g, &sde)?)?
                .variant(variant)?
                .order(order)?
                .third_order(g.pick(&[ThirdOrder::Taylor, ThirdOrder::Diffusers]))
                .lower_order_final(g.chance(0.7))
                .denoise_final(denoise);
            (
                Box::new(s),
                format!("DpmSolverPp order {order} {variant:?} denoise_final={denoise}"),
            )
        }
        8 => {
            let denoise = g.chance(0.4);
            unchecked = denoise;
            let mut s = EdmHeun::new(sde.clone(), grid(g, &sde)?)?.denoise_final(denoise);
            if g.chance(0.5) {
                s = s.churn(f(g.near(1.0)))?;
            }
            if g.chance(0.3) {
                s = s.churn_range(f(g.within(0.0, 0.1)), f(g.near(50.0)))?;
            }
            if g.chance(0.3) {
                s = s.s_noise(f(g.near(1.007)))?;
            }
            (Box::new(s), format!("EdmHeun denoise_final={denoise}"))
        }
        9 => {
            let denoise = g.chance(0.4);
            unchecked = denoise;
            let s = EulerAncestral::new(sde.clone(), grid(g, &sde)?)?
                .eta(f(g.within(0.0, 1.0)))?
                .s_noise(f(g.near(1.0)))?
                .denoise_final(denoise);
            (
                Box::new(s),
                format!("EulerAncestral denoise_final={denoise}"),
            )
        }
        _ => {
            if g.chance(0.5) {
                let method = g.pick(&[FixedMethod::Euler, FixedMethod::Heun, FixedMethod::Rk4]);
                let s = ProbabilityFlow::fixed(sde.clone(), method, grid(g, &sde)?)?;
                (Box::new(s), format!("ProbabilityFlow {method:?}"))
            } else {
                let mut solver =
                    Dopri5::new(f(g.near(1e-4)), f(g.near(1e-4)))?.max_steps(g.small_count(300))?;
                if g.chance(0.3) {
                    solver = solver.initial_step(f(g.near(0.01)))?;
                }
                if g.chance(0.3) {
                    solver = solver.pi_beta(f(g.within(0.0, 0.2)))?;
                }
                let mut s = ProbabilityFlow::adaptive(sde.clone(), solver);
                if g.chance(0.3) {
                    let (lo, hi) = sde.schedule().t_range();
                    let (lo, hi) = (lo.as_f64(), hi.as_f64());
                    s = s.span(f(g.within(lo, hi)), f(g.within(lo, hi)))?;
                }
                (Box::new(s), "ProbabilityFlow Dopri5".into())
            }
        }
    };
    Ok(Built {
        sampler,
        label,
        final_denoise_unchecked: unchecked,
    })
}

/// The count getters of issue 18's sampler-side list, with counts near `usize::MAX`:
/// `Pc::nfe` and `AnnealedLangevin::total_steps` overflow (a panic in debug builds). They
/// are only called here, never run (a run would loop that many times). Returns the getter
/// that panicked, if any.
pub fn count_getters<F: Real>(g: &mut Gen, sde: &Sde<F>) -> Option<&'static str> {
    let steps = g.pick(&[usize::MAX, usize::MAX / 2 + 1, 1 << 62, 3, 1]);
    let sde = sde.clone();
    let pc = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let grid = TimeGrid::uniform(sde.schedule(), 2).ok()?;
        let pc = Pc::new(sde.clone(), grid)
            .ok()?
            .corrector_steps(steps)
            .ok()?;
        Some(pc.nfe())
    }));
    if pc.is_err() {
        return Some("Pc::nfe");
    }
    let levels = g.pick(&[usize::MAX, 1 << 40, 2]);
    let ald = std::panic::catch_unwind(|| {
        AnnealedLangevin::<F>::new(f(10.0), f(0.1), levels, steps, f(1e-4))
            .ok()
            .map(|a| a.total_steps())
    });
    if ald.is_err() {
        return Some("AnnealedLangevin::total_steps");
    }
    None
}
