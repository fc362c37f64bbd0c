//! The candle pieces of the digits work against closed forms and PyTorch: the U-Net and the
//! MLP against PyTorch's forward pass on a fixture, the initialisation scheme, AdamW against
//! its first-step closed form and candle's AdamW, the EMA, checkpoints (a resumed run equals
//! an uninterrupted one bit for bit; bad files are errors), the autograd divergence against
//! `tr W` of a linear map and against finite differences, and the classifier's gradient.
#![cfg(feature = "candle")]

use ndarray::{Array1, Array2, ArrayView2, s};
use rand::{Rng, SeedableRng};
use score_sde::backend::candle::candle_core::{self, DType, Device, Tensor, Var};
use score_sde::backend::candle::candle_nn::{self, Optimizer, VarBuilder, VarMap};
use score_sde::backend::candle::{
    ADAM, Adam, AdamParams, AutogradDivergence, CandleNetwork, Checkpoint, ClassifierFit,
    DsmTrainer, Ema, FitConfig, MlpConfig, NET, NetworkSpec, TimeClassifier, TimeMlp, TimeModule,
    TimeUnet, UnetConfig, fit_classifier, init_seeded, named_vars,
};
use score_sde::condition::ClassifierGradient;
use score_sde::likelihood::{Divergence, DivergenceMethod};
use score_sde::prelude::*;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/digits_nets.safetensors")
}

fn tensor2(a: ArrayView2<f64>) -> Tensor {
    Tensor::from_iter(a.iter().copied(), &Device::Cpu)
        .and_then(|t| t.reshape(a.dim()))
        .unwrap()
}

fn to_array(t: &Tensor) -> Array2<f64> {
    let (n, d) = t.dims2().unwrap();
    let v = t
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    Array2::from_shape_vec((n, d), v).unwrap()
}

/// `tests/fixtures/digits_nets.safetensors` (written by `scripts/torch_digits.py fixture`):
/// small versions of both networks initialised by PyTorch (group-norm scales and shifts
/// perturbed so that swapping them would show), five inputs and PyTorch's float64 outputs.
#[test]
fn both_networks_reproduce_pytorch_on_the_fixture() {
    let ck = Checkpoint::load(fixture(), &Device::Cpu).unwrap();
    for name in ["mlp", "unet"] {
        let spec = NetworkSpec::from_json(ck.metadata(name).unwrap()).unwrap();
        let prefix = format!("{name}.net.");
        let net = spec
            .build(ck.var_builder(&prefix, DType::F64, &Device::Cpu).unwrap())
            .unwrap();
        let io = ck.section(&format!("{name}."));
        let y = net.forward_t(&io["x"], &io["t"]).unwrap();
        let (got, want) = (to_array(&y), to_array(&io["y"]));
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let err = (&got - &want).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        // Both sides compute in float64 and differ only in summation order (a few hundred
        // terms per output): ~1e-14 relative. A wrong layer, order or normalisation is O(1).
        assert!(
            err <= 1e-10 * scale.max(1.0),
            "{name}: max error {err:e} (outputs up to {scale})"
        );
        // Every PyTorch parameter is one of ours and vice versa (names and shapes).
        let varmap = VarMap::new();
        spec.build(VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu))
            .unwrap();
        let ours: BTreeSet<(String, Vec<usize>)> = named_vars(&varmap)
            .unwrap()
            .into_iter()
            .map(|(n, v)| (n, v.dims().to_vec()))
            .collect();
        let theirs: BTreeSet<(String, Vec<usize>)> = ck
            .section(&prefix)
            .into_iter()
            .map(|(n, t)| (n, t.dims().to_vec()))
            .collect();
        assert_eq!(ours, theirs, "{name}: parameter names and shapes");
    }
}

