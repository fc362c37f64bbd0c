//! Design-space search of the deterministic samplers: which configuration reaches the
//! Monte-Carlo noise floor in the fewest score evaluations?
//!
//! For ring2d and rand16d (VP SDE, exact mixture score, t_eps = 1e-3) every configuration
//! (solver, order, grid, ρ, lower-order final steps, Tweedie final step) is run at several
//! NFE budgets on N samples and scored against exact samples with `metrics::Reference`.
//! Two criteria are printed:
//!
//! * raw: SW1, covariance error (Frobenius) and |log-likelihood gap| against the maximum over
//!   5 exact batches of size N ("raw worst/floor" ≤ 1). A deterministic sampler inherits the
//!   Monte-Carlo luck of its input noise: the converged flow from the same noise already
//!   sits at 1.07 (ring2d) and 1.92 (rand16d) at N = 20000, so this alone cannot rank configs.
//! * paired: the deviation from the converged flow x* of the same noise (Dormand–Prince at
//!   1e-8) — SW1(x, x*) over the mean SW1 of exact batches, ‖cov x − cov x*‖_F over their mean
//!   covariance error, |gap − gap*| over the standard deviation of their gaps. ≤ 1 means the
//!   discretisation error is inside the Monte-Carlo spread; the ranking uses this.
//!
//! ```text
//! cargo run --release --example nfe_sweep            # N = 20000, full sweep
//! cargo run --release --example nfe_sweep -- 5000    # smaller N
//! cargo run --release --example nfe_sweep -- 20000 table   # the sampler × NFE table only
//! cargo run --release --example nfe_sweep -- 20000 floor   # NFE to reach the noise floor
//! ```
//!
//! The problems are ring2d, rand16d and ill32d (`data/problems/ill32d.json`: 32-D, four
//! components with unequal weights, covariance eigenvalues over two decades, 0.01–2).
//!
//! `floor` mode climbs a ladder of settings per method (tolerances of the adaptive
//! samplers, step counts of the fixed ones) and reports the first that is at the floor on
//! each problem: for deterministic samplers the paired criterion (≤ 1), for stochastic ones
//! (Gotta Go Fast, Euler–Maruyama) the raw criterion (every metric within the largest value
//! of 5 exact batches; their noise is their own, so there is no converged flow to pair with).

use ndarray::Array2;
use rand::SeedableRng;
use score_sde::metrics::{Reference, Report, random_directions, sample_covariance, sliced_w1};
use score_sde::ode::{BS3, BatchNorm, DOPRI5, TSIT5, Tableau};
use score_sde::prelude::*;
use score_sde::sample::{
    Ddim, Dopri5, DpmAdaptive, DpmSolverPp, DpmVariant, EdmHeun, EulerAncestral, FixedMethod,
    GottaGoFast, Pc, ProbabilityFlow, ThirdOrder, UniPc,
};

type Sde = VpSde<f64>;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Dpm {
        order: usize,
        lof: bool,
    },
    /// diffusers' 3M coefficient (second order in practice).
    Dpm3Diffusers,
    DpmSde,
    Ddim,
    Heun,
    EulerA,
    Rk4,
    Dopri(f64),
}

/// A grid: one of the library's kinds, or `T` followed by a log-SNR-uniform grid from
/// `λ_a` down to `λ(t_min)` (one big first step across the nearly linear high-noise range).
#[derive(Clone, Copy, Debug)]
enum Grid {
    Std(GridKind),
    Trunc(f64),
    /// `t_i = t_min + (T − t_min)(1 − i/n)^p` (p = 2 is [`GridKind::Quadratic`]).
    Power(f64),
}

impl Grid {
    fn build(self, sde: &Sde, n: usize) -> Result<TimeGrid<f64>> {
        match self {
            Grid::Std(k) => k.build(sde.schedule(), n),
            Grid::Trunc(lam_a) => truncated_log_snr(sde.schedule(), n, lam_a),
            Grid::Power(p) => power_grid(sde.schedule(), n, p),
        }
    }
}

