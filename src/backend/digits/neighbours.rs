//! Nearest neighbours in pixel space: the distance of each query to its nearest reference
//! row (a memorisation check for generated samples) and a k-nearest-neighbour classifier
//! (an independent judge of which digit a generated image shows).

use crate::error::{Error, Result};
use ndarray::ArrayView2;

/// For every row of `queries`, the index of its nearest row of `reference` and the
/// Euclidean distance to it (ties: the lower index).
pub fn nearest(queries: ArrayView2<f64>, reference: ArrayView2<f64>) -> Result<Vec<(usize, f64)>> {
    check(queries, reference)?;
    Ok(queries
        .rows()
        .into_iter()
        .map(|q| {
            let mut best = (0, f64::INFINITY);
            for (j, r) in reference.rows().into_iter().enumerate() {
                let d2: f64 = q.iter().zip(r).map(|(a, b)| (a - b) * (a - b)).sum();
                if d2 < best.1 {
                    best = (j, d2);
                }
            }
            (best.0, best.1.sqrt())
        })
        .collect())
}

/// The k-nearest-neighbour classifier (Euclidean): each query gets the label most frequent
/// among its `k` nearest reference rows; a tie goes to the tied label whose nearest member
/// is closest. `labels[j]` is the label of `reference` row `j`.
pub fn knn_classify(
    queries: ArrayView2<f64>,
    reference: ArrayView2<f64>,
    labels: &[u8],
    k: usize,
) -> Result<Vec<u8>> {
    check(queries, reference)?;
    if labels.len() != reference.nrows() {
        return Err(Error::shape(
            "labels (one per reference row)",
            reference.nrows(),
            labels.len(),
        ));
    }
    if k == 0 || k > reference.nrows() {
        return Err(Error::param(
            "k",
            k as f64,
            "must be at least 1 and at most the number of reference rows",
        ));
    }
    let mut dist: Vec<(f64, usize)> = Vec::with_capacity(reference.nrows());
    Ok(queries
        .rows()
        .into_iter()
        .map(|q| {
            dist.clear();
            dist.extend(reference.rows().into_iter().enumerate().map(|(j, r)| {
                let d2: f64 = q.iter().zip(r).map(|(a, b)| (a - b) * (a - b)).sum();
                (d2, j)
            }));
            dist.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let nearest = &mut dist[..k];
            nearest.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            // Votes per label; the first label (in distance order) to reach the top count wins.
            let mut votes = [0usize; 256];
            for &(_, j) in nearest.iter() {
                votes[labels[j] as usize] += 1;
            }
            let top = votes.iter().copied().max().unwrap_or(0);
            nearest
                .iter()
                .map(|&(_, j)| labels[j])
                .find(|&l| votes[l as usize] == top)
                .unwrap_or(0)
        })
        .collect())
}

fn check(queries: ArrayView2<f64>, reference: ArrayView2<f64>) -> Result<()> {
    if reference.nrows() == 0 || queries.nrows() == 0 {
        return Err(Error::Empty {
            what: "nearest-neighbour queries or reference",
        });
    }
    if queries.ncols() != reference.ncols() {
        return Err(Error::shape(
            "queries (columns = reference columns)",
            reference.ncols(),
            queries.ncols(),
        ));
    }
    for (what, a) in [("queries", queries), ("reference", reference)] {
        if let Some(i) = a.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: if what == "queries" {
                    "nearest-neighbour queries"
                } else {
                    "nearest-neighbour reference"
                },
                index: i,
                value: a.iter().nth(i).copied().unwrap_or(f64::NAN),
            });
        }
    }
    Ok(())
}
