//! Construction of every sampler from generated settings — the one place of the fuzz suite
//! that knows the samplers' builders.
//!
//! Builders and settings exercised: `Pc` (3 predictors × no/Langevin/annealed corrector,
//! snr, corrector steps, the three step rules, predictor-first order, final denoise),
//! `Ula`, `Mala`, `AnnealedLangevin` (final denoise), `Ddim` (η, final denoise),
//! `DpmSolverPp` (orders 0–4, ODE and SDE variants, both third-order forms, the final-order
//! rules, final sigmas, a noise table, final denoise), `EdmHeun` (churn, churn window,
//! S_noise, final denoise), `EulerAncestral` (η, S_noise, a noise table, final denoise),
//! `ProbabilityFlow` (Euler/Heun/RK4 on a grid; Dormand–Prince, Bogacki–Shampine and
//! Tsitouras with tolerances, step budget, initial step, PI β and span), `UniPc` (orders
//! 0–4, bh1/bh2, corrector on/off, lower-order final, final sigmas), `DpmAdaptive`
//! (orders 1–4, adaptive with tolerances, span, initial step, batch norm, budget; or fixed
//! on a grid), `GottaGoFast` (adaptive with tolerances, initial step, exponent, batch norm,
//! budget, a noise table; or fixed on a grid). Every parameter is drawn from a palette with
//! invalid and extreme values, so most builders also see their error paths. A noise table
//! is `n × d` draws (sometimes of another shape, non-finite, or too few).

use super::draw::Gen;
use score_sde::Real;
use score_sde::gmm::GaussianMixture;
use score_sde::grid::{FinalSigmas, TimeGrid};
use score_sde::ode::{BS3, BatchNorm, TSIT5};
use score_sde::prelude::{LinearSde, Schedule};
use score_sde::sample::{
    AnnealedLangevin, CorrectorKind, Ddim, Dopri5, DpmAdaptive, DpmSolverPp, DpmVariant, EdmHeun,
    EulerAncestral, FinalOrder, FixedMethod, GottaGoFast, LangevinCorrector, Mala, NoiseTable, Pc,
    PcOrder, PredictorKind, ProbabilityFlow, Sampler, StepRule, ThirdOrder, Ula, UniPc,
    UniPcVariant,
};
use std::sync::Arc;

/// The SDE every generated sampler runs on: the linear SDE of any schedule.
pub type Sde<F> = LinearSde<F, Arc<dyn Schedule<F>>>;