/// `t_i = t_min + (T − t_min)(1 − i/n)^p`.
fn power_grid(s: &VpLinear<f64>, n: usize, p: f64) -> Result<TimeGrid<f64>> {
    let (t_min, t_max) = s.t_range();
    let times = (0..=n)
        .map(|i| t_min + (t_max - t_min) * (1.0 - i as f64 / n as f64).powf(p))
        .collect();
    TimeGrid::custom(s, times)
}

/// `[T, t(λ_a), …, t_min]` with the last `n − 1` steps uniform in log-SNR.
fn truncated_log_snr(s: &VpLinear<f64>, n: usize, lam_a: f64) -> Result<TimeGrid<f64>> {
    if n < 2 {
        return GridKind::LogSnr.build(s, n);
    }
    let (t_min, t_max) = s.t_range();
    let lam_b = s.log_snr(t_min);
    let mut times = vec![t_max];
    for i in 0..n - 1 {
        let u = i as f64 / (n - 1) as f64;
        times.push(s.t_of_log_snr(lam_a + u * (lam_b - lam_a))?);
    }
    times.push(t_min);
    TimeGrid::custom(s, times)
}

#[derive(Clone, Copy, Debug)]
struct Config {
    kind: Kind,
    grid: Grid,
    denoise: bool,
}

fn grid_name(g: Grid) -> String {
    match g {
        Grid::Std(GridKind::Uniform) => "uniform".into(),
        Grid::Std(GridKind::Quadratic) => "quadratic".into(),
        Grid::Std(GridKind::Karras { rho }) => format!("karras{rho}"),
        Grid::Std(GridKind::LogSnr) => "logsnr".into(),
        Grid::Trunc(l) => format!("T+logsnr[{l}..]"),
        Grid::Power(p) => format!("power{p}"),
        _ => "?".into(),
    }
}

impl Config {
    fn name(&self) -> String {
        let k = match self.kind {
            Kind::Dpm { order, lof } => {
                format!("dpm++{order}M{}", if lof { "" } else { "-nolof" })
            }
            Kind::DpmSde => "dpm++2M-sde".into(),
            Kind::Dpm3Diffusers => "dpm++3M-diffusers".into(),
            Kind::Ddim => "ddim".into(),
            Kind::Heun => "edm-heun".into(),
            Kind::EulerA => "euler-anc".into(),
            Kind::Rk4 => "pf-rk4".into(),
            Kind::Dopri(tol) => format!("pf-dopri5({tol:e})"),
        };
        let g = if matches!(self.kind, Kind::Dopri(_)) {
            String::new()
        } else {
            format!("/{}", grid_name(self.grid))
        };
        format!("{k}{g}{}", if self.denoise { "+tweedie" } else { "" })
    }

    /// Steps that spend at most `nfe` evaluations (None if impossible).
    fn steps_for(&self, nfe: usize) -> Option<usize> {
        let budget = nfe.checked_sub(self.denoise as usize)?;
        let per = match self.kind {
            Kind::Heun => 2,
            Kind::Rk4 => 4,
            _ => 1,
        };
        let s = budget / per;
        (s >= 1).then_some(s)
    }

