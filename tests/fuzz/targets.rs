//! The kinds of generated case: each builds a whole configuration from a [`Gen`] and calls
//! the public API, returning a [`Violation`] if an `Ok` holds a non-finite value or an error
//! message is unreadable (panics and time-outs are caught by the harness).

use super::draw::Gen;
use super::samplers::{self, Sde};
use ndarray::{Array1, Array2, Array3, ArrayBase, Data, Dimension};
use score_sde::condition::{
    ClassifierFree, ClassifierGuidance, FinalStep, Guided, Imputation, LinearGaussian,
    MixtureClassifier, ObservationConstraint, TweedieLikelihood, WithClass,
};
use score_sde::gmm::{AnalyticScore, GaussianMixture, MixtureSpec};
use score_sde::grid::TimeGrid;
use score_sde::latent;
use score_sde::likelihood::DdpmBound;
use score_sde::likelihood::{
    DataScaling, Divergence, DivergenceMethod, OdeLikelihood, Probe, bits_per_dim,
    dequantize_uniform,
};
use score_sde::prelude::*;
use score_sde::sample::DdpmVariance;
use score_sde::sample::RunSpec;
use score_sde::schedule::DiscreteVp;
use score_sde::score::{NetworkFn, Parameterized};
use score_sde::train::{self, TimeSampling, Weighting};
use score_sde::train::{SlicedScoreMatching, TraceMethod, implicit_score_matching};
use std::sync::Arc;

/// What a case found wrong.
#[derive(Debug, Clone)]
pub struct Violation {
    pub what: String,
}

pub type Res = std::result::Result<(), Violation>;

fn bad(what: impl Into<String>) -> Violation {
    Violation { what: what.into() }
}

/// The kinds of case, with their relative frequencies.
pub const KINDS: [(&str, u32); 16] = [
    ("schedule", 6),
    ("grid", 6),
    ("mixture", 8),
    ("mixture-json", 4),
    ("analytic-score", 6),
    ("sampler", 20),
    ("likelihood", 5),
    ("guidance", 5),
    ("imputation", 5),
    ("inverse-problem", 5),
    ("npy", 6),
    ("onnx", 3),
    ("metrics", 4),
    ("divergence-bpd-train", 5),
    ("sampler-counts", 2),
    ("literature", 6),
];

/// The kind of case `pick` (uniform in `0..total weight`) selects.
pub fn kind_of(pick: u32) -> usize {
    let mut acc = 0;
    for (i, (_, w)) in KINDS.iter().enumerate() {
        acc += w;
        if pick < acc {
            return i;
        }
    }
    KINDS.len() - 1
}

pub fn total_weight() -> u32 {
    KINDS.iter().map(|(_, w)| w).sum()
}

/// Run case `kind` from `seed`, in f32 or f64 as the generator decides.
pub fn run(kind: usize, seed: u64) -> Res {
    let mut g = Gen::new(seed);
    if g.chance(0.3) {
        run_in::<f32>(kind, &mut g)
    } else {
        run_in::<f64>(kind, &mut g)
    }
}

fn run_in<F: Real>(kind: usize, g: &mut Gen) -> Res {
    match kind {
        0 => schedule_case::<F>(g),
        1 => grid_case::<F>(g),
        2 => mixture_case::<F>(g),
        3 => json_case::<F>(g),
        4 => analytic_case::<F>(g),
        5 => sampler_case::<F>(g),
        6 => likelihood_case::<F>(g),
        7 => guidance_case::<F>(g),
        8 => imputation_case::<F>(g),
        9 => inverse_case::<F>(g),
        10 => npy_case::<F>(g),
        11 => onnx_case::<F>(g),
        12 => metrics_case(g),
        13 => misc_case::<F>(g),
        14 => counts_case::<F>(g),
        _ => literature_case::<F>(g),
    }
}

// ------------------------------------------------------------------ checks

/// Error messages name the quantity in a readable line: no 40-digit numbers (a float
/// printed by `Display` in full), no novel.
pub fn check_error(e: &Error) -> Res {
    let m = e.to_string();
    let mut run = 0;
    for c in m.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run >= 40 {
            return Err(bad(format!("error message with a {run}-digit number: {m}")));
        }
    }
    if m.len() > 1500 {
        return Err(bad(format!("error message of {} bytes: {m}", m.len())));
    }
    Ok(())
}

fn finite<F: Real, S: Data<Elem = F>, D: Dimension>(what: &str, a: &ArrayBase<S, D>) -> Res {
    match a.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(bad(format!(
            "{what}: Ok holding a non-finite value {:?} at {i}",
            a.iter().nth(i).map(|v| v.as_f64())
        ))),
    }
}

fn finite_scalar<F: Real>(what: &str, v: F) -> Res {
    if v.is_finite() {
        Ok(())
    } else {
        Err(bad(format!("{what}: Ok holding {v:?}")))
    }
}

/// `Ok` results checked so far (the long mode's measure of how deep the cases reach; cases
/// run one at a time, so one counter serves).
pub static OKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// `Ok(v)` → `check(v)`; `Err(e)` → the message check; `Err` is otherwise fine.
fn on<T>(r: score_sde::Result<T>, check: impl FnOnce(T) -> Res) -> Res {
    match r {
        Ok(v) => {
            OKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            check(v)
        }
        Err(e) => check_error(&e),
    }
}

/// `?` for constructors: a typed error ends the case successfully (after the message check).
macro_rules! build {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return check_error(&e),
        }
    };
}

fn lit<F: Real>(v: f64) -> F {
    F::lit(v)
}

