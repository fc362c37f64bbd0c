//! The fuzz suite of issue 18: generated whole configurations — schedules, grids, mixtures
//! (direct and through JSON), every sampler, likelihoods, guidance, imputation, inverse
//! problems, metrics, divergence estimators, training batches, and the `.npy` / ONNX loaders
//! on arbitrary bytes — with invalid and extreme values (NaN, ±∞, 0, ±1e300, subnormals, the
//! edges of f32, counts near `usize::MAX`).
//!
//! Each case runs on its own thread under `catch_unwind` with a time limit, and must end in
//! a typed error (with a readable message) or an `Ok` whose every number is finite: no
//! panic, no time-out, no silent non-finite result. An abort would end the whole process,
//! so finishing is the proof of none.
//!
//! * `cargo test --test fuzz` — the CI slice: [`CI_CASES`] cases from a fixed proptest seed
//!   (part of `cargo test`; about a second once built).
//! * `cargo test --features npy,onnx --test fuzz -- --ignored --nocapture` — the long mode:
//!   100 000 cases (`FUZZ_CASES=n` for another count, `FUZZ_SEED=s` for other cases), with a
//!   table of outcomes per kind of case. Without the features the `.npy` and ONNX cases do
//!   nothing. The test profile keeps debug assertions on, so the getters' domain assertions
//!   are checked too.
//!
//! proptest draws each case's `(kind, seed)`; the configuration itself comes from a rand 0.9
//! generator seeded with it (`draw.rs`), since proptest's own generator is rand 0.10.
//! Failing cases found are kept in `regressions.rs`.

mod draw;
mod regressions;
mod samplers;
mod targets;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use std::collections::BTreeMap;
use std::time::Duration;
use targets::{KINDS, Violation};

/// Cases of the CI slice.
const CI_CASES: u32 = 3000;

/// Time limit of one case (the slowest valid configurations take well under a second).
const LIMIT: Duration = Duration::from_secs(60);

/// How one case ended.
#[derive(Debug)]
enum Outcome {
    /// A typed error or a finite result.
    Pass,
    /// A silent non-finite result or an unreadable message.
    Violation(Violation),
    Panic(String),
    TimeOut,
}

impl Outcome {
    /// Anything but a pass.
    fn is_failure(&self) -> bool {
        !matches!(self, Outcome::Pass)
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

/// Silence the default panic report for the cases' threads (they are caught and reported
/// here); other threads keep the default hook.
fn quiet_case_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let case = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("fuzz-case"));
            if !case {
                default(info);
            }
        }));
    });
}

/// Run case `(kind, seed)` on its own thread under `catch_unwind`, with [`LIMIT`].
fn run_case(kind: usize, seed: u64) -> Outcome {
    quiet_case_panics();
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("fuzz-case-{kind}-{seed}"))
        .stack_size(16 << 20)
        .spawn(move || {
            let r = std::panic::catch_unwind(|| targets::run(kind, seed));
            let _ = tx.send(r);
        });
    if let Err(e) = spawned {
        return Outcome::Panic(format!("could not start the case's thread: {e}"));
    }
    match rx.recv_timeout(LIMIT) {
        Ok(Ok(Ok(()))) => Outcome::Pass,
        Ok(Ok(Err(v))) => Outcome::Violation(v),
        Ok(Err(p)) => Outcome::Panic(panic_message(&*p)),
        // The thread is left to finish on its own (it cannot be killed).
        Err(_) => Outcome::TimeOut,
    }
}

/// The strategy of a case: a kind by its weight, and a seed.
fn case() -> impl Strategy<Value = (usize, u64)> {
    (0..targets::total_weight(), any::<u64>()).prop_map(|(w, s)| (targets::kind_of(w), s))
}

fn config(cases: u32, seed: u64) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        // One case is already a whole configuration; shrinking a seed means nothing.
        max_shrink_iters: 0,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(CI_CASES, 18))]

    /// The CI slice: every generated case passes.
    #[test]
    fn ci_slice((kind, seed) in case()) {
        let out = run_case(kind, seed);
        prop_assert!(
            !out.is_failure(),
            "case (kind {} = {:?}, seed {}): {:?}",
            kind, KINDS[kind].0, seed, out
        );
    }
}

/// Tallies of the long mode.
#[derive(Default)]
struct Tally {
    passes: BTreeMap<&'static str, usize>,
    /// Cases per kind with at least one checked `Ok` (not only typed errors).
    deep: BTreeMap<&'static str, usize>,
    panics: Vec<(usize, u64, String)>,
    timeouts: Vec<(usize, u64)>,
    silent: Vec<(usize, u64, String)>,
}

/// The long mode: `FUZZ_CASES` (default 100 000) cases, a table of outcomes, and a failure
/// if any case panicked, timed out or returned a silent non-finite result.
#[test]
#[ignore = "long mode: cargo test --features npy,onnx --test fuzz -- --ignored --nocapture"]
fn long_mode() {
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2018);
    let mut runner = TestRunner::new(config(1, seed));
    let strategy = case();
    let mut tally = Tally::default();
    let start = std::time::Instant::now();
    for i in 0..cases {
        let (kind, s) = strategy
            .new_tree(&mut runner)
            .map(|t| t.current())
            .unwrap_or((0, i as u64));
        let oks = targets::OKS.load(std::sync::atomic::Ordering::Relaxed);
        let out = run_case(kind, s);
        if targets::OKS.load(std::sync::atomic::Ordering::Relaxed) > oks {
            *tally.deep.entry(KINDS[kind].0).or_default() += 1;
        }
        match out {
            Outcome::Pass => *tally.passes.entry(KINDS[kind].0).or_default() += 1,
            Outcome::Panic(m) => tally.panics.push((kind, s, m)),
            Outcome::TimeOut => tally.timeouts.push((kind, s)),
            Outcome::Violation(v) => tally.silent.push((kind, s, v.what)),
        }
        if (i + 1) % 10_000 == 0 {
            eprintln!("{} cases, {:.0} s", i + 1, start.elapsed().as_secs_f64());
        }
    }
    println!(
        "\nfuzz long mode: {cases} cases (seed {seed}) in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    println!("passed (typed error or finite Ok), per kind; and cases with a checked Ok:");
    for (k, n) in &tally.passes {
        println!(
            "  {k:<22} {n:>7} {:>7}",
            tally.deep.get(k).copied().unwrap_or(0)
        );
    }
    println!(
        "panics {}, time-outs {}, silent non-finite/unreadable {}",
        tally.panics.len(),
        tally.timeouts.len(),
        tally.silent.len()
    );
    for (kind, s, m) in tally.panics.iter().take(20) {
        println!("  panic   {} seed {s}: {m}", KINDS[*kind].0);
    }
    for (kind, s) in tally.timeouts.iter().take(20) {
        println!("  timeout {} seed {s}", KINDS[*kind].0);
    }
    for (kind, s, m) in tally.silent.iter().take(20) {
        println!("  silent  {} seed {s}: {m}", KINDS[*kind].0);
    }
    assert!(
        tally.panics.is_empty() && tally.timeouts.is_empty() && tally.silent.is_empty(),
        "the long mode found failures (listed above)"
    );
}