    fn sampler(&self, sde: &Sde, nfe: usize) -> Result<Option<Box<dyn Sampler<f64>>>> {
        if let Kind::Dopri(tol) = self.kind {
            let _ = nfe;
            return Ok(Some(Box::new(ProbabilityFlow::adaptive(
                sde.clone(),
                Dopri5::new(tol, tol)?,
            ))));
        }
        let Some(steps) = self.steps_for(nfe) else {
            return Ok(None);
        };
        let grid = self.grid.build(sde, steps)?;
        let s = sde.clone();
        let d = self.denoise;
        Ok(Some(match self.kind {
            Kind::Dpm { order, lof } => Box::new(
                DpmSolverPp::new(s, grid)?
                    .order(order)?
                    .lower_order_final(lof)
                    .denoise_final(d),
            ),
            Kind::Dpm3Diffusers => Box::new(
                DpmSolverPp::new(s, grid)?
                    .order(3)?
                    .third_order(ThirdOrder::Diffusers)
                    .denoise_final(d),
            ),
            Kind::DpmSde => Box::new(
                DpmSolverPp::new(s, grid)?
                    .variant(DpmVariant::Sde)?
                    .denoise_final(d),
            ),
            Kind::Ddim => Box::new(Ddim::new(s, grid)?.denoise_final(d)),
            Kind::Heun => Box::new(EdmHeun::new(s, grid)?.denoise_final(d)),
            Kind::EulerA => Box::new(EulerAncestral::new(s, grid)?.denoise_final(d)),
            Kind::Rk4 => Box::new(ProbabilityFlow::fixed(s, FixedMethod::Rk4, grid)?),
            Kind::Dopri(_) => unreachable!(),
        }))
    }
}

struct Problem {
    name: &'static str,
    model: AnalyticScore<f64, VpLinear<f64>>,
    reference: Reference,
    /// Max over 5 exact batches of SW1, cov error, |gap|, mean error.
    floor: Report,
    /// Mean SW1 and cov error over the 5 exact batches, and the standard deviation of their gaps.
    spread: (f64, f64, f64),
    x_t: Array2<f64>,
    /// The converged flow (Dormand–Prince, rtol = atol = 1e-8) from the same x_T.
    x_star: Array2<f64>,
    star: Report,
}

fn floor_max(reports: &[Report]) -> Report {
    let mut m = Report::default();
    for r in reports {
        m.sw1 = m.sw1.max(r.sw1);
        m.cov_err_fro = m.cov_err_fro.max(r.cov_err_fro);
        m.loglik_gap = m.loglik_gap.max(r.loglik_gap.abs());
        m.mean_err = m.mean_err.max(r.mean_err);
    }
    m
}

fn spread(reports: &[Report]) -> (f64, f64, f64) {
    let k = reports.len() as f64;
    let sw = reports.iter().map(|r| r.sw1).sum::<f64>() / k;
    let cov = reports.iter().map(|r| r.cov_err_fro).sum::<f64>() / k;
    let g = reports.iter().map(|r| r.loglik_gap).sum::<f64>() / k;
    let var = reports
        .iter()
        .map(|r| (r.loglik_gap - g).powi(2))
        .sum::<f64>()
        / (k - 1.0);
    (sw, cov, var.sqrt())
}

/// Deviation from the converged flow of the same noise, relative to the Monte-Carlo spread:
/// max of SW1(x, x*)/mean SW1 floor, ‖cov x − cov x*‖_F / mean cov floor, |gap − gap*| / sd gap.
fn paired(p: &Problem, x: &Array2<f64>, r: &Report) -> Result<(f64, f64, f64, f64)> {
    let dirs = random_directions(Reference::SW_DIRECTIONS, x.ncols(), 4242)?;
    let sw = sliced_w1(x.view(), p.x_star.view(), dirs.view())?;
    let c = sample_covariance(x.view())? - sample_covariance(p.x_star.view())?;
    let cov = c.mapv(|v| v * v).sum().sqrt();
    let gap = (r.loglik_gap - p.star.loglik_gap).abs();
    let q = (sw / p.spread.0)
        .max(cov / p.spread.1)
        .max(gap / p.spread.2);
    Ok((sw, cov, gap, q))
}

fn problem(name: &'static str, gm: GaussianMixture<f64>, sde: &Sde, n: usize) -> Result<Problem> {
    let reference = Reference::new(&gm, sde.schedule(), 1e-3, n, 777)?;
    let reports = reference.noise_floor(n, &[11, 12, 13, 14, 15])?;
    let floor = floor_max(&reports);
    let mut rng = rand_pcg::Pcg64::seed_from_u64(2024);
    let x_t = sde.sample_prior(n, gm.dim(), &mut rng)?;
    let model = AnalyticScore::new(gm, *sde.schedule());
    let exact = ProbabilityFlow::adaptive(sde.clone(), Dopri5::new(1e-8, 1e-8)?);
    let x_star = exact.run(&model, x_t.clone(), &mut rng)?.samples;
    let star = reference.evaluate(x_star.view())?;
    Ok(Problem {
        name,
        model,
        reference,
        floor,
        spread: spread(&reports),
        x_t,
        x_star,
        star,
    })
}