fn array2<F: Real>(g: &mut Gen, rows: usize, cols: usize, scale: f64) -> Array2<F> {
    let v = g.floats(rows * cols, scale);
    Array2::from_shape_fn((rows, cols), |(i, j)| F::lit(v[i * cols + j]))
}

// ------------------------------------------------------------------ generators

/// A schedule of any kind, with generated (often extreme) parameters and time range.
pub fn schedule<F: Real>(g: &mut Gen) -> score_sde::Result<Arc<dyn Schedule<F>>> {
    let range = g.chance(0.25);
    let (t0, t1) = (g.near(1e-3), g.near(1.0));
    Ok(match g.below(7) {
        0 => {
            let s = VpLinear::new(lit(g.near(0.1)), lit(g.near(20.0)))?;
            Arc::new(if range {
                s.with_t_range(lit(t0), lit(t1))?
            } else {
                s
            })
        }
        1 => {
            let s = VpCosine::new(lit(g.near(0.008)), lit(g.near(999.0)))?;
            Arc::new(if range {
                s.with_t_range(lit(t0), lit(g.within(0.5, 0.999)))?
            } else {
                s
            })
        }
        2 => {
            let s = SubVp::new(lit(g.near(0.1)), lit(g.near(20.0)))?;
            Arc::new(if range {
                s.with_t_range(lit(t0), lit(t1))?
            } else {
                s
            })
        }
        3 => {
            let s = Ve::new(lit(g.near(0.01)), lit(g.near(50.0)))?;
            Arc::new(if range {
                s.with_t_range(lit(g.near(1e-5)), lit(t1))?
            } else {
                s
            })
        }
        4 => Arc::new(Edm::new(lit(g.near(0.002)), lit(g.near(80.0)))?),
        5 => Arc::new(DiscreteVp::ddpm_linear(
            g.count(1000),
            lit(g.near(1e-4)),
            lit(g.near(0.02)),
        )?),
        _ => {
            let n = g.small_count(50);
            let betas: Vec<F> = (0..n).map(|_| lit(g.within(1e-4, 0.1))).collect();
            Arc::new(DiscreteVp::from_betas(&betas)?)
        }
    })
}

/// A mixture: K ≤ 3 components in D ≤ 3 dimensions, with diagonal, full or tied
/// covariances whose entries may be extreme.
pub fn mixture<F: Real>(g: &mut Gen) -> score_sde::Result<GaussianMixture<F>> {
    let (k, d) = (g.small_count(3), g.small_count(3));
    let mut w: Vec<f64> = (0..k).map(|_| g.uniform(0.1, 1.0)).collect();
    let total: f64 = w.iter().sum();
    w.iter_mut().for_each(|v| *v /= total);
    if g.chance(0.1) {
        let i = g.below(k.max(1));
        if let Some(v) = w.get_mut(i) {
            *v = g.float();
        }
    }
    let means = array2::<F>(g, k, d, 3.0);
    let tied = g.chance(0.3);
    let mut covs = Array3::<F>::zeros((k, d, d));
    let mut shared = None;
    for c in 0..k {
        let s = match (&shared, tied) {
            (Some(s), true) => Clone::clone(s),
            _ => {
                let s = if g.chance(0.5) {
                    let v = g.floats(d, 1.0);
                    Array2::from_shape_fn((d, d), |(i, j)| {
                        if i == j {
                            lit::<F>(g_abs(v[i]) + 0.1)
                        } else {
                            F::zero()
                        }
                    })
                } else {
                    // A Aᵀ + c I, A possibly with extreme entries.
                    let a = array2::<F>(g, d, d, 1.0);
                    let c = lit::<F>(g.near(0.1).abs());
                    let mut s = a.dot(&a.t());
                    for i in 0..d {
                        s[[i, i]] += c;
                    }
                    if d > 0 && g.chance(0.05) {
                        let (i, j) = (g.below(d), g.below(d));
                        s[[i, j]] = lit(g.float());
                    }
                    s
                };
                shared = Some(s.clone());
                s
            }
        };
        covs.index_axis_mut(ndarray::Axis(0), c).assign(&s);
    }
    GaussianMixture::new(Array1::from_iter(w.into_iter().map(lit)), means, covs)
}

fn g_abs(v: f64) -> f64 {
    v.abs()
}

/// Points to evaluate at: rows ≤ 6 (sometimes 0), usually `d` columns, values at scale 4.
fn points<F: Real>(g: &mut Gen, d: usize) -> Array2<F> {
    // Mostly a few rows; sometimes enough for several of the kernel's row blocks.
    let n = if g.chance(0.05) {
        40 + g.below(60)
    } else {
        g.small_count(6)
    };
    let cols = if g.chance(0.05) { d + 1 } else { d };
    let scale = g.pick(&[1.0, 4.0, 1e3, 1e20, 1e200]);
    array2(g, n, cols, scale)
}

/// A time for `sched`: usually in `[t_min, T]`, sometimes 0, beyond T or extreme.
fn time<F: Real>(g: &mut Gen, sched: &dyn Schedule<F>) -> F {
    let (lo, hi) = sched.t_range();
    match g.below(8) {
        0 => F::zero(),
        1 => lit(g.float()),
        2 => hi,
        3 => lo,
        _ => lit(g.uniform(lo.as_f64(), hi.as_f64())),
    }
}

// ------------------------------------------------------------------ cases

