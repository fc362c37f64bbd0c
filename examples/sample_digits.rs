//! Sample the digits network trained by `train_digits`, look at the samples, and measure
//! them:
//!
//! ```text
//! cargo run --release --features candle --example train_digits      # first: the checkpoint
//! cargo run --release --features candle --example sample_digits
//! cargo run --release --features candle --example sample_digits -- --net mlp --bpd-images 360
//! ```
//!
//! With the moving-average weights of the checkpoint, as score models on the VP SDE:
//!
//! * **samples.png** — unconditional samples from predictor–corrector (reverse diffusion +
//!   Langevin, snr 0.16), DPM-Solver++ 3M (log-SNR grid) and the probability-flow ODE
//!   (adaptive RK45), beside held-out test images.
//! * **classes.png** — class-conditional samples by classifier guidance (Song et al. 2021,
//!   §5; Dhariwal & Nichol 2021): a time-dependent classifier `p_t(y | x_t)` (an MLP on
//!   `x_t` and Fourier features of `t`) is trained here by cross-entropy on noised training
//!   images, and `∇ log p_t(y | x)` (by autograd) is added to the score with scale `w`.
//! * **inpainting.png** — the top half of test images given, the bottom half imputed by
//!   replacement (Song et al. 2021, App. I.2) with PC.
//! * **metrics.md** — bits/dim of the test images under the model through the
//!   probability-flow ODE likelihood (exact divergence by autograd, and Hutchinson's
//!   estimator) beside a Gaussian and a Gaussian mixture fitted to the training images;
//!   a k-nearest-neighbour classifier's verdict on generated samples; nearest-neighbour
//!   distances of samples and of test images to the training set.
//!
//! Pictures and tables go to `target/examples-out/sample_digits/`.

#[allow(dead_code)]
mod common;
#[path = "common/digits.rs"]
mod digits_common;

use common::BoxResult;
use digits_common::{Flags, ImageRow};
use ndarray::{Array1, Array2, Axis, s};
use rand::SeedableRng;
use score_sde::backend::candle::candle_core::{DType, Device};
use score_sde::backend::candle::candle_nn::{VarBuilder, VarMap};
use score_sde::backend::candle::{
    AutogradDivergence, CandleNetwork, Checkpoint, ClassifierFit, EMA, MlpConfig, NetworkSpec,
    TimeClassifier, TimeMlp, TimeModule, fit_classifier, init_seeded, named_vars,
};
use score_sde::backend::digits::{
    CLASSES, DIM, Digits, EmConfig, SIDE, fit_gaussian, fit_mixture, knn_classify, nearest,
    quantize,
};
use score_sde::condition::{ClassifierGuidance, Imputation};
use score_sde::gmm::GaussianMixture;
use score_sde::likelihood::{DivergenceMethod, OdeLikelihood, bits_per_dim};
use score_sde::prelude::*;
use score_sde::sample::{Dopri5, DpmSolverPp, Pc, PredictorKind, ProbabilityFlow};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

const USAGE: &str = "sample_digits [--net unet|mlp] [--checkpoint FILE] [--n N] [--pc-steps N] \
[--dpm-steps N] [--classifier-steps N] [--guidance W] [--bpd-images N] [--exact-images N] [--seed S] \
[--rtol X] [--quick (a small mixture-baseline search: CI)]";

/// Held-out test images and the split's seed (as `train_digits`).
const TEST_IMAGES: usize = 360;
const SPLIT_SEED: u64 = 0;

struct Settings {
    checkpoint: std::path::PathBuf,
    n: usize,
    pc_steps: usize,
    dpm_steps: usize,
    classifier_steps: usize,
    guidance: f64,
    bpd_images: usize,
    exact_images: usize,
    seed: u64,
    rtol: f64,
    quick: bool,
}