#[test]
fn init_seeded_draws_pytorchs_scheme() {
    let varmap = VarMap::new();
    let cfg = UnetConfig::default().channels(16);
    TimeUnet::new(
        8,
        &cfg,
        VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu),
    )
    .unwrap();
    init_seeded(&varmap, 3).unwrap();
    let vars = named_vars(&varmap).unwrap();
    let get = |name: &str| -> Vec<f64> {
        let v = &vars.iter().find(|(n, _)| n == name).unwrap().1;
        v.flatten_all().unwrap().to_vec1::<f64>().unwrap()
    };
    // Group norms: scale 1, shift 0.
    assert!(get("mid.res1.norm1.weight").iter().all(|&v| v == 1.0));
    assert!(get("mid.res1.norm1.bias").iter().all(|&v| v == 0.0));
    // A 3×3 conv 32 → 32 and its bias: U(±1/√(32·9)); the weight's 9216 draws fill the
    // interval (max within 1% of the bound) with the uniform's variance b²/3 (standard error
    // of the sample variance ≈ 0.0093 of it; 5% is five of those).
    let b = 1.0 / (32.0f64 * 9.0).sqrt();
    for name in ["mid.res1.conv1.weight", "mid.res1.conv1.bias"] {
        let w = get(name);
        assert!(w.iter().all(|v| v.abs() <= b), "{name}");
    }
    let w = get("mid.res1.conv1.weight");
    let max = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(max > 0.99 * b);
    let var = w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64;
    assert!((var / (b * b / 3.0) - 1.0).abs() < 0.05, "{var}");
    // A linear layer keeps the earlier rule: fan-in = columns.
    let bl = 1.0 / 128.0f64.sqrt();
    assert!(get("temb.1.weight").iter().all(|v| v.abs() <= bl));
    // The same seed, the same weights.
    let again = VarMap::new();
    TimeUnet::new(
        8,
        &cfg,
        VarBuilder::from_varmap(&again, DType::F64, &Device::Cpu),
    )
    .unwrap();
    init_seeded(&again, 3).unwrap();
    let w2 = named_vars(&again).unwrap();
    for ((n1, v1), (n2, v2)) in vars.iter().zip(&w2) {
        assert_eq!(n1, n2);
        let d = (v1.as_tensor() - v2.as_tensor()).unwrap().abs().unwrap();
        assert_eq!(
            d.flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap(),
            0.0
        );
    }
}

/// `L = Σ c ⊙ θ²/2` has gradient `c ⊙ θ`.
fn quadratic_loss(theta: &Var, c: &Tensor) -> Tensor {
    let l = (theta.as_tensor().sqr().unwrap() * c)
        .unwrap()
        .sum_all()
        .unwrap();
    (l * 0.5).unwrap()
}

#[test]
fn adam_takes_the_closed_form_first_step_and_matches_candles_adamw() {
    let dev = Device::Cpu;
    let theta0 = Tensor::new(&[1.0f64, -2.0, 0.5, 3.0], &dev).unwrap();
    let c = Tensor::new(&[1.0f64, 0.1, 10.0, 1e-3], &dev).unwrap();
    let params = AdamParams::default().lr(0.01).weight_decay(0.1);
    let ours_var = Var::from_tensor(&theta0).unwrap();
    let mut ours = Adam::new(vec![("w".into(), ours_var.clone())], params).unwrap();
    ours.backward_step(&quadratic_loss(&ours_var, &c)).unwrap();
    // Step 1: m̂ = g, v̂ = g², so θ₁ = θ₀ (1 − ηλ) − η g/(|g| + ε) with g = c θ₀.
    let t0 = theta0.to_vec1::<f64>().unwrap();
    let cs = c.to_vec1::<f64>().unwrap();
    for (i, got) in ours_var.to_vec1::<f64>().unwrap().iter().enumerate() {
        let g = cs[i] * t0[i];
        let want = t0[i] * (1.0 - 0.01 * 0.1) - 0.01 * g / (g.abs() + 1e-8);
        assert!((got - want).abs() < 1e-15, "{got} vs {want}");
    }
    // Five more steps beside candle's AdamW run from θ₀ too: the same formula in the same
    // order, so the same numbers up to rounding.
    let replay = Var::from_tensor(&theta0).unwrap();
    let candle_params = candle_nn::ParamsAdamW {
        lr: 0.01,
        weight_decay: 0.1,
        ..Default::default()
    };
    let mut theirs = candle_nn::AdamW::new(vec![replay.clone()], candle_params).unwrap();
    theirs.backward_step(&quadratic_loss(&replay, &c)).unwrap();
    for _ in 0..5 {
        ours.backward_step(&quadratic_loss(&ours_var, &c)).unwrap();
        theirs.backward_step(&quadratic_loss(&replay, &c)).unwrap();
    }
    let (a, b) = (
        ours_var.to_vec1::<f64>().unwrap(),
        replay.to_vec1::<f64>().unwrap(),
    );
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-15 * x.abs().max(1.0), "{x} vs {y}");
    }
    assert_eq!(ours.steps(), 6);
    assert!(
        Adam::new(
            vec![("w".into(), ours_var.clone()), ("w".into(), ours_var)],
            params
        )
        .is_err()
    );
    assert!(Adam::new(vec![], AdamParams::default().lr(f64::NAN)).is_err());
}