fn schedule_case<F: Real>(g: &mut Gen) -> Res {
    let s = build!(schedule::<F>(g));
    let (lo, hi) = s.t_range();
    finite_scalar("t_min", lo)?;
    finite_scalar("T", hi)?;
    for i in 0..=4 {
        let t = lo + (hi - lo) * lit::<F>(i as f64 / 4.0);
        for (what, v) in [
            ("alpha", s.alpha(t)),
            ("sigma", s.sigma(t)),
            ("f", s.f(t)),
            ("g2", s.g2(t)),
            ("log_snr", s.log_snr(t)),
            ("noise_level", s.noise_level(t)),
        ] {
            if !v.is_finite() {
                return Err(bad(format!(
                    "{what}({t:?}) = {v:?} on the valid range of {s:?}"
                )));
            }
        }
        if !(s.alpha(t) > F::zero() && s.sigma(t) > F::zero()) {
            return Err(bad(format!("α or σ not positive at t = {t:?}: {s:?}")));
        }
        on(s.t_of_log_snr(s.log_snr(t)), |t2| {
            finite_scalar("t_of_log_snr", t2)
        })?;
    }
    let t = lit::<F>(g.float());
    if s.check_t(t).is_ok() {
        finite_scalar("alpha at a checked time", s.alpha(t))?;
    }
    on(s.t_of_log_snr(lit(g.float())), |t2| {
        finite_scalar("t_of_log_snr", t2)
    })
}

fn grid_case<F: Real>(g: &mut Gen) -> Res {
    let s = build!(schedule::<F>(g));
    let n = g.count(40);
    let r = match g.below(5) {
        0 => TimeGrid::uniform(&*s, n),
        1 => TimeGrid::quadratic(&*s, n),
        2 => TimeGrid::karras(&*s, n, lit(g.near(7.0))),
        3 => TimeGrid::log_snr(&*s, n),
        _ => {
            let (lo, hi) = s.t_range();
            let m = g.small_count(8);
            let times = (0..m)
                .map(|_| lit(g.within(lo.as_f64(), hi.as_f64())))
                .collect();
            TimeGrid::custom(&*s, times)
        }
    };
    on(r, |grid| {
        let t = grid.times();
        finite("grid times", &Array1::from(t.to_vec()))?;
        let dec = grid.is_decreasing();
        if t.windows(2)
            .any(|w| if dec { w[1] >= w[0] } else { w[1] <= w[0] })
        {
            return Err(bad("grid not strictly monotone"));
        }
        t.iter().try_for_each(|&v| on(s.check_t(v), |_| Ok(())))
    })
}

/// Every evaluation of a mixture on generated points.
fn evaluate_mixture<F: Real>(g: &mut Gen, gm: &GaussianMixture<F>) -> Res {
    let x = points::<F>(g, gm.dim());
    on(gm.log_prob(x.view()), |v| finite("log_prob", &v))?;
    on(gm.score(x.view()), |v| finite("score", &v))?;
    on(gm.hessian_trace(x.view()), |v| finite("hessian_trace", &v))?;
    on(gm.responsibilities(x.view()), |v| {
        finite("responsibilities", &v)
    })?;
    on(gm.most_likely_component(x.view()), |_| Ok(()))?;
    let (a, s) = (lit::<F>(g.near(0.5)), lit::<F>(g.near(0.5)));
    on(gm.responsibilities_at(a, s, x.view()), |v| {
        finite("responsibilities_at", &v)
    })?;
    on(gm.posterior_mean(x.view(), a, s), |v| {
        finite("posterior_mean", &v)
    })?;
    on(gm.diffuse_with(a, s), |p| {
        on(p.score(x.view()), |v| finite("diffused score", &v))
    })?;
    let n = g.count(16);
    on(gm.sample(n, &mut g.rng()), |v| finite("sample", &v))
}

fn mixture_case<F: Real>(g: &mut Gen) -> Res {
    let gm = build!(mixture::<F>(g));
    evaluate_mixture(g, &gm)?;
    let d = gm.dim();
    let idx: Vec<usize> = (0..g.small_count(d + 1)).map(|_| g.below(d + 1)).collect();
    on(gm.marginal(&idx), |m| evaluate_mixture(g, &m))?;
    let vals = Array1::from_iter(g.floats(idx.len(), 3.0).into_iter().map(lit::<F>));
    on(gm.condition(&idx, vals.view()), |(c, _)| {
        finite("conditional weights", &c.weights())?;
        finite("conditional means", &c.means())?;
        evaluate_mixture(g, &c)
    })?;
    let m = g.small_count(3);
    let a = array2::<F>(g, m, d, 1.0);
    let y = Array1::from_iter(g.floats(m, 3.0).into_iter().map(lit::<F>));
    let noise = {
        let b = array2::<F>(g, m, m, 1.0);
        let mut s = b.dot(&b.t());
        for i in 0..m {
            s[[i, i]] += lit::<F>(g.near(0.1).abs());
        }
        s
    };
    on(gm.posterior(a.view(), y.view(), noise.view()), |p| {
        finite("posterior weights", &p.weights())?;
        evaluate_mixture(g, &p)
    })?;
    let s = build!(schedule::<F>(g));
    let t = time(g, &*s);
    on(gm.diffuse(&*s, t), |p| evaluate_mixture(g, &p))?;
    // A validated mixture's spec round-trips.
    on(MixtureSpec::from_json(&gm.to_spec().to_json()), |spec| {
        on(spec.build::<F>(), |_| Ok(()))
    })
}