fn settings() -> BoxResult<Settings> {
    let f = Flags::parse(
        &[
            "net",
            "checkpoint",
            "n",
            "pc-steps",
            "dpm-steps",
            "classifier-steps",
            "guidance",
            "bpd-images",
            "exact-images",
            "seed",
            "rtol",
        ],
        &["quick"],
        USAGE,
    )?;
    let net = f.string("net", "unet");
    let default = common::default_out_dir("train_digits")?.join(format!("{net}.safetensors"));
    Ok(Settings {
        checkpoint: f.string("checkpoint", &default.to_string_lossy()).into(),
        n: f.get("n", 500)?,
        pc_steps: f.get("pc-steps", 250)?,
        dpm_steps: f.get("dpm-steps", 25)?,
        classifier_steps: f.get("classifier-steps", 3000)?,
        guidance: f.get("guidance", 2.0)?,
        bpd_images: f.get("bpd-images", TEST_IMAGES)?,
        exact_images: f.get("exact-images", 24)?,
        seed: f.get("seed", 0)?,
        rtol: f.get("rtol", 1e-5)?,
        quick: f.has("quick"),
    })
}

/// The checkpoint's averaged weights as a network in `dtype` (plain tensors: no gradients
/// of the parameters are ever formed).
fn network(ck: &Checkpoint, spec: &NetworkSpec, dtype: DType) -> BoxResult<Arc<dyn TimeModule>> {
    Ok(spec.build(ck.var_builder(EMA, dtype, &Device::Cpu)?)?)
}