#[test]
fn the_ema_follows_its_recursion_with_warm_up() {
    let v = Var::new(&[0.0f64, 10.0], &Device::Cpu).unwrap();
    let mut ema = Ema::new(vec![("w".into(), v.clone())], 0.9).unwrap();
    let mut want = [0.0f64, 10.0];
    for (n, value) in [[1.0, 2.0], [4.0, -2.0], [3.0, 3.0]]
        .into_iter()
        .enumerate()
    {
        v.set(&Tensor::new(&value, &Device::Cpu).unwrap()).unwrap();
        // d = min(0.9, (1 + n)/(10 + n)): 0.1, 2/11, 3/12.
        let d = 0.9f64.min((1.0 + n as f64) / (10.0 + n as f64));
        assert!((ema.current_decay() - d).abs() < 1e-15);
        ema.update().unwrap();
        for j in 0..2 {
            want[j] = d * want[j] + (1.0 - d) * value[j];
        }
    }
    let got = ema.tensors()[0].1.to_vec1::<f64>().unwrap();
    assert!(
        got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-14),
        "{got:?} vs {want:?}"
    );
    assert!(Ema::new(vec![], 1.0).is_err());
}

fn ring_data(n: usize) -> Array2<f32> {
    problems::ring2d::<f32>()
        .sample(n, &mut rand_pcg::Pcg64::seed_from_u64(5))
        .unwrap()
}

/// Trains a tiny MLP from `start` to `stop` (per-step generators seeded by the step, as
/// `train_digits` does), restoring from `resume` first if given; returns the final weights,
/// EMA and the checkpoint it would save.
fn run(
    data: &Array2<f32>,
    start: usize,
    stop: usize,
    resume: Option<&PathBuf>,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, Checkpoint) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let mlp = TimeMlp::new(2, &MlpConfig::default().hidden(16).layers(2), vb).unwrap();
    init_seeded(&varmap, 1).unwrap();
    let sde = VpSde::<f32>::default();
    let model = Parameterized::noise(CandleNetwork::new(mlp, 2), *sde.schedule());
    let cfg = FitConfig::default().batch_size(32).lr(1e-2);
    let mut trainer = DsmTrainer::from_varmap(&model, &varmap, &sde, data.view(), cfg).unwrap();
    let vars = named_vars(&varmap).unwrap();
    let mut ema = Ema::new(vars.clone(), 0.99).unwrap();
    if let Some(path) = resume {
        let ck = Checkpoint::load(path, &Device::Cpu).unwrap();
        let step = ck
            .restore_training(&vars, &mut ema, trainer.optimizer_mut())
            .unwrap();
        assert_eq!(step as usize, start);
    }
    for step in start..stop {
        let mut rng = rand_pcg::Pcg64::new(7, step as u128);
        trainer.step(&mut rng).unwrap();
        ema.update().unwrap();
    }
    let ck = Checkpoint::of_training(&vars, &ema, trainer.optimizer());
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let w = vars.iter().map(|(_, v)| flat(v.as_tensor())).collect();
    let e = ema.tensors().iter().map(|(_, t)| flat(t)).collect();
    (w, e, ck)
}