fn json_case<F: Real>(g: &mut Gen) -> Res {
    let text = if g.chance(0.6) {
        let (k, d) = (g.small_count(3), g.small_count(3));
        let num = |g: &mut Gen| {
            let v = g.near(1.0);
            // serde_json writes non-finite numbers as null; write some extreme literals.
            if v.is_finite() {
                format!("{v:e}")
            } else {
                g.pick(&["1e999", "null", "-1e400", "\"x\""]).to_string()
            }
        };
        let weights: Vec<String> = (0..k).map(|_| format!("{:e}", 1.0 / k as f64)).collect();
        let means: Vec<String> = (0..k)
            .map(|_| format!("[{}]", (0..d).map(|_| num(g)).collect::<Vec<_>>().join(",")))
            .collect();
        let covs: Vec<String> = (0..k)
            .map(|_| {
                let rows: Vec<String> = (0..d)
                    .map(|i| {
                        let r: Vec<String> = (0..d)
                            .map(|j| {
                                if i == j {
                                    num(g).replace('-', "")
                                } else if g.chance(0.8) {
                                    "0".into()
                                } else {
                                    num(g)
                                }
                            })
                            .collect();
                        format!("[{}]", r.join(","))
                    })
                    .collect();
                format!("[{}]", rows.join(","))
            })
            .collect();
        format!(
            "{{\"weights\": [{}], \"means\": [{}], \"covs\": [{}]}}",
            weights.join(","),
            means.join(","),
            covs.join(",")
        )
    } else {
        let valid = score_sde::gmm::problems::RING2D_JSON.as_bytes();
        String::from_utf8_lossy(&g.mutate(valid)).into_owned()
    };
    let spec = build!(MixtureSpec::from_json(&text));
    let gm = build!(spec.build::<F>());
    evaluate_mixture(g, &gm)
}

fn analytic_case<F: Real>(g: &mut Gen) -> Res {
    let s = build!(schedule::<F>(g));
    let gm = build!(mixture::<F>(g));
    let model = AnalyticScore::new(gm, s.clone());
    let x = points::<F>(g, model.mixture().dim());
    let t = time(g, &*s);
    let mut out = Array2::zeros(x.raw_dim());
    on(model.score(x.view(), t, out.view_mut()), |_| {
        finite("AnalyticScore::score", &out)
    })?;
    let ts = Array1::from_iter((0..x.nrows()).map(|_| time(g, &*s)));
    let mut out = Array2::zeros(x.raw_dim());
    on(
        model.score_rows(x.view(), ts.view(), out.view_mut()),
        |_| finite("AnalyticScore::score_rows", &out),
    )?;
    let mut div = Array1::zeros(x.nrows());
    if let Some(r) = model.divergence(x.view(), t, div.view_mut()) {
        on(r, |_| finite("AnalyticScore::divergence", &div))?;
    }
    let mut lp = Array1::zeros(x.nrows());
    on(model.log_prob(x.view(), t, lp.view_mut()), |_| {
        finite("AnalyticScore::log_prob", &lp)
    })?;
    on(model.marginal(t), |m| evaluate_mixture(g, &m))
}

/// A score model for the samplers: usually the exact one, sometimes a closure returning a
/// constant (possibly extreme), an error, or a noise-predicting network.
fn model_for<F: Real>(
    g: &mut Gen,
    sched: &Arc<dyn Schedule<F>>,
    gm: &GaussianMixture<F>,
) -> Box<dyn ScoreModel<F>> {
    match g.below(9) {
        8 => {
            // Finite, but NaN below a time inside the range: only the last steps (a final
            // denoise, a corrector at t_min) see it.
            let (lo, hi) = sched.t_range();
            let cut = lo + (hi - lo) * lit::<F>(g.pick(&[0.0, 1e-9, 0.01, 0.3]));
            Box::new(ScoreFn::new(
                move |x: ndarray::ArrayView2<F>, t: F, mut out: ndarray::ArrayViewMut2<F>| {
                    if t <= cut {
                        out.fill(F::nan());
                    } else {
                        out.zip_mut_with(&x, |o, &v| *o = -v);
                    }
                    Ok(())
                },
            ))
        }
        0 => {
            let c = lit::<F>(g.float());
            Box::new(ScoreFn::new(
                move |_x: ndarray::ArrayView2<F>, _t: F, mut out: ndarray::ArrayViewMut2<F>| {
                    out.fill(c);
                    Ok(())
                },
            ))
        }
        1 => Box::new(ScoreFn::new(
            |_x: ndarray::ArrayView2<F>, _t: F, _out: ndarray::ArrayViewMut2<F>| {
                Err(Error::Model("generated model error".into()))
            },
        )),
        2 => {
            let kind = g.pick(&[
                Parameterization::Noise,
                Parameterization::Data,
                Parameterization::Velocity,
                Parameterization::Score,
            ]);
            let net = NetworkFn::new(
                |x: ndarray::ArrayView2<F>, _t: F, mut out: ndarray::ArrayViewMut2<F>| {
                    out.assign(&x);
                    Ok(())
                },
            );
            Box::new(Parameterized::new(net, sched.clone(), kind))
        }
        _ => Box::new(AnalyticScore::new(gm.clone(), sched.clone())),
    }
}

fn sde<F: Real>(g: &mut Gen) -> score_sde::Result<(Arc<dyn Schedule<F>>, Sde<F>)> {
    let s = schedule::<F>(g)?;
    let mut sde = LinearSde::new(s.clone());
    if g.chance(0.2) {
        sde = sde.with_prior_std(lit(g.near(1.0)))?;
    }
    Ok((s, sde))
}