fn main() -> BoxResult<()> {
    let s = settings()?;
    let dir = common::default_out_dir("sample_digits")?;
    let ck = Checkpoint::load(&s.checkpoint, &Device::Cpu)
        .map_err(|e| format!("{e}\n(run the train_digits example first, or pass --checkpoint)"))?;
    let spec = NetworkSpec::from_json(ck.metadata("network").unwrap_or("?"))?;
    println!(
        "checkpoint {} : {} after {} steps",
        s.checkpoint.display(),
        spec.kind(),
        ck.metadata("step").unwrap_or("?")
    );
    let digits = Digits::load(Digits::default_path())?;
    let (train, test) = digits.split(TEST_IMAGES, SPLIT_SEED)?;
    let sde = VpSde::<f32>::default();
    let sched = *sde.schedule();
    let model = Parameterized::noise(
        CandleNetwork::new(network(&ck, &spec, DType::F32)?, DIM),
        sched,
    );
    let mut pictures = Vec::new();
    let mut report = String::new();
    let train_c: Array2<f64> = train.centres();
    let test_c: Array2<f64> = test.centres();

    // ---- unconditional samples from three samplers
    let samplers: Vec<(String, Box<dyn Sampler<f32>>)> = vec![
        (
            format!("PC (RD + Langevin), {} steps", s.pc_steps),
            Box::new(
                Pc::new(sde.clone(), TimeGrid::uniform(&sched, s.pc_steps)?)?
                    .predictor(PredictorKind::ReverseDiffusion)?
                    .snr(0.16)?,
            ),
        ),
        (
            format!("DPM-Solver++ 3M, {} steps", s.dpm_steps),
            Box::new(
                DpmSolverPp::new(sde.clone(), TimeGrid::log_snr(&sched, s.dpm_steps)?)?.order(3)?,
            ),
        ),
        (
            "PF-ODE, RK45 (rtol = atol = 1e-4)".into(),
            Box::new(ProbabilityFlow::adaptive(
                sde.clone(),
                Dopri5::new(1e-4, 1e-4)?,
            )),
        ),
    ];
    let mut runs = Vec::new();
    for (name, sampler) in &samplers {
        let clock = Instant::now();
        let run = sampler.sample(
            &model,
            s.n,
            DIM,
            &mut rand_pcg::Pcg64::seed_from_u64(s.seed),
        )?;
        let secs = clock.elapsed().as_secs_f64();
        println!(
            "{name:<38} NFE {:>5}  {secs:>7.1} s  ({:.0} images/s)",
            run.nfe,
            s.n as f64 / secs
        );
        runs.push((name.clone(), run.nfe, run.samples.mapv(f64::from)));
    }
    let show = s.n.min(12);
    let mut rows = vec![ImageRow {
        label: "held-out digits".into(),
        pixels: test_c.slice(s![..show, ..]),
    }];
    for (name, nfe, x) in &runs {
        rows.push(ImageRow {
            label: format!("{} (NFE {nfe})", name.split(',').next().unwrap_or(name)),
            pixels: x.slice(s![..show, ..]),
        });
    }
    pictures.push(digits_common::image_grid(
        &dir.join("samples.png"),
        &format!("{} on the digits: samples (EMA weights)", spec.kind()),
        SIDE,
        6,
        &rows,
    )?);

    // ---- a time-dependent classifier and classifier guidance
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let clf_net = TimeMlp::with_output(DIM, CLASSES, &MlpConfig::default().hidden(256), vb)?;
    init_seeded(&varmap, s.seed + 11)?;
    let classifier = TimeClassifier::new(clf_net, DIM, CLASSES);
    let deq: Array2<f32> = train.dequantize(&mut rand_pcg::Pcg64::seed_from_u64(s.seed + 12))?;
    let clock = Instant::now();
    let losses = fit_classifier(
        &classifier,
        named_vars(&varmap)?,
        &sde,
        deq.view(),
        train.labels(),
        &ClassifierFit::default()
            .steps(s.classifier_steps)
            .batch_size(256)
            .lr(1e-3),
        &mut rand_pcg::Pcg64::seed_from_u64(s.seed + 13),
    )?;
    let test_f: Array2<f32> = test.centres();
    let clf_acc = |t: f32| -> BoxResult<f64> {
        let p = classifier.predict(test_f.view(), t)?;
        Ok(accuracy(&p, test.labels()))
    };
    println!(
        "time-dependent classifier: {} steps in {:.1} s, final loss {:.3}; test accuracy {:.3} at t = 0.001, {:.3} at t = 0.5",
        s.classifier_steps,
        clock.elapsed().as_secs_f64(),
        losses.last().copied().unwrap_or(f64::NAN),
        clf_acc(1e-3)?,
        clf_acc(0.5)?
    );
    let clock = Instant::now();
    let per_class = (s.n / CLASSES).max(1);
    let dpm = DpmSolverPp::new(sde.clone(), TimeGrid::log_snr(&sched, s.dpm_steps)?)?.order(3)?;
    let mut guided: Vec<(f64, Array2<f64>, Vec<u8>)> = Vec::new();
    for &w in &[1.0, s.guidance] {
        let mut xs = Vec::new();
        let mut labels = Vec::new();
        for class in 0..CLASSES {
            let g = ClassifierGuidance::new(&model, &classifier, class, w as f32)?;
            let mut rng = rand_pcg::Pcg64::seed_from_u64(s.seed + 100 + class as u64);
            xs.push(
                dpm.sample(&g, per_class, DIM, &mut rng)?
                    .samples
                    .mapv(f64::from),
            );
            labels.extend(std::iter::repeat_n(class as u8, per_class));
        }
        let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
        guided.push((w, ndarray::concatenate(Axis(0), &views)?, labels));
    }
    println!(
        "classifier guidance: 2 x {} samples in {:.1} s",
        per_class * CLASSES,
        clock.elapsed().as_secs_f64()
    );
    let (w_show, x_show, _) = &guided[guided.len() - 1];
    let show_c = per_class.min(10);
    let class_rows: Vec<ImageRow<'_>> = (0..CLASSES)
        .map(|c| ImageRow {
            label: format!("digit {c}"),
            pixels: x_show.slice(s![c * per_class..c * per_class + show_c, ..]),
        })
        .collect();
    pictures.push(digits_common::image_grid(
        &dir.join("classes.png"),
        &format!(
            "classifier guidance, w = {w_show}, DPM-Solver++ 3M ({} steps)",
            s.dpm_steps
        ),
        SIDE,
        6,
        &class_rows,
    )?);

    // ---- inpainting: top half given
    let clock = Instant::now();
    let n_inp = test.len().min(10);
    let given = test.select(&(0..n_inp).collect::<Vec<_>>())?;
    let given_x: Array2<f32> = given.centres();
    let mask: Vec<bool> = (0..DIM).map(|j| j < DIM / 2).collect();
    let pc = Pc::new(sde.clone(), TimeGrid::uniform(&sched, s.pc_steps)?)?
        .predictor(PredictorKind::ReverseDiffusion)?
        .snr(0.16)?;
    let mut inpainted = Vec::new();
    for k in 0..3u64 {
        let mut imp = Imputation::per_row(sched, &mask, given_x.view(), s.seed + 200 + k)?;
        let mut rng = rand_pcg::Pcg64::seed_from_u64(s.seed + 300 + k);
        let x0 = pc.initial_state(n_inp, DIM, &mut rng)?;
        inpainted.push(
            pc.run_with(&model, x0, &mut rng, &mut imp)?
                .samples
                .mapv(f64::from),
        );
    }
    println!(
        "inpainting: 3 x {n_inp} images in {:.1} s",
        clock.elapsed().as_secs_f64()
    );
    let mut masked = given_x.mapv(f64::from);
    masked.slice_mut(s![.., DIM / 2..]).fill(f64::NAN);
    let orig = given_x.mapv(f64::from);
    let mut inp_rows = vec![
        ImageRow {
            label: "held-out digit".into(),
            pixels: orig.view(),
        },
        ImageRow {
            label: "given: top half".into(),
            pixels: masked.view(),
        },
    ];
    for (k, x) in inpainted.iter().enumerate() {
        inp_rows.push(ImageRow {
            label: format!("imputed, seed {}", k + 1),
            pixels: x.view(),
        });
    }
    pictures.push(digits_common::image_grid(
        &dir.join("inpainting.png"),
        &format!("inpainting by replacement, PC {} steps", s.pc_steps),
        SIDE,
        6,
        &inp_rows,
    )?);

    // ---- bits/dim on held-out test images
    let n_bpd = s.bpd_images.clamp(1, test.len());
    let n_exact = s.exact_images.min(n_bpd);
    let x_test: Array2<f64> = test
        .select(&(0..n_bpd).collect::<Vec<_>>())?
        .dequantize(&mut rand_pcg::Pcg64::seed_from_u64(s.seed + 400))?;
    let x_train: Array2<f64> =
        train.dequantize(&mut rand_pcg::Pcg64::seed_from_u64(s.seed + 401))?;
    let per_image = |log_p: &Array1<f64>| -> BoxResult<Array1<f64>> {
        Ok(bits_per_dim(log_p.view(), DIM, Digits::scaling())?)
    };
    let clock = Instant::now();
    let gauss = fit_gaussian(x_train.view(), 0.0)?;
    let (mix, mix_desc) = mixture_baseline(&x_train, s.quick)?;
    println!("baselines fitted in {:.1} s", clock.elapsed().as_secs_f64());
    let sde64 = VpSde::<f64>::default();
    // Chunks of 4 images (4·64 rows per pass): the U-Net's patch matrices for 64 images
    // would take several GB in f64.
    let model64 = AutogradDivergence::new(
        CandleNetwork::new(network(&ck, &spec, DType::F64)?, DIM),
        *sde64.schedule(),
        Parameterization::Noise,
    )
    .chunk_rows(4);
    // Per-image bits/dim of every model: (label, values on the first images).
    let mut bpd_rows: Vec<(String, Array1<f64>)> = Vec::new();
    for (label, method, n_img) in [
        (
            "score model, PF-ODE, exact divergence (autograd)",
            DivergenceMethod::Exact,
            n_exact,
        ),
        (
            "score model, PF-ODE, Hutchinson (1 Rademacher probe)",
            DivergenceMethod::hutchinson(1),
            n_bpd,
        ),
    ] {
        if n_img == 0 {
            continue;
        }
        let lik = OdeLikelihood::new(sde64.clone())?
            .tolerances(s.rtol, s.rtol)?
            .divergence(method)?;
        let clock = Instant::now();
        let r = lik.log_prob(
            &model64,
            x_test.slice(s![..n_img, ..]),
            &mut rand_pcg::Pcg64::seed_from_u64(s.seed + 500),
        )?;
        let b = per_image(&r.log_p)?;
        println!(
            "bits/dim, {label}: {:.3} on {n_img} test images (NFE {}, {:.0} s)",
            b.mean().unwrap_or(f64::NAN),
            r.nfe,
            clock.elapsed().as_secs_f64()
        );
        bpd_rows.push((format!("{label}, NFE {}", r.nfe), b));
    }
    bpd_rows.push((
        "single Gaussian (maximum likelihood)".into(),
        per_image(&gauss.log_prob(x_test.view())?)?,
    ));
    bpd_rows.push((
        format!("Gaussian mixture, {mix_desc}"),
        per_image(&mix.log_prob(x_test.view())?)?,
    ));

    // ---- classifier accuracy and nearest neighbours
    let clock = Instant::now();
    let knn_k = 3;
    let knn_test = accuracy_u8(
        &knn_classify(test_c.view(), train_c.view(), train.labels(), knn_k)?,
        test.labels(),
    );
    let nn_test: Vec<f64> = nearest(test_c.view(), train_c.view())?
        .iter()
        .map(|p| p.1)
        .collect();
    let copies = |x: &Array2<f64>| -> usize {
        let q = x.mapv(quantize);
        let levels = train.levels();
        q.rows()
            .into_iter()
            .filter(|r| levels.rows().into_iter().any(|t| t == *r))
            .count()
    };
    let test_copies = copies(&test_c);
    let _ = writeln!(
        report,
        "# sample_digits: {} ({} steps)\n",
        spec.kind(),
        ck.metadata("step").unwrap_or("?")
    );
    let _ = writeln!(
        report,
        "## Bits per dimension on held-out test images (17 levels, x in [-1, 1))\n"
    );
    let mean_se = |b: ndarray::ArrayView1<f64>| -> String {
        let m = b.mean().unwrap_or(f64::NAN);
        if b.len() > 1 {
            format!("{m:.3} ± {:.3}", b.std(1.0) / (b.len() as f64).sqrt())
        } else {
            format!("{m:.3}")
        }
    };
    let _ = writeln!(
        report,
        "One dequantisation of each test image; mean ± standard error over images.\n"
    );
    let _ = writeln!(
        report,
        "| model | first {n_exact} test images | all {n_bpd} test images |"
    );
    let _ = writeln!(report, "|---|---|---|");
    for (label, b) in &bpd_rows {
        let first = if b.len() >= n_exact && n_exact > 0 {
            mean_se(b.slice(s![..n_exact]))
        } else {
            "—".into()
        };
        let all = if b.len() == n_bpd {
            mean_se(b.view())
        } else {
            "—".into()
        };
        let _ = writeln!(report, "| {label} | {first} | {all} |");
    }
    let _ = writeln!(
        report,
        "| uniform on [-1, 1)^64 | {u:.3} | {u:.3} |",
        u = Digits::scaling().offset_bits() + 1.0
    );
    let _ = writeln!(
        report,
        "\n## Samples: a {knn_k}-NN classifier's verdict and nearest training images\n"
    );
    let _ = writeln!(
        report,
        "{knn_k}-NN classifier on the training images (bin centres): accuracy {knn_test:.3} on the test images. \
         Distances are Euclidean in [-1, 1]^64; 'copies' are samples whose quantised levels equal a training image.\n"
    );
    let _ = writeln!(
        report,
        "| images | N | NFE | kNN: intended class | kNN class histogram (0-9) | NN distance to train: 5% / median | copies |"
    );
    let _ = writeln!(report, "|---|---|---|---|---|---|---|");
    let q = |v: &[f64], p: f64| -> f64 {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * p).round() as usize]
    };
    let _ = writeln!(
        report,
        "| test images | {} | | {knn_test:.3} | {} | {:.2} / {:.2} | {test_copies} |",
        test.len(),
        histogram(&knn_classify(
            test_c.view(),
            train_c.view(),
            train.labels(),
            knn_k
        )?),
        q(&nn_test, 0.05),
        q(&nn_test, 0.5)
    );
    // One row per set of samples: the k-NN verdict (against the intended classes, if any),
    // the class histogram, nearest-neighbour distances and exact copies.
    let mut row =
        |label: &str, nfe: usize, x: &Array2<f64>, intended: Option<&[u8]>| -> BoxResult<()> {
            let pred = knn_classify(x.view(), train_c.view(), train.labels(), knn_k)?;
            let nn: Vec<f64> = nearest(x.view(), train_c.view())?
                .iter()
                .map(|p| p.1)
                .collect();
            let verdict = match intended {
                Some(l) => format!("**{:.3}**", accuracy_u8(&pred, l)),
                None => "(unconditional)".into(),
            };
            let _ = writeln!(
                report,
                "| {label} | {} | {nfe} | {verdict} | {} | {:.2} / {:.2} | {} |",
                x.nrows(),
                histogram(&pred),
                q(&nn, 0.05),
                q(&nn, 0.5),
                copies(x)
            );
            Ok(())
        };
    for (name, nfe, x) in &runs {
        row(name, *nfe, x, None)?;
    }
    for (w, x, labels) in &guided {
        let label = format!("classifier guidance w = {w}, DPM-Solver++ 3M");
        row(&label, s.dpm_steps, x, Some(labels))?;
    }
    println!(
        "neighbour metrics in {:.1} s",
        clock.elapsed().as_secs_f64()
    );
    std::fs::write(dir.join("metrics.md"), &report)?;
    println!("\n{report}");
    pictures.push(dir.join("metrics.md"));
    common::report(&pictures);
    Ok(())
}