#[test]
fn a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one() {
    let data = ring_data(500);
    let dir = std::env::temp_dir().join(format!("score_sde_resume_{}", std::process::id()));
    let path = dir.join("half.safetensors");
    let (w_straight, e_straight, _) = run(&data, 0, 8, None);
    let (_, _, half) = run(&data, 0, 4, None);
    half.save(&path).unwrap();
    let (w_resumed, e_resumed, _) = run(&data, 4, 8, Some(&path));
    // Same data, generators, weights, moments and EMA after the restore: bit-identical.
    assert_eq!(w_straight, w_resumed);
    assert_eq!(e_straight, e_resumed);
    // Resuming from the start instead (no optimiser state) differs: the test can fail.
    let (w_fresh, _, _) = run(&data, 4, 8, None);
    assert_ne!(w_straight, w_fresh);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_checkpoints_are_errors() {
    let dir = std::env::temp_dir().join(format!("score_sde_badck_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_, _, ck) = run(&ring_data(100), 0, 1, None);
    let good = dir.join("good.safetensors");
    ck.save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    // Truncated, garbage, a header length far beyond the file, an empty file.
    let mut huge = bytes.clone();
    huge[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    for (name, content) in [
        ("truncated", bytes[..bytes.len() - 10].to_vec()),
        ("garbage", vec![7u8; 64]),
        ("huge_header", huge),
        ("empty", vec![]),
    ] {
        let p = dir.join(format!("{name}.safetensors"));
        std::fs::write(&p, content).unwrap();
        assert!(
            matches!(Checkpoint::load(&p, &Device::Cpu), Err(Error::Io(_))),
            "{name}"
        );
    }
    assert!(Checkpoint::load(dir.join("missing"), &Device::Cpu).is_err());
    // A checkpoint of another network: missing names and wrong shapes are typed errors.
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    TimeMlp::new(2, &MlpConfig::default().hidden(8).layers(2), vb).unwrap();
    let vars = named_vars(&varmap).unwrap();
    let back = Checkpoint::load(&good, &Device::Cpu).unwrap();
    assert!(matches!(
        back.restore(NET, &vars),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        back.restore("nothing.", &vars),
        Err(Error::Model(_))
    ));
    let mut opt = Adam::new(vars, AdamParams::default()).unwrap();
    assert!(opt.load_state(&back.section(ADAM), 1).is_err());
    assert!(back.metadata_u64("absent").is_err());
    assert!(
        back.var_builder("nothing.", DType::F32, &Device::Cpu)
            .is_err()
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `y = x Wᵀ + t·0`: Jacobian `W` at every point, trace `tr W`.
#[derive(Debug)]
struct Linear(Tensor);
impl TimeModule for Linear {
    fn forward_t(&self, x: &Tensor, t: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.0.t()?)?.broadcast_add(&(t * 0.0)?)
    }
    fn dtype(&self) -> DType {
        DType::F64
    }
    fn device(&self) -> &Device {
        &Device::Cpu
    }
}

#[test]
fn the_autograd_divergence_is_the_trace_of_the_jacobian() {
    let d = 6;
    let mut rng = rand_pcg::Pcg64::seed_from_u64(2);
    let w = Array2::from_shape_fn((d, d), |_| rng.random::<f64>() - 0.5);
    let tr: f64 = (0..d).map(|i| w[[i, i]]).sum();
    let x = Array2::from_shape_fn((5, d), |_| rng.random::<f64>() * 2.0 - 1.0);
    let sched = VpLinear::<f64>::default();
    let t = 0.3;
    let (a, s) = (sched.alpha(t), sched.sigma(t));
    // ∇·s = a tr W + b D with the adapter's coefficients: score (1, 0), noise (−1/σ, 0),
    // data (α/σ², −1/σ²), velocity (−α/(σ(α²+σ²)), −1/(α²+σ²)).
    let n2 = a * a + s * s;
    for (kind, want) in [
        (Parameterization::Score, tr),
        (Parameterization::Noise, -tr / s),
        (Parameterization::Data, (a * tr - d as f64) / (s * s)),
        (
            Parameterization::Velocity,
            -a * tr / (s * n2) - d as f64 / n2,
        ),
    ] {
        let net = CandleNetwork::new(Linear(tensor2(w.view())), d);
        let model = AutogradDivergence::new(net, sched, kind).chunk_rows(2);
        let mut out = Array1::zeros(5);
        model
            .divergence(x.view(), t, out.view_mut())
            .unwrap()
            .unwrap();
        // Exact arithmetic on a linear map: rounding only.
        assert!(
            out.iter()
                .all(|v| (v - want).abs() < 1e-11 * want.abs().max(1.0)),
            "{kind:?}: {out} vs {want}"
        );
    }
    let net = CandleNetwork::new(Linear(tensor2(w.view())), d);
    let model = AutogradDivergence::new(net, sched, Parameterization::Noise);
    let mut out = Array1::zeros(5);
    let r = model
        .divergence(x.slice(s![.., ..3]), t, out.view_mut())
        .unwrap();
    assert!(matches!(r, Err(Error::ShapeMismatch { .. })));
}

#[test]
fn the_autograd_divergence_of_the_unet_matches_finite_differences() {
    let varmap = VarMap::new();
    let cfg = UnetConfig::default().channels(8).embedding(16).groups(4);
    let unet = TimeUnet::new(
        8,
        &cfg,
        VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu),
    )
    .unwrap();
    init_seeded(&varmap, 4).unwrap();
    let sched = VpLinear::<f64>::default();
    let model =
        AutogradDivergence::new(CandleNetwork::new(unet, 64), sched, Parameterization::Noise)
            .chunk_rows(3);
    let mut rng = rand_pcg::Pcg64::seed_from_u64(9);
    let x = Array2::from_shape_fn((4, 64), |_| rng.random::<f64>() * 2.0 - 1.0);
    let mut exact = Array1::zeros(4);
    model
        .divergence(x.view(), 0.4, exact.view_mut())
        .unwrap()
        .unwrap();
    let mut fd = Array1::zeros(4);
    let mut div = Divergence::new(DivergenceMethod::FiniteDifference, 4, 64, &mut rng).unwrap();
    div.eval(model.model(), x.view(), 0.4, fd.view_mut())
        .unwrap();
    // f64 central differences with h ≈ 6e-6: relative error ~ε^{2/3} ≈ 4e-11 per entry,
    // summed over 64; 1e-7 relative leaves a wide margin and catches any missing term.
    for (e, f) in exact.iter().zip(&fd) {
        assert!(
            (e - f).abs() < 1e-7 * f.abs().max(1.0),
            "autograd {e} vs FD {f}"
        );
    }
}

#[test]
fn the_classifier_gradient_is_the_derivative_of_its_log_probability() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let mlp = TimeMlp::with_output(3, 4, &MlpConfig::default().hidden(16).layers(2), vb).unwrap();
    init_seeded(&varmap, 6).unwrap();
    let clf = TimeClassifier::new(mlp, 3, 4);
    let x = ndarray::array![[0.2, -0.4, 1.0], [1.5, 0.3, -0.7]];
    let (t, class, h) = (0.35, 2, 1e-5);
    let mut g = Array2::<f64>::zeros((2, 3));
    clf.grad_log_prob(x.view(), t, class, g.view_mut()).unwrap();
    for j in 0..3 {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp.column_mut(j).mapv_inplace(|v| v + h);
        xm.column_mut(j).mapv_inplace(|v| v - h);
        let lp = clf.log_probs(xp.view(), t).unwrap();
        let lm = clf.log_probs(xm.view(), t).unwrap();
        for i in 0..2 {
            let fd = (lp[[i, class]] - lm[[i, class]]) / (2.0 * h);
            // Central difference in f64, h = 1e-5: truncation ~h² ≈ 1e-10, rounding ~1e-11.
            assert!((g[[i, j]] - fd).abs() < 1e-7, "{} vs {fd}", g[[i, j]]);
        }
    }
    assert!(clf.grad_log_prob(x.view(), t, 4, g.view_mut()).is_err());
}

#[test]
fn a_trained_time_dependent_classifier_separates_two_blobs() {
    // Two Gaussian blobs at ±(2, 2) (sd 0.5), labels 0 and 1.
    let mut rng = rand_pcg::Pcg64::seed_from_u64(8);
    let n = 400;
    let labels: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
    let x = Array2::from_shape_fn((n, 2), |(i, _)| {
        let c = if labels[i] == 1 { 2.0 } else { -2.0 };
        c + 0.5 * f32::standard_normal(&mut rng)
    });
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let mlp = TimeMlp::with_output(2, 2, &MlpConfig::default().hidden(32).layers(2), vb).unwrap();
    init_seeded(&varmap, 2).unwrap();
    let clf = TimeClassifier::new(mlp, 2, 2);
    let sde = VpSde::<f32>::default();
    let cfg = ClassifierFit::default().steps(300).batch_size(64).lr(5e-3);
    let losses = fit_classifier(
        &clf,
        named_vars(&varmap).unwrap(),
        &sde,
        x.view(),
        &labels,
        &cfg,
        &mut rng,
    )
    .unwrap();
    // At t_min the blobs are 5.7 sd apart: the Bayes error is ~1e-8, so 98% of 400 is a loose
    // bar. Averaged over t ~ U[t_min, 1] (where the blobs merge as α(t) → 0) the Bayes-optimal
    // cross-entropy is 0.369 nats (numerical integral of E log(1 + e^{−margin}) over t);
    // chance is ln 2 = 0.693. The last 50 steps' mean (s.e. ≈ 0.005) must be within 0.05 of
    // the optimum.
    let pred = clf.predict(x.view(), 1e-3).unwrap();
    let acc = pred
        .iter()
        .zip(&labels)
        .filter(|(p, l)| **p == **l as usize)
        .count() as f64
        / n as f64;
    assert!(acc > 0.98, "accuracy {acc}");
    let last: f64 = losses[250..].iter().sum::<f64>() / 50.0;
    assert!(last < 0.369 + 0.05, "loss {last}");
    assert!(
        fit_classifier(
            &clf,
            named_vars(&varmap).unwrap(),
            &sde,
            x.view(),
            &labels[1..],
            &cfg,
            &mut rng
        )
        .is_err()
    );
}