fn sampler_case<F: Real>(g: &mut Gen) -> Res {
    let (sched, sde) = build!(sde::<F>(g));
    let gm = build!(mixture::<F>(g));
    let n = g.small_count(6);
    let built = build!(samplers::build(g, &sde, &gm, n));
    let model = model_for(g, &sched, &gm);
    let d = gm.dim();
    let r = if g.chance(0.5) {
        built.sampler.sample(&*model, n, d, &mut g.rng())
    } else if g.chance(0.25) {
        // A shard of a row-addressable run (RunSpec): rows `a..b` of a run of `total`.
        let total = g.small_count(8);
        let a = g.below(total + 1);
        let b = a + g.below(total + 2 - a);
        RunSpec::new(g.u64(), total)
            .and_then(|spec| {
                if g.chance(0.2) {
                    Ok(spec)
                } else {
                    spec.shard(a..b)
                }
            })
            .and_then(|spec| built.sampler.sample_rows(&*model, d, &spec))
    } else {
        let scale = g.pick(&[1.0, 10.0, 1e30, 1e300]);
        let x0 = array2::<F>(g, n, d, scale);
        built.sampler.run(&*model, x0, &mut g.rng())
    };
    on(r, |run| {
        finite(&format!("{} samples", built.label), &run.samples)
    })
}

fn likelihood_case<F: Real>(g: &mut Gen) -> Res {
    let (sched, sde) = build!(sde::<F>(g));
    let gm = build!(mixture::<F>(g));
    let method = match g.below(3) {
        0 => DivergenceMethod::Exact,
        1 => DivergenceMethod::FiniteDifference,
        _ => DivergenceMethod::Hutchinson {
            probes: g.small_count(3),
            probe: g.pick(&[Probe::Rademacher, Probe::Gaussian]),
        },
    };
    let mut lik = build!(
        OdeLikelihood::new(sde.clone())
            .and_then(|l| l.tolerances(lit(g.near(1e-4)), lit(g.near(1e-4))))
            .and_then(|l| l.max_steps(g.small_count(200)))
            .and_then(|l| l.divergence(method))
    );
    if g.chance(0.2) {
        let t0 = time(g, &*sched);
        lik = build!(lik.t_start(t0));
    }
    let model = model_for(g, &sched, &gm);
    let x = points::<F>(g, gm.dim());
    on(lik.log_prob(&*model, x.view(), &mut g.rng()), |l| {
        finite("likelihood log_p", &l.log_p)?;
        finite("likelihood prior_log_p", &l.prior_log_p)?;
        finite("likelihood delta_log_p", &l.delta_log_p)?;
        finite("likelihood latent", &l.latent)
    })
}

fn guidance_case<F: Real>(g: &mut Gen) -> Res {
    let s = build!(schedule::<F>(g));
    let gm = build!(mixture::<F>(g));
    let model = AnalyticScore::new(gm.clone(), s.clone());
    let clf = MixtureClassifier::new(gm.clone(), s.clone());
    let x = points::<F>(g, gm.dim());
    let t = time(g, &*s);
    on(clf.probs(x.view(), t), |p| finite("classifier probs", &p))?;
    let class = g.below(gm.n_components() + 1);
    let scale = lit::<F>(g.near(2.0));
    let mut out = Array2::zeros(x.raw_dim());
    on(
        ClassifierGuidance::new(&model, &clf, class, scale)
            .and_then(|cg| cg.score(x.view(), t, out.view_mut())),
        |_| finite("classifier guidance", &out),
    )?;
    let mut out = Array2::zeros(x.raw_dim());
    on(
        ClassifierFree::switch(&clf, class, scale)
            .and_then(|c| c.rescale(lit(g.within(0.0, 1.0))))
            .and_then(|c| c.score(x.view(), t, out.view_mut())),
        |_| finite("classifier-free guidance", &out),
    )?;
    let mut out = Array2::zeros(x.raw_dim());
    on(
        WithClass::new(&clf, Some(class)).and_then(|w| w.score(x.view(), t, out.view_mut())),
        |_| finite("WithClass", &out),
    )
}

fn imputation_case<F: Real>(g: &mut Gen) -> Res {
    let (sched, sde) = build!(sde::<F>(g));
    let gm = build!(mixture::<F>(g));
    let d = gm.dim();
    let mask: Vec<bool> = (0..if g.chance(0.05) { d + 1 } else { d })
        .map(|_| g.chance(0.5))
        .collect();
    let n = g.small_count(4);
    let per_row = g.chance(0.3);
    let values = array2::<F>(g, if per_row { n } else { 1 }, d, 3.0);
    let mut imp = build!(Imputation::per_row(
        sched.clone(),
        &mask,
        values.view(),
        g.u64()
    ));
    if g.chance(0.3) {
        // An orthogonal basis (a rotation), or garbage.
        let q = if g.chance(0.7) {
            let th = g.uniform(0.0, 6.0);
            Array2::from_shape_fn((d, d), |(i, j)| {
                let (c, s) = (th.cos(), th.sin());
                match (i, j) {
                    (0, 0) => lit::<F>(c),
                    (0, 1) => lit(-s),
                    (1, 0) => lit(s),
                    (1, 1) => lit(c),
                    _ if i == j => F::one(),
                    _ => F::zero(),
                }
            })
        } else {
            array2::<F>(g, d, d, 1.0)
        };
        imp = build!(imp.with_basis(q.view()));
    }
    if g.chance(0.3) {
        imp = imp.final_step(g.pick(&[FinalStep::Clean, FinalStep::Noisy]));
    }
    if g.chance(0.2) {
        imp = build!(imp.final_time(lit(g.float())));
    }
    let built = build!(samplers::build(g, &sde, &gm, n));
    let model = AnalyticScore::new(gm.clone(), sched.clone());
    let x0 = build!(built.sampler.initial_state(n, d, &mut g.rng()));
    on(
        built.sampler.run_with(&model, x0, &mut g.rng(), &mut imp),
        |run| finite(&format!("imputed {} samples", built.label), &run.samples),
    )
}

