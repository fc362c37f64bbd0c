//! Helpers of the digits examples (`train_digits`, `sample_digits`), included with
//! `#[path = "common/digits.rs"] mod digits_common;`: command-line flags, grids of 8×8
//! images and loss curves as PNG (plotters' bitmap backend, the shipped font).

#![allow(dead_code)] // each example uses a subset

use crate::common::BoxResult;
use ndarray::ArrayView2;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `--name value` flags and bare `--switch`es; unknown names are errors listing `usage`.
pub struct Flags {
    values: BTreeMap<String, String>,
}

impl Flags {
    /// Parse the command line: `valued` flags take a value, `switches` do not.
    pub fn parse(valued: &[&str], switches: &[&str], usage: &str) -> BoxResult<Self> {
        let mut values = BTreeMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {flag:?}\nusage: {usage}"))?;
            if switches.contains(&name) {
                values.insert(name.to_string(), String::new());
            } else if valued.contains(&name) {
                let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                values.insert(name.to_string(), v);
            } else {
                return Err(format!("unknown flag {flag}\nusage: {usage}").into());
            }
        }
        Ok(Self { values })
    }
    /// Whether a switch (or flag) was given.
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
    /// A flag's value parsed as `T`, or `default`.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> BoxResult<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.values.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| format!("--{name} {v}: {e}").into()),
        }
    }
    /// A string flag, or `default`.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.values
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }
}

/// One labelled row of a grid: images as rows of `pixels` (values in `[−1, 1]`, `side²`
/// each, row-major).
pub struct ImageRow<'a> {
    /// Text left of the row.
    pub label: String,
    /// The images, one per row of the array.
    pub pixels: ArrayView2<'a, f64>,
}

/// Draw rows of grey-level images (−1 white, +1 black, as the digits are usually shown)
/// into one PNG: a caption, then each row's label and its images side by side.
pub fn image_grid(
    path: &Path,
    caption: &str,
    side: usize,
    cell: u32,
    rows: &[ImageRow<'_>],
) -> BoxResult<PathBuf> {
    crate::common::register_font()?;
    let label_w = 190u32;
    let img = side as u32 * cell;
    let gap = (cell / 2).max(2);
    let cols = rows
        .iter()
        .map(|r| r.pixels.nrows())
        .max()
        .unwrap_or(1)
        .max(1) as u32;
    let width = label_w + cols * (img + gap) + gap;
    let top = 36u32;
    let height = top + rows.len() as u32 * (img + gap) + gap;
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    root.draw(&Text::new(
        caption.to_string(),
        (10, 8),
        ("sans-serif", 18).into_font().color(&BLACK),
    ))?;
    for (r, row) in rows.iter().enumerate() {
        let y0 = (top + gap + r as u32 * (img + gap)) as i32;
        root.draw(&Text::new(
            row.label.clone(),
            (8, y0 + img as i32 / 2 - 7),
            ("sans-serif", 13).into_font().color(&BLACK),
        ))?;
        for (c, px) in row.pixels.rows().into_iter().enumerate() {
            let x0 = (label_w + c as u32 * (img + gap)) as i32;
            for (k, &v) in px.iter().enumerate() {
                let (i, j) = ((k / side) as i32, (k % side) as i32);
                // Unknown pixels (NaN, e.g. the hidden half of an inpainting input) light blue.
                let colour = if v.is_finite() {
                    let u = ((v + 1.0) / 2.0).clamp(0.0, 1.0);
                    let g = (255.0 * (1.0 - u)).round() as u8;
                    RGBColor(g, g, g)
                } else {
                    RGBColor(205, 222, 245)
                };
                let (cx, cy) = (x0 + j * cell as i32, y0 + i * cell as i32);
                root.draw(&Rectangle::new(
                    [(cx, cy), (cx + cell as i32, cy + cell as i32)],
                    colour.filled(),
                ))?;
            }
            root.draw(&Rectangle::new(
                [(x0 - 1, y0 - 1), (x0 + img as i32, y0 + img as i32)],
                RGBColor(200, 200, 200).stroke_width(1),
            ))?;
        }
    }
    root.present()?;
    Ok(path.to_path_buf())
}

/// A loss curve: the per-step losses (light) and their running mean over `window` steps
/// (dark), log-scaled y axis.
pub fn loss_curve(
    path: &Path,
    caption: &str,
    series: &[(&str, &[f64], RGBColor)],
    window: usize,
) -> BoxResult<PathBuf> {
    crate::common::register_font()?;
    let steps = series.iter().map(|s| s.1.len()).max().unwrap_or(1).max(2);
    let pos = |v: f64| v.is_finite() && v > 0.0;
    let (lo, hi) = series
        .iter()
        .flat_map(|s| s.1.iter().copied().filter(|&v| pos(v)))
        .fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo < hi { (lo, hi) } else { (0.1, 10.0) };
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0..steps, (lo * 0.9..hi * 1.1).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("optimiser step")
        .y_desc("DSM loss (ε-MSE, summed over pixels)")
        .label_style(("sans-serif", 12))
        .draw()?;
    for (name, losses, colour) in series {
        let colour = *colour;
        chart.draw_series(LineSeries::new(
            losses
                .iter()
                .enumerate()
                .filter(|(_, v)| pos(**v))
                .map(|(i, &v)| (i, v)),
            colour.mix(0.2),
        ))?;
        let w = window.max(1);
        let mut acc = 0.0;
        let smooth: Vec<(usize, f64)> = losses
            .iter()
            .enumerate()
            .filter_map(|(i, &v)| {
                acc += v;
                if i >= w {
                    acc -= losses[i - w];
                }
                (i + 1 >= w).then(|| (i, acc / w as f64))
            })
            .filter(|p| pos(p.1))
            .collect();
        chart
            .draw_series(LineSeries::new(smooth, colour.stroke_width(2)))?
            .label(format!("{name} (mean of {w} steps)"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(path.to_path_buf())
}

/// Wall seconds, this process's CPU seconds, and the cores other processes kept busy.
#[derive(Default)]
pub struct Timed {
    /// Wall-clock seconds.
    pub wall: f64,
    /// CPU seconds of this process (all threads).
    pub cpu: f64,
    /// Average number of cores busy with other processes.
    pub others: f64,
}

/// Measures a timed region (see [`Timed`]).
pub struct Timer {
    clock: Instant,
    cpu: f64,
    busy: (u64, u64),
}

impl Timer {
    /// Start measuring.
    pub fn start() -> Self {
        Self {
            busy: proc_stat_busy(),
            cpu: cpu_seconds(),
            clock: Instant::now(),
        }
    }
    /// Stop measuring.
    pub fn stop(self) -> Timed {
        let wall = self.clock.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - self.cpu;
        let (b1, _) = proc_stat_busy();
        let hz = 100.0; // USER_HZ: /proc/stat counts in 1/100 s on Linux
        let busy = (b1.saturating_sub(self.busy.0)) as f64 / hz;
        Timed {
            wall,
            cpu,
            others: ((busy - cpu) / wall).max(0.0),
        }
    }
}

/// `(busy, total)` jiffies over all CPUs from `/proc/stat` (zeros elsewhere).
fn proc_stat_busy() -> (u64, u64) {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    let total: u64 = v.iter().sum();
    (total.saturating_sub(idle), total)
}

/// This process's CPU seconds (all threads) from `/proc/self/task/*/schedstat`.
fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ns = 0u64;
    for task in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ns as f64 * 1e-9
}
