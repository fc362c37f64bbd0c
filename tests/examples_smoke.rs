//! Every example's core at small size, into a temporary folder; every picture it writes must
//! be a PNG that decodes and has more than one colour (a blank or single-colour image means
//! nothing was drawn).

// Each example's `main` is unused here; each example declares `mod common;`, so the helpers
// are compiled once per example module — the price of running the examples' own code.
#![allow(dead_code, clippy::duplicate_mod)]

#[path = "../examples/annealed_langevin.rs"]
mod annealed_langevin;
#[path = "../examples/colourisation.rs"]
mod colourisation;
#[path = "../examples/inpainting.rs"]
mod inpainting;
#[path = "../examples/latent_interpolation.rs"]
mod latent_interpolation;
#[path = "../examples/likelihood.rs"]
mod likelihood;
#[path = "../examples/nfe_sweep.rs"]
mod nfe_sweep;
#[path = "../examples/quickstart.rs"]
mod quickstart;
#[path = "../examples/trajectories.rs"]
mod trajectories;

use std::collections::HashSet;
use std::error::Error;
use std::path::{Path, PathBuf};

type Core<S> = fn(&Path, S) -> Result<Vec<PathBuf>, Box<dyn Error>>;

/// A fresh, empty folder under the target directory for one example's pictures.
fn out_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("examples-smoke")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Decode `path` as PNG; return its number of distinct pixel values.
fn distinct_colours(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} lacks the PNG signature",
        path.display()
    );
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert!(
        info.width >= 100 && info.height >= 100,
        "{}: tiny image",
        path.display()
    );
    let px = info.color_type.samples() * (info.bit_depth as usize / 8).max(1);
    buf[..info.buffer_size()]
        .chunks_exact(px)
        .map(|c| c.to_vec())
        .collect::<HashSet<_>>()
        .len()
}

fn check<S>(name: &str, core: Core<S>, small: S) {
    let dir = out_dir(name);
    let pictures = core(&dir, small).unwrap_or_else(|e| panic!("example {name} failed: {e}"));
    assert!(!pictures.is_empty(), "example {name} wrote no picture");
    for p in &pictures {
        assert!(
            p.starts_with(&dir),
            "{} written outside {}",
            p.display(),
            dir.display()
        );
        let n = distinct_colours(p);
        assert!(n > 1, "{} has a single colour", p.display());
    }
}

#[test]
fn quickstart_draws_its_samples() {
    check("quickstart", quickstart::run, quickstart::Scale::Small);
}

#[test]
fn trajectories_draws_paths() {
    check(
        "trajectories",
        trajectories::run,
        trajectories::Scale::Small,
    );
}

#[test]
fn annealed_langevin_draws_levels() {
    check(
        "annealed_langevin",
        annealed_langevin::run,
        annealed_langevin::Scale::Small,
    );
}

#[test]
fn likelihood_draws_heat_maps() {
    check("likelihood", likelihood::run, likelihood::Scale::Small);
}

#[test]
fn inpainting_draws_the_conditional() {
    check("inpainting", inpainting::run, inpainting::Scale::Small);
}

#[test]
fn nfe_sweep_runs_its_table() {
    // Text only (no pictures): the sampler × NFE table at N = 200.
    let args: Vec<String> = ["nfe_sweep", "200", "table"].map(String::from).to_vec();
    nfe_sweep::sweep(&args).unwrap();
}

#[test]
fn latent_interpolation_draws_its_strip() {
    check(
        "latent_interpolation",
        latent_interpolation::run,
        latent_interpolation::Scale::Small,
    );
}

#[test]
fn colourisation_draws_its_images() {
    check(
        "colourisation",
        colourisation::run,
        colourisation::Scale::Small,
    );
}
