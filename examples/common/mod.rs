//! Plotting helpers shared by the examples (`mod common;` in each): PNG files through
//! plotters' pure-Rust bitmap backend, text in the DejaVu Sans subset shipped in
//! `examples/assets/` (registered once with plotters' `ab_glyph` feature, so no system
//! font libraries are needed).
//!
//! Every helper takes 2-D points as an `ndarray` view with one row per point and a square
//! plotting window `range × range`.

use ndarray::{Array2, ArrayView2};
use plotters::coord::Shift;
use plotters::prelude::*;
use score_sde::gmm::GaussianMixture;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// Boxed error: plotters, I/O and `score_sde::Error` all convert into it.
pub type BoxResult<T> = Result<T, Box<dyn Error>>;

/// How big a run: `Full` for `cargo run --release --example …`, `Small` for the smoke test
/// (`tests/examples_smoke.rs`), which runs every example's core in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Smoke-test size: few samples, few steps, coarse grids.
    Small,
    /// The size the example is meant to be looked at.
    Full,
}

impl Scale {
    /// `small` at [`Scale::Small`], `full` at [`Scale::Full`].
    pub fn pick<T>(self, small: T, full: T) -> T {
        match self {
            Scale::Small => small,
            Scale::Full => full,
        }
    }
}

/// The font, a subset of DejaVu Sans (licence: `examples/assets/FONT-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

/// Register the shipped font as plotters' `sans-serif` (idempotent).
pub fn register_font() -> BoxResult<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .map_err(|_| "the shipped font examples/assets/DejaVuSans-subset.ttf is invalid");
    });
    Ok(result?)
}

/// `target/examples-out/<name>/` under the crate root, created; where `main` writes.
pub fn default_out_dir(name: &str) -> BoxResult<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("examples-out")
        .join(name);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Print where the pictures went (the last line of every example).
pub fn report(paths: &[PathBuf]) {
    println!("\nwrote {} picture(s):", paths.len());
    for p in paths {
        println!("  {}", p.display());
    }
}

/// A panel: a title and what to draw in it.
pub struct Panel<'a> {
    /// Caption above the panel.
    pub title: String,
    /// Density drawn as a heat map under everything else (log-density values on the grid
    /// returned by [`grid_points`], row-major, `res × res`), if any.
    pub heat: Option<&'a [f64]>,
    /// Point clouds: points and their colour.
    pub points: Vec<(ArrayView2<'a, f64>, RGBColor)>,
    /// Polylines (particle paths): each an `(n, 2)` array of successive positions.
    pub paths: Vec<(Array2<f64>, RGBColor)>,
    /// This panel's half-width, instead of the figure's.
    pub range: Option<f64>,
}

impl<'a> Panel<'a> {
    /// An empty panel with a title.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            heat: None,
            points: Vec::new(),
            paths: Vec::new(),
            range: None,
        }
    }
    /// Draw this panel over `[-r, r]²` (its heat map's grid must use the same `r`).
    pub fn range(mut self, r: f64) -> Self {
        self.range = Some(r);
        self
    }
    /// Add a point cloud.
    pub fn points(mut self, x: ArrayView2<'a, f64>, colour: RGBColor) -> Self {
        self.points.push((x, colour));
        self
    }
    /// Draw a heat map of log-density values on the [`grid_points`] grid.
    pub fn heat(mut self, values: &'a [f64]) -> Self {
        self.heat = Some(values);
        self
    }
    /// Add a path.
    pub fn path(mut self, p: Array2<f64>, colour: RGBColor) -> Self {
        self.paths.push((p, colour));
        self
    }
}

/// Colour of exact / reference samples.
pub const EXACT: RGBColor = RGBColor(90, 90, 90);
/// Colour of a sampler's output.
pub const SAMPLED: RGBColor = RGBColor(31, 119, 180);
/// Colour of observed / highlighted things.
pub const HIGHLIGHT: RGBColor = RGBColor(214, 39, 40);
/// A small palette for several paths.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
    RGBColor(227, 119, 194),
];

/// The centres of a `res × res` grid over `[-range, range]²`, row-major with `y` the slow
/// index (row `i·res + j` is at `x = centre(j)`, `y = centre(i)`).
pub fn grid_points(range: f64, res: usize) -> Array2<f64> {
    let h = 2.0 * range / res as f64;
    Array2::from_shape_fn((res * res, 2), |(k, c)| {
        let (i, j) = (k / res, k % res);
        let idx = if c == 0 { j } else { i };
        -range + (idx as f64 + 0.5) * h
    })
}

/// Exact `log p` of a 2-D mixture on the [`grid_points`] grid.
pub fn log_density_on_grid(
    p: &GaussianMixture<f64>,
    range: f64,
    res: usize,
) -> BoxResult<Vec<f64>> {
    Ok(p.log_prob(grid_points(range, res).view())?.to_vec())
}