/// Worst ratio metric/floor over SW1, cov error and |gap| (≤ 1: at the floor).
fn ratio(r: &Report, f: &Report) -> f64 {
    (r.sw1 / f.sw1)
        .max(r.cov_err_fro / f.cov_err_fro)
        .max(r.loglik_gap.abs() / f.loglik_gap)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    sweep(&args)
}

/// The sweep with command-line style arguments `[program, N, mode]` (the smoke test runs
/// `N = 200`, `table`).
pub fn sweep(args: &[String]) -> Result<()> {
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let table_only = args.get(2).is_some_and(|s| s == "table");
    let focus = args.get(2).is_some_and(|s| s == "focus");
    let confirm = args.get(2).is_some_and(|s| s == "confirm");
    let floor = args.get(2).is_some_and(|s| s == "floor");
    let sde = Sde::default();
    let problems = [
        problem("ring2d", problems::ring2d(), &sde, n)?,
        problem("rand16d", problems::rand16d(), &sde, n)?,
        problem("ill32d", ill32d()?, &sde, n)?,
    ];
    for p in &problems {
        println!(
            "# {} N={n} floor (max of 5 exact batches): SW1 {:.4}  cov {:.4}  |gap| {:.4}  mean {:.4}",
            p.name, p.floor.sw1, p.floor.cov_err_fro, p.floor.loglik_gap, p.floor.mean_err
        );
        println!(
            "#   spread: mean SW1 {:.4}, mean cov err {:.4}, sd gap {:.4}; converged flow x*: SW1 {:.4} cov {:.4} gap {:+.4} (raw worst/floor {:.2})",
            p.spread.0,
            p.spread.1,
            p.spread.2,
            p.star.sw1,
            p.star.cov_err_fro,
            p.star.loglik_gap,
            ratio(&p.star, &p.floor)
        );
    }

    if floor {
        return floor_table(&problems, &sde, &ladders());
    }
    if args.get(2).is_some_and(|s| s == "settings") {
        return settings_table(&problems, &sde);
    }
    let karras = GridKind::KARRAS;
    let mut table: Vec<Config> = vec![
        Config {
            kind: Kind::Ddim,
            grid: Grid::Std(GridKind::LogSnr),
            denoise: false,
        },
        Config {
            kind: Kind::Dpm {
                order: 2,
                lof: true,
            },
            grid: Grid::Std(GridKind::LogSnr),
            denoise: false,
        },
        Config {
            kind: Kind::Dpm {
                order: 3,
                lof: true,
            },
            grid: Grid::Std(GridKind::LogSnr),
            denoise: false,
        },
        Config {
            kind: Kind::Dpm3Diffusers,
            grid: Grid::Std(GridKind::LogSnr),
            denoise: false,
        },
        Config {
            kind: Kind::Dpm {
                order: 3,
                lof: true,
            },
            grid: Grid::Std(GridKind::Quadratic),
            denoise: false,
        },
        Config {
            kind: Kind::DpmSde,
            grid: Grid::Std(GridKind::LogSnr),
            denoise: false,
        },
        Config {
            kind: Kind::Heun,
            grid: Grid::Std(karras),
            denoise: false,
        },
        Config {
            kind: Kind::Heun,
            grid: Grid::Std(karras),
            denoise: true,
        },
        Config {
            kind: Kind::EulerA,
            grid: Grid::Std(karras),
            denoise: false,
        },
        Config {
            kind: Kind::Rk4,
            grid: Grid::Std(GridKind::LogSnr),
            denoise: false,
        },
        Config {
            kind: Kind::Dopri(1e-2),
            grid: Grid::Std(GridKind::LogSnr),
            denoise: false,
        },
        Config {
            kind: Kind::Dopri(1e-3),
            grid: Grid::Std(GridKind::LogSnr),
            denoise: false,
        },
        Config {
            kind: Kind::Dopri(1e-5),
            grid: Grid::Std(GridKind::LogSnr),
            denoise: false,
        },
    ];
    if confirm {
        table.clear();
        for p in [1.9, 2.0, 2.1] {
            for lof in [true, false] {
                table.push(Config {
                    kind: Kind::Dpm { order: 3, lof },
                    grid: Grid::Power(p),
                    denoise: false,
                });
            }
        }
    } else if focus {
        table.clear();
        for p in [1.5, 1.75, 2.0, 2.25] {
            for kind in [
                Kind::Dpm {
                    order: 3,
                    lof: true,
                },
                Kind::Dpm {
                    order: 3,
                    lof: false,
                },
            ] {
                table.push(Config {
                    kind,
                    grid: Grid::Power(p),
                    denoise: false,
                });
            }
        }
    } else if !table_only {
        table.clear();
        let grids = [
            Grid::Std(GridKind::LogSnr),
            Grid::Std(GridKind::Karras { rho: 3.0 }),
            Grid::Std(GridKind::Karras { rho: 5.0 }),
            Grid::Std(karras),
            Grid::Std(GridKind::Quadratic),
            Grid::Trunc(-4.0),
            Grid::Trunc(-3.0),
            Grid::Trunc(-2.0),
        ];
        for grid in grids {
            for kind in [
                Kind::Dpm {
                    order: 2,
                    lof: true,
                },
                Kind::Dpm {
                    order: 3,
                    lof: true,
                },
                Kind::Dpm {
                    order: 3,
                    lof: false,
                },
                Kind::Dpm3Diffusers,
            ] {
                table.push(Config {
                    kind,
                    grid,
                    denoise: false,
                });
            }
        }
        for grid in [
            Grid::Std(GridKind::LogSnr),
            Grid::Std(karras),
            Grid::Std(GridKind::Karras { rho: 5.0 }),
        ] {
            table.push(Config {
                kind: Kind::Heun,
                grid,
                denoise: false,
            });
        }
        for grid in [Grid::Std(GridKind::LogSnr), Grid::Trunc(-3.0)] {
            table.push(Config {
                kind: Kind::Dpm {
                    order: 3,
                    lof: true,
                },
                grid,
                denoise: true,
            });
        }
    }
    let budgets: &[usize] = if table_only {
        &[10, 20, 50]
    } else if focus {
        &[28, 30]
    } else if confirm {
        &[30]
    } else {
        &[20, 25, 30]
    };

    println!(
        "| problem | sampler | NFE | SW1 | cov err | loglik gap | mean err | raw worst/floor | SW1(x,x*) | cov(x)−cov(x*) | gap−gap* | paired/spread |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut best: Vec<(f64, String, usize)> = Vec::new();
    for cfg in &table {
        for &nfe in budgets {
            if matches!(cfg.kind, Kind::Dopri(_)) && nfe != budgets[0] {
                continue;
            }
            let mut worst = 0.0f64;
            let mut used = 0;
            for p in &problems {
                let Some(s) = cfg.sampler(&sde, nfe)? else {
                    continue;
                };
                let mut rng = rand_pcg::Pcg64::seed_from_u64(99);
                let run = s.run(&p.model, p.x_t.clone(), &mut rng)?;
                used = run.nfe;
                let r = p.reference.evaluate(run.samples.view())?;
                let q = ratio(&r, &p.floor);
                let (psw, pcov, pgap, pq) = paired(p, &run.samples, &r)?;
                worst = worst.max(pq);
                println!(
                    "| {} | {} | {} | {:.4} | {:.4} | {:+.4} | {:.4} | {:.2} | {:.4} | {:.4} | {:.4} | {:.2} |",
                    p.name,
                    cfg.name(),
                    run.nfe,
                    r.sw1,
                    r.cov_err_fro,
                    r.loglik_gap,
                    r.mean_err,
                    q,
                    psw,
                    pcov,
                    pgap,
                    pq
                );
            }
            best.push((worst, cfg.name(), used));
        }
    }
    best.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!(
        "\n# best configurations (worst paired deviation / Monte-Carlo spread over all problems, ≤ 1 = at the floor)"
    );
    for (q, name, nfe) in best.iter().take(25) {
        println!("{q:.3}  {name}  NFE {nfe}");
    }
    Ok(())
}

/// The ill-conditioned 32-D problem of issue 16, loaded like the others through `MixtureSpec`.
fn ill32d() -> Result<GaussianMixture<f64>> {
    MixtureSpec::from_json(include_str!("../data/problems/ill32d.json"))?.build()
}

/// Builds a sampler from a setting (a tolerance or a step count).
type MakeSampler = Box<dyn Fn(&Sde, f64) -> Result<Box<dyn Sampler<f64>>>>;

/// One method's ladder of settings, cheapest first.
struct Ladder {
    name: &'static str,
    stochastic: bool,
    settings: Vec<f64>,
    make: MakeSampler,
}

fn adaptive_rk(tab: Tableau) -> MakeSampler {
    Box::new(
        move |sde: &Sde, tol: f64| -> Result<Box<dyn Sampler<f64>>> {
            let solver = Dopri5::new(tol, tol)?.with_tableau(tab)?;
            Ok(Box::new(ProbabilityFlow::adaptive(sde.clone(), solver)))
        },
    )
}

fn ladders() -> Vec<Ladder> {
    let tols = vec![
        0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 5e-3, 2e-3, 1e-3, 5e-4, 2e-4, 1e-4,
    ];
    let steps = vec![
        10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 80.0, 100.0, 150.0,
    ];
    vec![
        Ladder {
            name: "adaptive DPM-Solver-23 (rtol = atol)",
            stochastic: false,
            settings: tols.clone(),
            make: Box::new(|sde, tol| Ok(Box::new(DpmAdaptive::new(sde.clone(), 3, tol, tol)?))),
        },
        Ladder {
            name: "adaptive DPM-Solver-12 (rtol = atol)",
            stochastic: false,
            settings: tols.clone(),
            make: Box::new(|sde, tol| Ok(Box::new(DpmAdaptive::new(sde.clone(), 2, tol, tol)?))),
        },
        Ladder {
            name: "Gotta Go Fast + denoise (rtol = atol)",
            stochastic: true,
            settings: vec![0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 5e-3],
            make: Box::new(|sde, tol| {
                Ok(Box::new(
                    GottaGoFast::new(sde.clone(), tol, tol)?.denoise_final(true),
                ))
            }),
        },
        Ladder {
            name: "PF-ODE Dopri5 (rtol = atol)",
            stochastic: false,
            settings: vec![1e-2, 3e-3, 1e-3, 3e-4],
            make: adaptive_rk(DOPRI5),
        },
        Ladder {
            name: "PF-ODE Tsit5 (rtol = atol)",
            stochastic: false,
            settings: vec![1e-2, 3e-3, 1e-3, 3e-4],
            make: adaptive_rk(TSIT5),
        },
        Ladder {
            name: "PF-ODE BS3 (rtol = atol)",
            stochastic: false,
            settings: vec![1e-2, 3e-3, 1e-3, 3e-4],
            make: adaptive_rk(BS3),
        },
        Ladder {
            name: "UniPC-2 bh2, quadratic grid (steps)",
            stochastic: false,
            settings: steps.clone(),
            make: Box::new(|sde, n| {
                let g = TimeGrid::quadratic(sde.schedule(), n as usize)?;
                Ok(Box::new(UniPc::new(sde.clone(), g)?))
            }),
        },
        Ladder {
            name: "UniPC-3 bh2, quadratic grid (steps)",
            stochastic: false,
            settings: steps.clone(),
            make: Box::new(|sde, n| {
                let g = TimeGrid::quadratic(sde.schedule(), n as usize)?;
                Ok(Box::new(UniPc::new(sde.clone(), g)?.order(3)?))
            }),
        },
        Ladder {
            name: "UniPC-2 bh2, log-SNR grid (steps)",
            stochastic: false,
            settings: steps.clone(),
            make: Box::new(|sde, n| {
                let g = TimeGrid::log_snr(sde.schedule(), n as usize)?;
                Ok(Box::new(UniPc::new(sde.clone(), g)?))
            }),
        },
        Ladder {
            name: "DPM-Solver++ 3M, quadratic grid (steps)",
            stochastic: false,
            settings: steps.clone(),
            make: Box::new(|sde, n| {
                let g = TimeGrid::quadratic(sde.schedule(), n as usize)?;
                Ok(Box::new(DpmSolverPp::new(sde.clone(), g)?.order(3)?))
            }),
        },
        Ladder {
            name: "Euler–Maruyama, uniform grid (steps)",
            stochastic: true,
            settings: vec![250.0, 500.0, 1000.0],
            make: Box::new(|sde, n| {
                let g = TimeGrid::uniform(sde.schedule(), n as usize)?;
                Ok(Box::new(Pc::new(sde.clone(), g)?))
            }),
        },
    ]
}

/// NFE to reach the noise floor, per method and problem (see the module docs, `floor`).
fn floor_table(problems: &[Problem], sde: &Sde, ladders: &[Ladder]) -> Result<()> {
    println!(
        "\n| method | {} |",
        problems
            .iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(problems.len()));
    for ladder in ladders {
        let mut cells = Vec::new();
        for p in problems {
            let mut cell = "not reached".to_string();
            for &setting in &ladder.settings {
                let s = (ladder.make)(sde, setting)?;
                let mut rng = rand_pcg::Pcg64::seed_from_u64(99);
                let run = s.run(&p.model, p.x_t.clone(), &mut rng)?;
                let r = p.reference.evaluate(run.samples.view())?;
                let raw = ratio(&r, &p.floor);
                let (_, _, _, pq) = paired(p, &run.samples, &r)?;
                let crit = if ladder.stochastic { raw } else { pq };
                eprintln!(
                    "# {} {} setting {setting:e}: NFE {} (rejected {}) raw {raw:.2} paired {pq:.2} SW1 {:.4} cov {:.4} gap {:+.4}",
                    p.name, ladder.name, run.nfe, run.rejected, r.sw1, r.cov_err_fro, r.loglik_gap
                );
                if crit <= 1.0 {
                    cell = format!("{} ({setting:e}; {crit:.2})", run.nfe);
                    break;
                }
            }
            cells.push(cell);
        }
        println!("| {} | {} |", ladder.name, cells.join(" | "));
    }
    Ok(())
}

/// One setting per row on every problem (`settings` mode): the candidates for "one
/// tolerance at the floor on all three problems", with NFE and the criterion per problem.
fn settings_table(problems: &[Problem], sde: &Sde) -> Result<()> {
    let mut rows: Vec<Ladder> = Vec::new();
    let one = |name: &'static str, stochastic: bool, make: MakeSampler| Ladder {
        name,
        stochastic,
        settings: vec![0.0],
        make,
    };
    rows.push(one(
        "Dopri5 1e-3",
        false,
        Box::new(|sde, _| adaptive_rk(DOPRI5)(sde, 1e-3)),
    ));
    rows.push(one(
        "Tsit5 1e-3",
        false,
        Box::new(|sde, _| adaptive_rk(TSIT5)(sde, 1e-3)),
    ));
    rows.push(one(
        "Tsit5 2e-3",
        false,
        Box::new(|sde, _| adaptive_rk(TSIT5)(sde, 2e-3)),
    ));
    rows.push(one(
        "BS3 1e-3",
        false,
        Box::new(|sde, _| adaptive_rk(BS3)(sde, 1e-3)),
    ));
    rows.push(one(
        "BS3 3e-3",
        false,
        Box::new(|sde, _| adaptive_rk(BS3)(sde, 3e-3)),
    ));
    rows.push(one(
        "BS3 5e-3",
        false,
        Box::new(|sde, _| adaptive_rk(BS3)(sde, 5e-3)),
    ));
    for (name, rtol, atol, norm) in [
        ("DPM-23 max 0.05/1e-3", 0.05, 1e-3, BatchNorm::MaxSample),
        ("DPM-23 rms 5e-3", 5e-3, 5e-3, BatchNorm::Rms),
        ("DPM-23 rms 3e-3", 3e-3, 3e-3, BatchNorm::Rms),
        ("DPM-23 rms 2e-3", 2e-3, 2e-3, BatchNorm::Rms),
        ("DPM-23 rms 1e-3", 1e-3, 1e-3, BatchNorm::Rms),
        ("DPM-12 rms 1e-3", 1e-3, 1e-3, BatchNorm::Rms),
    ] {
        let order = if name.starts_with("DPM-12") { 2 } else { 3 };
        rows.push(one(
            name,
            false,
            Box::new(move |sde, _| {
                Ok(Box::new(
                    DpmAdaptive::new(sde.clone(), order, rtol, atol)?.batch_norm(norm),
                ))
            }),
        ));
    }
    for (name, tol, norm) in [
        ("GGF max 0.02", 0.02, BatchNorm::MaxSample),
        ("GGF rms 0.03", 0.03, BatchNorm::Rms),
        ("GGF rms 0.02", 0.02, BatchNorm::Rms),
    ] {
        rows.push(one(
            name,
            true,
            Box::new(move |sde, _| {
                Ok(Box::new(
                    GottaGoFast::new(sde.clone(), tol, tol)?
                        .batch_norm(norm)
                        .denoise_final(true),
                ))
            }),
        ));
    }
    rows.push(one(
        "Euler–Maruyama 500",
        true,
        Box::new(|sde, _| {
            Ok(Box::new(Pc::new(
                sde.clone(),
                TimeGrid::uniform(sde.schedule(), 500)?,
            )?))
        }),
    ));
    rows.push(one(
        "UniPC-3 quadratic 30",
        false,
        Box::new(|sde, _| {
            let g = TimeGrid::quadratic(sde.schedule(), 30)?;
            Ok(Box::new(UniPc::new(sde.clone(), g)?.order(3)?))
        }),
    ));
    rows.push(one(
        "DPM-Solver++ 3M quadratic 30",
        false,
        Box::new(|sde, _| {
            let g = TimeGrid::quadratic(sde.schedule(), 30)?;
            Ok(Box::new(DpmSolverPp::new(sde.clone(), g)?.order(3)?))
        }),
    ));
    // `NFE_SWEEP_ONLY=text` keeps the rows whose name contains `text`.
    let only = std::env::var("NFE_SWEEP_ONLY").unwrap_or_default();
    for row in rows.iter().filter(|r| r.name.contains(only.as_str())) {
        let mut cells = Vec::new();
        for p in problems {
            let s = (row.make)(sde, 0.0)?;
            let mut rng = rand_pcg::Pcg64::seed_from_u64(99);
            let run = s.run(&p.model, p.x_t.clone(), &mut rng)?;
            let r = p.reference.evaluate(run.samples.view())?;
            let raw = ratio(&r, &p.floor);
            let (_, _, _, pq) = paired(p, &run.samples, &r)?;
            let crit = if row.stochastic { raw } else { pq };
            cells.push(format!(
                "{} ({crit:.2}{})",
                run.nfe,
                if crit <= 1.0 { " ✓" } else { "" }
            ));
        }
        println!("| {} | {} |", row.name, cells.join(" | "));
    }
    Ok(())
}