/// The mixture baseline: components and ridge chosen on a fifth of the training images
/// held out from the fit (K ∈ {5, 10, 20}, ridge ∈ {1e-3, 3e-3, 1e-2, 3e-2}), then refitted
/// on all training images. `quick` (CI, where the crate is built without optimisation): K = 2,
/// ridge 1e-2, 2 EM iterations on 200 images.
fn mixture_baseline(
    x_train: &Array2<f64>,
    quick: bool,
) -> BoxResult<(GaussianMixture<f64>, String)> {
    let x_train = if quick {
        x_train.slice(s![..x_train.nrows().min(200), ..])
    } else {
        x_train.view()
    };
    let n_val = x_train.nrows() / 5;
    let (val, fit) = (
        x_train.slice(s![..n_val, ..]),
        x_train.slice(s![n_val.., ..]),
    );
    let (ks, ridges, iters): (&[usize], &[f64], usize) = if quick {
        (&[2], &[1e-2], 2)
    } else {
        (&[5, 10, 20], &[1e-3, 3e-3, 1e-2, 3e-2], 300)
    };
    let mut best = (f64::NEG_INFINITY, 0, 0.0);
    for &k in ks {
        for &ridge in ridges {
            let cfg = EmConfig::default()
                .components(k)
                .ridge(ridge)
                .max_iter(iters);
            let (gm, _) = fit_mixture(fit, &cfg)?;
            let ll = gm.log_prob(val)?.mean().unwrap_or(f64::NEG_INFINITY);
            if ll > best.0 {
                best = (ll, k, ridge);
            }
        }
    }
    let (_, k, ridge) = best;
    let cfg = EmConfig::default()
        .components(k)
        .ridge(ridge)
        .max_iter(iters);
    let (gm, rep) = fit_mixture(x_train, &cfg)?;
    Ok((
        gm,
        format!(
            "K = {k}, ridge {ridge} (chosen on a validation fifth of the training images; EM {} iterations)",
            rep.iterations
        ),
    ))
}

fn accuracy(pred: &[usize], labels: &[u8]) -> f64 {
    let hits = pred
        .iter()
        .zip(labels)
        .filter(|(p, l)| **p == **l as usize)
        .count();
    hits as f64 / labels.len().max(1) as f64
}

fn accuracy_u8(pred: &[u8], labels: &[u8]) -> f64 {
    let hits = pred.iter().zip(labels).filter(|(p, l)| p == l).count();
    hits as f64 / labels.len().max(1) as f64
}

fn histogram(pred: &[u8]) -> String {
    let mut h = [0usize; CLASSES];
    for &p in pred {
        h[(p as usize).min(CLASSES - 1)] += 1;
    }
    h.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}