/// A perceptually ordered colour ramp (close to matplotlib's viridis) at `u ∈ [0, 1]`.
pub fn ramp(u: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let u = if u.is_finite() {
        u.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let s = u * (STOPS.len() - 1) as f64;
    let i = (s.floor() as usize).min(STOPS.len() - 2);
    let f = s - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + f * (y - x)).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Draw panels side by side in a `rows × cols` layout into one PNG.
pub fn panels(
    path: &Path,
    caption: &str,
    cols: usize,
    range: f64,
    panel_px: u32,
    items: &[Panel<'_>],
) -> BoxResult<PathBuf> {
    register_font()?;
    let cols = cols.max(1);
    let rows = items.len().div_ceil(cols).max(1);
    let size = (panel_px * cols as u32, panel_px * rows as u32 + 40);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(caption, ("sans-serif", 22))?;
    let areas = root.split_evenly((rows, cols));
    for (area, item) in areas.iter().zip(items) {
        draw_panel(area, item.range.unwrap_or(range), item)?;
    }
    root.present()?;
    Ok(path.to_path_buf())
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    range: f64,
    item: &Panel<'_>,
) -> BoxResult<()> {
    let mut chart = ChartBuilder::on(area)
        .caption(&item.title, ("sans-serif", 14))
        .margin(6)
        .x_label_area_size(22)
        .y_label_area_size(28)
        .build_cartesian_2d(-range..range, -range..range)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(5)
        .y_labels(5)
        .label_style(("sans-serif", 11))
        .draw()?;
    if let Some(values) = item.heat {
        let res = (values.len() as f64).sqrt().round() as usize;
        // Colour by log-density, clipped 12 nats below the maximum so the tails stay dark
        // and the modes' shape is visible.
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lo = max - 12.0;
        let h = 2.0 * range / res as f64;
        chart.draw_series(values.iter().enumerate().map(|(k, &v)| {
            let (i, j) = (k / res, k % res);
            let (x0, y0) = (-range + j as f64 * h, -range + i as f64 * h);
            Rectangle::new(
                [(x0, y0), (x0 + h, y0 + h)],
                ramp((v - lo) / (max - lo)).filled(),
            )
        }))?;
    }
    for (pts, colour) in &item.points {
        chart.draw_series(
            pts.rows()
                .into_iter()
                .filter(|r| r[0].abs() < range && r[1].abs() < range)
                .map(|r| Circle::new((r[0], r[1]), 1, colour.mix(0.5).filled())),
        )?;
    }
    for (p, colour) in &item.paths {
        chart.draw_series(LineSeries::new(
            p.rows()
                .into_iter()
                .map(|r| (r[0].clamp(-range, range), r[1].clamp(-range, range))),
            colour.stroke_width(2),
        ))?;
        if let Some(last) = p.rows().into_iter().next_back() {
            chart.draw_series(std::iter::once(Circle::new(
                (last[0].clamp(-range, range), last[1].clamp(-range, range)),
                4,
                colour.filled(),
            )))?;
        }
    }
    Ok(())
}

/// A named density curve `(x, p(x))` and its colour.
pub type Curve<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

/// A 1-D picture: normalized histograms of samples (bars) against density curves, into one PNG.
pub fn histogram_vs_density(
    path: &Path,
    caption: &str,
    (lo, hi, bins): (f64, f64, usize),
    samples: &[(&str, &[f64], RGBColor)],
    curves: &[Curve<'_>],
) -> BoxResult<PathBuf> {
    register_font()?;
    let width = (hi - lo) / bins as f64;
    let hists: Vec<Vec<f64>> = samples
        .iter()
        .map(|(_, xs, _)| {
            let mut h = vec![0.0; bins];
            for &x in xs.iter() {
                let b = ((x - lo) / width).floor();
                if b >= 0.0 && (b as usize) < bins {
                    h[b as usize] += 1.0;
                }
            }
            let n = xs.len().max(1) as f64;
            h.iter().map(|c| c / (n * width)).collect()
        })
        .collect();
    let top = hists
        .iter()
        .flatten()
        .copied()
        .chain(curves.iter().flat_map(|c| c.1.iter().map(|p| p.1)))
        .fold(0.0_f64, f64::max)
        * 1.1;
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(lo..hi, 0.0..top.max(1e-9))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .label_style(("sans-serif", 12))
        .draw()?;
    for ((name, _, colour), h) in samples.iter().zip(&hists) {
        let colour = *colour;
        chart
            .draw_series(h.iter().enumerate().map(move |(b, &v)| {
                let x0 = lo + b as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, v)], colour.mix(0.45).filled())
            }))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    for (name, pts, colour) in curves {
        let colour = *colour;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), colour.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperMiddle)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(path.to_path_buf())
}
