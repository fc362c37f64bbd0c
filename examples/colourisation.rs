//! Colourisation by imputation in a grouped orthogonal transform (Song et al. 2021,
//! App. I.3): observe the grey level `(r + g + b)/√3` of every pixel of a small RGB image and
//! sample the two chroma coordinates per pixel — with the same 3 × 3 colour basis applied to
//! every pixel (`Imputation::with_grouped_basis`), not a dense `D × D` matrix.
//!
//! ```text
//! cargo run --release --example colourisation
//! ```
//!
//! The prior is a mixture of three "palettes": 6 × 6 images with the same brightness
//! pattern in different hues (D = 108), so the grey image cannot tell them apart and the
//! exact conditional keeps all three. The sampler is score_sde's conditional PC sampler
//! (reverse diffusion + Langevin, the grey levels re-imposed after the predictor and after
//! every corrector step). Writes `target/examples-out/colourisation/colourised.png`: the
//! truth, its grey input, colourised samples, and exact conditional samples.

#[allow(dead_code)]
mod common;

use common::BoxResult;
pub use common::Scale;
use ndarray::{Array1, Array2, Array3, ArrayView1, array};
use plotters::prelude::*;
use rand::SeedableRng;
use score_sde::condition::{GroupLayout, Imputation};
use score_sde::prelude::*;
use score_sde::sample::{Pc, PredictorKind, StepRule};
use std::path::{Path, PathBuf};

const SIDE: usize = 6;
const PIXELS: usize = SIDE * SIDE;
const D: usize = 3 * PIXELS;

fn main() -> BoxResult<()> {
    let dir = common::default_out_dir("colourisation")?;
    let pictures = run(&dir, Scale::Full)?;
    common::report(&pictures);
    Ok(())
}

/// The per-pixel colour basis: grey `(1, 1, 1)/√3`, then two orthonormal chroma vectors.
fn colour_basis() -> Array2<f64> {
    let (a, b, c) = (1.0 / 3f64.sqrt(), 1.0 / 2f64.sqrt(), 1.0 / 6f64.sqrt());
    array![[a, b, c], [a, -b, c], [a, 0.0, -2.0 * c]]
}

/// Three palettes with one brightness pattern (a diagonal ramp) in different hues: each
/// pixel's mean is `grey + chroma`, the chroma orthogonal to `(1, 1, 1)`.
fn palettes() -> BoxResult<GaussianMixture<f64>> {
    let q = colour_basis();
    let hues = [(0.22, 0.10), (-0.20, 0.12), (0.02, -0.24)];
    let mut means = Array2::<f64>::zeros((3, D));
    for (k, &(c1, c2)) in hues.iter().enumerate() {
        for p in 0..PIXELS {
            let (i, j) = (p / SIDE, p % SIDE);
            let grey = 0.25 + 0.5 * (i + j) as f64 / (2 * SIDE - 2) as f64;
            let u = array![grey * 3f64.sqrt(), c1, c2];
            let rgb = q.dot(&u);
            for c in 0..3 {
                means[[k, 3 * p + c]] = rgb[c];
            }
        }
    }
    let covs = Array3::from_shape_fn((3, D, D), |(_, i, j)| if i == j { 0.002 } else { 0.0 });
    Ok(GaussianMixture::new(array![0.5, 0.3, 0.2], means, covs)?)
}