/// A generated sampler and what the harness needs to know about it.
pub struct Built<F> {
    pub sampler: Box<dyn Sampler<F>>,
    /// Short description for failure reports.
    pub label: String,
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

/// A noise table for a batch of `n × d`: usually `len` finite draws of that shape; sometimes
/// a draw of another shape, a NaN, or fewer draws than the run needs (all typed errors).
fn noise_table<F: Real>(
    g: &mut Gen,
    n: usize,
    d: usize,
    len: usize,
) -> score_sde::Result<NoiseTable<F>> {
    let len = if g.chance(0.2) { g.small_count(2) } else { len };
    let mut draws: Vec<ndarray::Array2<F>> = (0..len)
        .map(|_| {
            let v = g.floats(n * d, 1.0);
            ndarray::Array2::from_shape_fn((n, d), |(i, j)| F::lit(v[i * d + j]))
        })
        .collect();
    if g.chance(0.1) {
        draws.push(ndarray::Array2::zeros((n + 1, d)));
    }
    NoiseTable::new(draws)
}

/// One sampler of a kind chosen by `g`, on `sde`; `target` is MALA's log-density; `n` rows
/// (for noise tables).
pub fn build<F: Real>(
    g: &mut Gen,
    sde: &Sde<F>,
    target: &GaussianMixture<F>,
    n: usize,
) -> score_sde::Result<Built<F>> {
    let sde = sde.clone();
    let d = target.dim();
    let (sampler, label): (Box<dyn Sampler<F>>, String) = match g.below(16) {
        0 | 1 => {
            let predictor = g.pick(&[
                PredictorKind::EulerMaruyama,
                PredictorKind::ReverseDiffusion,
                PredictorKind::Ancestral,
                PredictorKind::None,
            ]);
            let corrector = match g.below(3) {
                0 => CorrectorKind::None,
                1 => CorrectorKind::langevin(g.near(0.16))?,
                _ => CorrectorKind::annealed_langevin(g.near(0.16))?,
            };
            let mut pc = Pc::new(sde.clone(), grid(g, &sde)?)?
                .predictor(predictor)?
                .corrector(corrector)?
                .denoise_final(g.chance(0.3));
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
                pc = pc.corrector(CorrectorKind::Langevin(c))?;
            }
            if g.chance(0.3) {
                pc = pc.order(PcOrder::PredictorFirst);
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
            .denoise_final(g.chance(0.5));
            (Box::new(s), "AnnealedLangevin".into())
        }
        5 => {
            let denoise = g.chance(0.4);
            let s = Ddim::new(sde.clone(), grid(g, &sde)?)?
                .eta(f(g.within(0.0, 1.0)))?
                .denoise_final(denoise);
            (Box::new(s), format!("Ddim denoise_final={denoise}"))
        }
        6 | 7 => {
            let denoise = g.chance(0.4);
            let order = g.pick(&[1, 2, 2, 3, 3, 0, 4]);
            let variant = g.pick(&[DpmVariant::Ode, DpmVariant::Sde]);
            let grid = grid(g, &sde)?;
            let steps = grid.steps();
            let mut s = DpmSolverPp::new(sde.clone(), grid)?
                .variant(variant)?
                .order(order)?
                .third_order(g.pick(&[ThirdOrder::Taylor, ThirdOrder::Diffusers]))
                .lower_order_final(g.chance(0.7))
                .denoise_final(denoise);
            if g.chance(0.2) {
                s = s.final_order(g.pick(&[
                    FinalOrder::Full,
                    FinalOrder::Lowered,
                    FinalOrder::Diffusers,
                ]));
            }
            if g.chance(0.2) {
                s = s.final_sigmas(g.pick(&[FinalSigmas::Zero, FinalSigmas::SigmaMin]));
            }
            if variant == DpmVariant::Sde && g.chance(0.3) {
                s = s.noise_table(noise_table(g, n, d, steps + 1)?);
            }
            (
                Box::new(s),
                format!("DpmSolverPp order {order} {variant:?} denoise_final={denoise}"),
            )
        }
        8 => {
            let denoise = g.chance(0.4);
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
            let grid = grid(g, &sde)?;
            let steps = grid.steps();
            let mut s = EulerAncestral::new(sde.clone(), grid)?
                .eta(f(g.within(0.0, 1.0)))?
                .s_noise(f(g.near(1.0)))?
                .denoise_final(denoise);
            if g.chance(0.3) {
                s = s.noise_table(noise_table(g, n, d, steps)?);
            }
            (
                Box::new(s),
                format!("EulerAncestral denoise_final={denoise}"),
            )
        }
        10 | 11 => {
            if g.chance(0.4) {
                let method = g.pick(&[FixedMethod::Euler, FixedMethod::Heun, FixedMethod::Rk4]);
                let s = ProbabilityFlow::fixed(sde.clone(), method, grid(g, &sde)?)?
                    .denoise_final(g.chance(0.3));
                (Box::new(s), format!("ProbabilityFlow {method:?}"))
            } else {
                let mut solver =
                    Dopri5::new(f(g.near(1e-4)), f(g.near(1e-4)))?.max_steps(g.small_count(300))?;
                let tab = g.below(3);
                if tab == 1 {
                    solver = solver.with_tableau(BS3)?;
                } else if tab == 2 {
                    solver = solver.with_tableau(TSIT5)?;
                }
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
                (
                    Box::new(s),
                    format!("ProbabilityFlow adaptive tableau {tab}"),
                )
            }
        }
        12 => {
            let order = g.pick(&[1, 2, 2, 3, 3, 0, 4]);
            let variant = g.pick(&[UniPcVariant::Bh1, UniPcVariant::Bh2]);
            let mut s = UniPc::new(sde.clone(), grid(g, &sde)?)?
                .order(order)?
                .variant(variant)
                .corrector(g.chance(0.7))
                .lower_order_final(g.chance(0.7));
            if g.chance(0.3) {
                s = s.final_sigmas(g.pick(&[FinalSigmas::Zero, FinalSigmas::SigmaMin]));
            }
            if g.chance(0.2) {
                s = s.denoise_final(g.chance(0.5));
            }
            (Box::new(s), format!("UniPc order {order} {variant:?}"))
        }
        13 => {
            let order = g.pick(&[2, 3, 3, 1, 4]);
            let s = if g.chance(0.3) {
                DpmAdaptive::fixed(sde.clone(), order, grid(g, &sde)?)?
            } else {
                let mut s =
                    DpmAdaptive::new(sde.clone(), order, f(g.near(0.05)), f(g.near(0.0078)))?
                        .max_steps(g.small_count(400))?
                        .batch_norm(g.pick(&[BatchNorm::MaxSample, BatchNorm::Rms]));
                if g.chance(0.3) {
                    s = s.initial_step(f(g.near(0.05)))?;
                }
                if g.chance(0.3) {
                    let (lo, hi) = sde.schedule().t_range();
                    let (lo, hi) = (lo.as_f64(), hi.as_f64());
                    s = s.span(f(g.within(lo, hi)), f(g.within(lo, hi)))?;
                }
                s
            };
            let s = s.denoise_final(g.chance(0.3));
            (Box::new(s), format!("DpmAdaptive order {order}"))
        }
        _ => {
            let s = if g.chance(0.3) {
                GottaGoFast::fixed(sde.clone(), grid(g, &sde)?)?
            } else {
                let mut s = GottaGoFast::new(sde.clone(), f(g.near(0.02)), f(g.near(0.01)))?
                    .max_steps(g.small_count(400))?
                    .batch_norm(g.pick(&[BatchNorm::MaxSample, BatchNorm::Rms]));
                if g.chance(0.3) {
                    s = s.initial_step(f(g.near(0.01)))?;
                }
                if g.chance(0.3) {
                    s = s.exponent(f(g.near(0.9)))?;
                }
                s
            };
            let mut s = s.denoise_final(g.chance(0.3));
            if g.chance(0.2) {
                let len = g.small_count(40);
                s = s.noise_table(noise_table(g, n, d, len)?);
            }
            (Box::new(s), "GottaGoFast".into())
        }
    };
    Ok(Built { sampler, label })
}

/// The count getters of issue 18's sampler-side list, with counts near `usize::MAX`:
/// `Pc::nfe` and `AnnealedLangevin::total_steps` (once an integer overflow; now `None`
/// when the count does not fit). They are only called here, never run (a run would loop
/// that many times). Returns the getter that panicked, if any.
pub fn count_getters<F: Real>(g: &mut Gen, sde: &Sde<F>) -> Option<&'static str> {
    let steps = g.pick(&[usize::MAX, usize::MAX / 2 + 1, 1 << 62, 3, 1]);
    let sde = sde.clone();
    let pc = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let grid = TimeGrid::uniform(sde.schedule(), 2).ok()?;
        let pc = Pc::new(sde.clone(), grid)
            .ok()?
            .corrector_steps(steps)
            .ok()?;
        pc.nfe()
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