fn inverse_case<F: Real>(g: &mut Gen) -> Res {
    let gm = build!(mixture::<F>(g));
    let (m, d) = (g.small_count(3), gm.dim());
    let cols = if g.chance(0.05) { d + 1 } else { d };
    let a = array2::<F>(g, m, cols, 1.0);
    let noise = {
        let scale = g.pick(&[0.1, 1.0, 1e-160, 1e160]);
        let b = array2::<F>(g, m, m, scale);
        let mut s = b.dot(&b.t());
        for i in 0..m {
            s[[i, i]] += lit::<F>(g.near(0.1).abs());
        }
        s
    };
    let lg = build!(LinearGaussian::new(a, noise));
    let x = Array1::from_iter(g.floats(d, 3.0).into_iter().map(lit::<F>));
    on(lg.observe(x.view(), &mut g.rng()), |y| {
        finite("observation", &y)
    })?;
    let y = Array1::from_iter(g.floats(m, 3.0).into_iter().map(lit::<F>));
    let xs = points::<F>(g, d);
    on(lg.log_likelihood(xs.view(), y.view()), |l| {
        finite("log_likelihood", &l)
    })?;
    on(lg.posterior(&gm, y.view()), |p| {
        finite("posterior means", &p.means())?;
        evaluate_mixture(g, &p)
    })
}

/// A valid `.npy` file of generated shape, type, order and values.
fn npy_bytes(g: &mut Gen) -> Vec<u8> {
    let (descr, size) = g.pick(&[("<f8", 8), ("<f4", 4), (">f8", 8), ("<i4", 4), ("|b1", 1)]);
    let rows = g.small_count(5);
    let shape = match g.below(5) {
        0 => format!("({rows},)"),
        1 => format!("({rows}, 2, 2)"),
        2 => format!("({}, 2)", g.pick(&crate::draw::HUGE_COUNTS)),
        _ => format!("({rows}, {})", g.small_count(3)),
    };
    let n: usize = shape
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .filter_map(|p| p.trim().parse::<usize>().ok())
        .fold(1usize, |a, b| a.saturating_mul(b))
        .min(64);
    let header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}\n",
        if g.chance(0.3) { "True" } else { "False" }
    );
    let version = g.pick(&[1u8, 1, 2, 3, 9]);
    let mut b = vec![0x93, b'N', b'U', b'M', b'P', b'Y', version, 0];
    if version == 1 {
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        b.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    b.extend_from_slice(header.as_bytes());
    for v in g.floats(n, 3.0) {
        match (size, descr.starts_with('>')) {
            (8, false) => b.extend_from_slice(&v.to_le_bytes()),
            (8, true) => b.extend_from_slice(&v.to_be_bytes()),
            (4, _) => b.extend_from_slice(&(v as f32).to_le_bytes()),
            _ => b.push(v as u8),
        }
    }
    b
}

fn npy_case<F: Real>(g: &mut Gen) -> Res {
    #[cfg(feature = "npy")]
    {
        use score_sde::backend::npy::{from_npy_bytes, load_npy};
        let valid = npy_bytes(g);
        let bytes = if g.chance(0.4) {
            g.mutate(&valid)
        } else {
            valid
        };
        on(from_npy_bytes::<F>(&bytes), |a| finite("npy array", &a))?;
        if g.chance(0.05) {
            let p = std::env::temp_dir().join(format!(
                "score_sde_fuzz_{}_{}.npy",
                std::process::id(),
                g.u64()
            ));
            if std::fs::write(&p, &bytes).is_ok() {
                let r = load_npy::<F>(&p);
                std::fs::remove_file(&p).ok();
                on(r, |a| finite("npy file", &a))?;
            }
        }
        Ok(())
    }
    #[cfg(not(feature = "npy"))]
    {
        let _ = npy_bytes(g);
        Ok(())
    }
}

fn onnx_case<F: Real>(g: &mut Gen) -> Res {
    #[cfg(feature = "onnx")]
    {
        use score_sde::backend::onnx::{OnnxNetwork, OnnxOptions, OnnxScore};
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
        let name = g.pick(&[
            "gaussian_score.onnx",
            "ring_noise.onnx",
            "wrong_input_name.onnx",
            "wrong_time_shape.onnx",
        ]);
        let valid = std::fs::read(format!("{dir}{name}")).map_err(|e| bad(e.to_string()))?;
        let bytes = if g.chance(0.7) {
            g.mutate(&valid)
        } else {
            valid
        };
        let p = std::env::temp_dir().join(format!(
            "score_sde_fuzz_{}_{}.onnx",
            std::process::id(),
            g.u64()
        ));
        std::fs::write(&p, &bytes).map_err(|e| bad(e.to_string()))?;
        let dim = if g.chance(0.5) {
            Some(g.small_count(3))
        } else {
            None
        };
        let net = OnnxNetwork::load(&p, "x", "t", dim);
        let sched = VpLinear::<F>::default();
        let kind = g.pick(&[Parameterization::Noise, Parameterization::Score]);
        let mut opts = OnnxOptions::new(sched, kind);
        if let Some(d) = dim {
            opts = opts.dim(d);
        }
        let score = OnnxScore::load(&p, opts);
        std::fs::remove_file(&p).ok();
        on(net, |net| {
            let d = net.dim();
            let x = points::<F>(g, d);
            let mut out = Array2::zeros(x.raw_dim());
            // A network's output is the network's business (NaN included): only no panic.
            on(
                Network::<F>::forward(&net, x.view(), lit(0.5), out.view_mut()),
                |_| Ok(()),
            )
        })?;
        on(score, |m| {
            let d = m.network().dim();
            let x = points::<F>(g, d);
            let mut out = Array2::zeros(x.raw_dim());
            let t = time(g, &sched);
            let r = m.score(x.view(), t, out.view_mut());
            // At t = 0 a noise model divides by σ = 0: a typed error, not ±inf.
            if t == F::zero() && kind == Parameterization::Noise && r.is_ok() {
                return Err(bad("ONNX noise model at t = 0 returned Ok"));
            }
            on(r, |_| Ok(()))
        })
    }
    #[cfg(not(feature = "onnx"))]
    {
        let _ = g;
        let _ = std::marker::PhantomData::<F>;
        Ok(())
    }
}