/// The core: print the palette fractions, draw the picture.
pub fn run(out_dir: &Path, scale: Scale) -> BoxResult<Vec<PathBuf>> {
    let gm = palettes()?;
    let q = colour_basis();
    let sde = VpSde::<f64>::default();
    let vp = *sde.schedule();
    let model = AnalyticScore::new(gm.clone(), vp);
    let mut rng = rand_pcg::Pcg64::seed_from_u64(4);
    let truth = gm
        .component(1)
        .ok_or("no component")?
        .sample(1, &mut rng)?
        .row(0)
        .to_owned();

    // Observe u₀ = grey·√3 of every pixel (interleaved RGB: pixel p at 3p..3p+3).
    let mut mask = vec![false; D];
    let mut values = Array1::<f64>::zeros(D);
    for p in 0..PIXELS {
        mask[3 * p] = true;
        values[3 * p] = q.column(0).dot(&truth.slice(ndarray::s![3 * p..3 * p + 3]));
    }
    let mut imp = Imputation::new(vp, &mask, values.view(), 9)?
        .with_grouped_basis(q.view(), GroupLayout::Interleaved)?;
    let (n, steps) = (scale.pick(40, 400), scale.pick(60, 300));
    let grid = TimeGrid::uniform(&vp, steps)?;
    let pc = Pc::new(sde.clone(), grid)?
        .predictor(PredictorKind::ReverseDiffusion)?
        .snr(0.16)?
        .step_rule(StepRule::Sigma)?;
    let x0 = pc.initial_state(n, D, &mut rng)?;
    let run = pc.run_with(&model, x0, &mut rng, &mut imp)?;
    let labels = gm.most_likely_component(run.samples.view())?;
    let frac = |k: usize| labels.iter().filter(|&&l| l == k).count() as f64 / n as f64;
    println!(
        "colourised {n} samples ({} NFE each): palettes {:.2} {:.2} {:.2} (exact conditional {:.2} {:.2} {:.2})",
        run.nfe,
        frac(0),
        frac(1),
        frac(2),
        gm.weights()[0],
        gm.weights()[1],
        gm.weights()[2]
    );
    // Exact conditional samples: the palettes have equal grey patterns and isotropic
    // covariance, so given the grey image each palette keeps its prior weight and the chroma
    // stays its prior chroma — draw from the prior and replace the grey coordinates.
    let mut exact = gm.sample(6, &mut rng)?;
    for mut row in exact.rows_mut() {
        for p in 0..PIXELS {
            let px = row.slice(ndarray::s![3 * p..3 * p + 3]).to_owned();
            let delta = values[3 * p] - q.column(0).dot(&px);
            for c in 0..3 {
                row[3 * p + c] += delta * q[[c, 0]];
            }
        }
    }
    let grey: Array1<f64> = (0..D).map(|i| values[3 * (i / 3)] / 3f64.sqrt()).collect();
    let mut rows: Vec<(String, Vec<Array1<f64>>)> = vec![
        ("truth, grey input".into(), vec![truth.clone(), grey]),
        (
            "colourised".into(),
            (0..6.min(n))
                .map(|i| run.samples.row(i).to_owned())
                .collect(),
        ),
        (
            "exact conditional".into(),
            exact.rows().into_iter().map(|r| r.to_owned()).collect(),
        ),
    ];
    rows.retain(|r| !r.1.is_empty());
    let path = out_dir.join("colourised.png");
    draw_images(&path, &rows)?;
    Ok(vec![path])
}

/// A grid of images, one labelled row per entry.
fn draw_images(path: &Path, rows: &[(String, Vec<Array1<f64>>)]) -> BoxResult<()> {
    common::register_font()?;
    let cell = 14u32;
    let img = cell * SIDE as u32;
    let cols = rows.iter().map(|r| r.1.len()).max().unwrap_or(1) as u32;
    let (w, h) = (160 + cols * (img + 10), 40 + rows.len() as u32 * (img + 24));
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE)?;
    root.draw(&Text::new(
        "Colourisation: grey observed per pixel, chroma imputed",
        (10, 10),
        ("sans-serif", 18),
    ))?;
    for (r, (label, images)) in rows.iter().enumerate() {
        let y0 = 40 + r as i32 * (img + 24) as i32;
        root.draw(&Text::new(
            label.as_str(),
            (10, y0 + img as i32 / 2),
            ("sans-serif", 14),
        ))?;
        for (c, x) in images.iter().enumerate() {
            let x0 = 160 + c as i32 * (img + 10) as i32;
            draw_image(&root, x.view(), x0, y0, cell as i32)?;
        }
    }
    root.present()?;
    Ok(())
}

fn draw_image(
    root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    x: ArrayView1<f64>,
    x0: i32,
    y0: i32,
    cell: i32,
) -> BoxResult<()> {
    let byte = |v: f64| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    for p in 0..PIXELS {
        let (i, j) = ((p / SIDE) as i32, (p % SIDE) as i32);
        let colour = RGBColor(byte(x[3 * p]), byte(x[3 * p + 1]), byte(x[3 * p + 2]));
        let (a, b) = (
            (x0 + j * cell, y0 + i * cell),
            (x0 + (j + 1) * cell, y0 + (i + 1) * cell),
        );
        root.draw(&Rectangle::new([a, b], colour.filled()))?;
    }
    Ok(())
}