fn metrics_case(g: &mut Gen) -> Res {
    use score_sde::metrics;
    let gm = build!(mixture::<f64>(g));
    let d = gm.dim();
    let x = points::<f64>(g, d);
    let y = points::<f64>(g, d);
    on(metrics::random_directions(g.count(8), d, g.u64()), |dirs| {
        on(metrics::sliced_w1(x.view(), y.view(), dirs.view()), |v| {
            finite_scalar("sliced_w1", v)
        })
    })?;
    on(metrics::mean_error(x.view(), &gm), |v| {
        finite_scalar("mean_error", v)
    })?;
    on(metrics::cov_error(x.view(), &gm), |(a, b)| {
        finite_scalar("cov_error", a)?;
        finite_scalar("cov_error_rel", b)
    })?;
    on(metrics::weight_tv(x.view(), &gm), |v| {
        finite_scalar("weight_tv", v)
    })?;
    on(metrics::sample_covariance(x.view()), |c| {
        finite("sample_covariance", &c)
    })?;
    let s = build!(schedule::<f64>(g));
    let t = time(g, &*s);
    let n = g.small_count(40);
    let r = build!(metrics::Reference::new(&gm, &*s, t, n, g.u64()));
    on(r.evaluate(x.view()), |rep| {
        for (what, v) in [
            ("mean_err", rep.mean_err),
            ("cov_err_fro", rep.cov_err_fro),
            ("cov_err_rel", rep.cov_err_rel),
            ("weight_tv", rep.weight_tv),
            ("sw1", rep.sw1),
            ("loglik_gap", rep.loglik_gap),
            ("loglik_p0", rep.loglik_p0),
        ] {
            finite_scalar(what, v)?;
        }
        Ok(())
    })
}

fn misc_case<F: Real>(g: &mut Gen) -> Res {
    let (sched, sde) = build!(sde::<F>(g));
    let gm = build!(mixture::<F>(g));
    let d = gm.dim();
    let model = AnalyticScore::new(gm.clone(), sched.clone());
    // Divergence estimators with generated counts.
    let method = match g.below(3) {
        0 => DivergenceMethod::Exact,
        1 => DivergenceMethod::FiniteDifference,
        _ => DivergenceMethod::hutchinson(g.count(4)),
    };
    let x = points::<F>(g, d);
    let n = if g.chance(0.1) { g.count(8) } else { x.nrows() };
    if let Ok(mut div) = Divergence::<F>::new(method, n, x.ncols(), &mut g.rng()) {
        let mut out = Array1::zeros(x.nrows());
        let t = time(g, &*sched);
        on(div.eval(&model, x.view(), t, out.view_mut()), |_| {
            finite("divergence", &out)
        })?;
    }
    // Bits per dimension and dequantisation.
    let lp = Array1::from_iter(g.floats(3, 10.0).into_iter().map(lit::<F>));
    let scaling = DataScaling::new(g.pick(&[0u32, 1, 256, u32::MAX]), g.near(1.0));
    if let Ok(sc) = scaling {
        on(bits_per_dim(lp.view(), g.count(4), sc), |b| {
            finite("bits_per_dim", &b)
        })?;
        let levels = Array2::from_shape_fn((2, 3), |_| g.below(256) as u8);
        on(
            dequantize_uniform::<F>(levels.view(), sc, g.float(), &mut g.rng()),
            |x| finite("dequantize_uniform", &x),
        )?;
    }
    // Training batches.
    let sampling = if g.chance(0.5) {
        TimeSampling::Uniform
    } else {
        TimeSampling::LogNormal {
            p_mean: g.float(),
            p_std: g.near(1.2),
        }
    };
    on(
        train::sample_times(&sde, sampling, g.count(8), &mut g.rng()),
        |t| finite("training times", &t),
    )?;
    let x0 = points::<F>(g, d);
    let kind = g.pick(&[
        Parameterization::Score,
        Parameterization::Noise,
        Parameterization::Data,
        Parameterization::Velocity,
    ]);
    let weighting = g.pick(&[
        Weighting::Unit,
        Weighting::Sigma2,
        Weighting::Likelihood,
        Weighting::Edm { sigma_data: 0.5 },
    ]);
    on(
        train::make_batch(&sde, x0.view(), sampling, kind, weighting, &mut g.rng()),
        |b| {
            finite("batch x_t", &b.x_t)?;
            finite("batch target", &b.target)?;
            finite("batch weight", &b.weight)?;
            let pred = array2::<F>(g, b.x_t.nrows(), b.x_t.ncols(), 1.0);
            on(b.loss(pred.view()), |l| finite_scalar("loss", l))
        },
    )
}

fn counts_case<F: Real>(g: &mut Gen) -> Res {
    let (_, sde) = build!(sde::<F>(g));
    match samplers::count_getters(g, &sde) {
        None => Ok(()),
        Some(getter) => Err(bad(format!(
            "{getter} panicked (integer overflow) on a count near usize::MAX"
        ))),
    }
}

/// The methods of the score-SDE literature added with issue 15: latent editing, implicit and
/// sliced score matching, DPS / ΠGDM guidance and the projection sampler for `y = A x + n`,
/// the DDPM bound, and the likelihood with the exact mixture prior.
fn literature_case<F: Real>(g: &mut Gen) -> Res {
    match g.below(5) {
        0 => {
            let d = g.small_count(5);
            let z0 = Array1::from_iter(g.floats(d, 3.0).into_iter().map(lit::<F>));
            let z1 = Array1::from_iter(g.floats(d, 3.0).into_iter().map(lit::<F>));
            let lam = lit::<F>(g.within(-0.5, 1.5));
            on(latent::slerp(z0.view(), z1.view(), lam), |z| {
                finite("slerp", &z)
            })?;
            let k = if g.chance(0.05) {
                usize::MAX
            } else {
                g.small_count(6)
            };
            on(latent::interpolate(z0.view(), z1.view(), k), |z| {
                finite("interpolate", &z)
            })?;
            let rows = g.small_count(3);
            let z = array2::<F>(g, rows, d, 3.0);
            on(latent::temperature(z.view(), lit(g.near(1.0))), |z| {
                finite("temperature", &z)
            })
        }
        1 => {
            let s = build!(schedule::<F>(g));
            let gm = build!(mixture::<F>(g));
            let model = AnalyticScore::new(gm.clone(), s.clone());
            let x = points::<F>(g, gm.dim());
            let t = time(g, &*s);
            let trace = g.pick(&[TraceMethod::Exact, TraceMethod::FiniteDifference]);
            on(implicit_score_matching(&model, x.view(), t, trace), |l| {
                finite("implicit score matching rows", &l.rows)?;
                finite_scalar("implicit score matching mean", l.mean)
            })?;
            let ssm = build!(SlicedScoreMatching::new(g.small_count(3)))
                .variance_reduced(g.chance(0.5))
                .probe(g.pick(&[Probe::Rademacher, Probe::Gaussian]));
            on(ssm.loss(&model, x.view(), t, &mut g.rng()), |l| {
                finite("sliced score matching rows", &l.rows)?;
                finite_scalar("sliced score matching mean", l.mean)
            })
        }
        2 => {
            let (sched, sde) = build!(sde::<F>(g));
            let gm = build!(mixture::<F>(g));
            let d = gm.dim();
            let m = g.small_count(d);
            let a = array2::<F>(g, m, d, 1.0);
            let noise = Array2::from_diag(&Array1::from_elem(m, lit::<F>(g.near(0.1).abs())));
            let obs = build!(LinearGaussian::new(a, noise));
            let y = Array1::from_iter(g.floats(m, 3.0).into_iter().map(lit::<F>));
            let model = AnalyticScore::new(gm.clone(), sched.clone());
            let n = g.small_count(4);
            let built = build!(samplers::build(g, &sde, &gm, n));
            let x0 = build!(built.sampler.initial_state(n, d, &mut g.rng()));
            if g.chance(0.5) {
                let lik = if g.chance(0.5) {
                    build!(TweedieLikelihood::dps(obs, y.view(), sched.clone()))
                } else {
                    build!(TweedieLikelihood::pigdm(obs, y.view(), sched.clone()))
                };
                let guided = build!(Guided::new(&model, lik, lit(g.near(1.0))));
                on(built.sampler.run(&guided, x0, &mut g.rng()), |run| {
                    finite(&format!("DPS/ΠGDM {} samples", built.label), &run.samples)
                })
            } else {
                let mut c = build!(ObservationConstraint::new(
                    sched.clone(),
                    &obs,
                    y.view(),
                    g.u64()
                ));
                on(
                    built.sampler.run_with(&model, x0, &mut g.rng(), &mut c),
                    |run| finite(&format!("projected {} samples", built.label), &run.samples),
                )
            }
        }
        3 => {
            let table = build!(DiscreteVp::<F>::ddpm_linear(
                g.small_count(50),
                lit(g.near(1e-4).abs()),
                lit(g.near(0.02).abs())
            ));
            let variance = g.pick(&[DdpmVariance::Beta, DdpmVariance::BetaTilde]);
            let gm = build!(mixture::<F>(g));
            let model = AnalyticScore::new(gm.clone(), table.clone());
            let bound = build!(DdpmBound::new(table, variance).prior_std(lit(g.near(1.0))));
            let x = points::<F>(g, gm.dim());
            on(bound.evaluate(&model, x.view(), &mut g.rng()), |v| {
                finite("DDPM bound total", &v.total)
            })
        }
        _ => {
            let (sched, sde) = build!(sde::<F>(g));
            let gm = build!(mixture::<F>(g));
            let lik = build!(
                OdeLikelihood::new(sde.clone())
                    .and_then(|l| l.tolerances(lit(g.near(1e-3)), lit(g.near(1e-3))))
                    .and_then(|l| l.max_steps(g.small_count(200)))
                    .and_then(|l| l.exact_mixture_prior(&gm))
            );
            let model = AnalyticScore::new(gm.clone(), sched.clone());
            let x = points::<F>(g, gm.dim());
            on(lik.log_prob(&model, x.view(), &mut g.rng()), |l| {
                finite("likelihood (exact prior) log_p", &l.log_p)?;
                finite("likelihood (exact prior) latent", &l.latent)
            })
        }
    }
}
