//! The digits data (`data/digits/digits.txt`), its loader, split and dequantisation, and the
//! evaluation helpers of `backend::digits` (density baselines, nearest neighbours) against
//! closed forms. No network backend needed.

use ndarray::{Array2, Array3, Axis, array};
use rand::SeedableRng;
use score_sde::backend::digits::{
    CLASSES, DIM, Digits, EmConfig, LEVELS, fit_gaussian, fit_mixture, knn_classify, level_centre,
    nearest, quantize,
};
use score_sde::prelude::*;

fn digits() -> Digits {
    Digits::load(Digits::default_path()).expect("the shipped data file parses")
}

#[test]
fn the_shipped_file_is_scikit_learns_digits() {
    let d = digits();
    assert_eq!(d.len(), 1797);
    assert_eq!(d.levels().dim(), (1797, DIM));
    // scikit-learn's class counts for load_digits (numpy.bincount of the targets).
    let mut counts = [0usize; CLASSES];
    for &l in d.labels() {
        counts[l as usize] += 1;
    }
    assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    assert_eq!(d.levels().iter().copied().max(), Some(16));
    assert_eq!(d.levels().iter().copied().min(), Some(0));
    // The first image (a 0) as scikit-learn prints it, row by row.
    let first: Vec<u8> = vec![
        0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0,
        0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0,
        0, 6, 13, 10, 0, 0, 0,
    ];
    assert_eq!(d.levels().row(0).to_vec(), first);
    assert_eq!(d.labels()[..3], [0, 1, 2]);
}

#[test]
fn malformed_files_are_typed_errors_naming_the_line() {
    let good = format!("3 {}", "0".repeat(64));
    let cases = [
        (format!("# c\n{good}\nx {}\n", "0".repeat(64)), "line 3"),
        (format!("{good}\n12 {}\n", "0".repeat(64)), "line 2"),
        (format!("3 {}\n", "0".repeat(63)), "63 pixel symbols"),
        (format!("3 {}h\n", "0".repeat(63)), "'h'"),
        (format!("3{}\n", "0".repeat(64)), "expected"),
    ];
    for (text, needle) in cases {
        match Digits::parse(&text) {
            Err(Error::Io(m)) => assert!(m.contains(needle), "{m:?} should mention {needle}"),
            other => panic!("{text:?}: expected an Io error, got {other:?}"),
        }
    }
    assert!(matches!(
        Digits::parse("# only comments\n\n"),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        Digits::load("/nonexistent/digits.txt"),
        Err(Error::Io(m)) if m.contains("/nonexistent/digits.txt")
    ));
}

#[test]
fn the_split_is_a_seeded_partition() {
    let d = digits();
    let (train, test) = d.split(360, 0).unwrap();
    assert_eq!((train.len(), test.len()), (1437, 360));
    // A partition: every image of the file is in exactly one part (images compared with
    // their labels as a multiset, since a few images repeat).
    let key = |x: &Digits, i: usize| (x.labels()[i], x.levels().row(i).to_vec());
    let mut all: Vec<_> = (0..d.len()).map(|i| key(&d, i)).collect();
    let mut parts: Vec<_> = (0..train.len())
        .map(|i| key(&train, i))
        .chain((0..test.len()).map(|i| key(&test, i)))
        .collect();
    all.sort();
    parts.sort();
    assert_eq!(all, parts);
    // The same seed gives the same split; another seed another one.
    assert_eq!(d.split(360, 0).unwrap().1, test);
    assert_ne!(d.split(360, 1).unwrap().1, test);
    assert!(d.split(0, 0).is_err() && d.split(d.len(), 0).is_err());
    assert!(d.select(&[d.len()]).is_err());
}

#[test]
fn dequantisation_stays_in_each_levels_bin() {
    let d = digits();
    let x: Array2<f64> = d
        .dequantize(&mut rand_pcg::Pcg64::seed_from_u64(3))
        .unwrap();
    let width = 2.0 / f64::from(LEVELS);
    for (&xv, &y) in x.iter().zip(d.levels()) {
        let lo = -1.0 + width * f64::from(y);
        assert!(
            (lo..lo + width).contains(&xv),
            "level {y} dequantised to {xv}"
        );
        assert_eq!(quantize(xv), y);
        assert_eq!(quantize(level_centre::<f64>(y)), y);
    }
    // Uniform within the bin: the mean offset from the bin's left edge is width/2 within
    // 5 standard errors (sd of U[0, w) is w/√12, n = 1797·64).
    let n = x.len() as f64;
    let mean_offset = x
        .iter()
        .zip(d.levels())
        .map(|(&xv, &y)| xv - (-1.0 + width * f64::from(y)))
        .sum::<f64>()
        / n;
    assert!((mean_offset - width / 2.0).abs() < 5.0 * width / 12f64.sqrt() / n.sqrt());
    assert!((Digits::scaling().offset_bits() - (17f64.log2() - 1.0)).abs() < 1e-12);
    assert_eq!(quantize(f64::NAN), 0);
    assert_eq!(quantize(5.0_f64), 16);
}

#[test]
fn the_gaussian_baseline_is_the_sample_mean_and_covariance() {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
    let truth = problems::rand16d::<f64>();
    let x = truth.sample(3000, &mut rng).unwrap();
    let g = fit_gaussian(x.view(), 0.0).unwrap();
    let mean = x.mean_axis(Axis(0)).unwrap();
    let centred = &x - &mean;
    let cov = centred.t().dot(&centred) / x.nrows() as f64;
    // Both are the same sums in a different order: rounding only.
    assert!((&g.mean() - &mean).iter().all(|e| e.abs() < 1e-12));
    assert!((&g.covariance() - &cov).iter().all(|e| e.abs() < 1e-10));
    let ridged = fit_gaussian(x.view(), 0.5).unwrap();
    assert!(((&ridged.covariance() - &g.covariance())[[3, 3]] - 0.5).abs() < 1e-10);
    assert!(fit_gaussian(x.slice(ndarray::s![..1, ..]), 0.0).is_err());
    assert!(fit_gaussian(x.view(), -1.0).is_err());
}

#[test]
fn em_finds_a_two_component_mixture_at_least_as_likely_as_the_truth() {
    let truth = GaussianMixture::new(
        array![0.3, 0.7],
        array![[-3.0, 0.0], [2.0, 1.0]],
        Array3::from_shape_vec((2, 2, 2), vec![1.0, 0.3, 0.3, 0.5, 0.4, 0.0, 0.0, 2.0]).unwrap(),
    )
    .unwrap();
    let x = truth
        .sample(4000, &mut rand_pcg::Pcg64::seed_from_u64(1))
        .unwrap();
    let cfg = EmConfig::default().components(2).ridge(0.0);
    let (gm, report) = fit_mixture(x.view(), &cfg).unwrap();
    assert!(report.converged, "{report:?}");
    // EM climbs to a maximum of the likelihood: at least the true parameters' likelihood on
    // the same data (which a wrong M-step would not reach).
    let ll_truth = truth.log_prob(x.view()).unwrap().mean().unwrap();
    assert!(
        report.mean_log_lik >= ll_truth - 1e-9,
        "{} < {ll_truth}",
        report.mean_log_lik
    );
    assert!((report.mean_log_lik - gm.log_prob(x.view()).unwrap().mean().unwrap()).abs() < 1e-12);
    // … and the estimates are within Monte-Carlo error of the truth (n = 4000: weight sd
    // ≈ 0.007, mean sd ≤ 0.04; bounds at about 5 sd). Components may come out swapped.
    let k0 = if gm.means()[[0, 0]] < 0.0 { 0 } else { 1 };
    assert!((gm.weights()[k0] - 0.3).abs() < 0.035);
    assert!((gm.means()[[k0, 0]] + 3.0).abs() < 0.2 && gm.means()[[k0, 1]].abs() < 0.2);
    assert!((gm.means()[[1 - k0, 0]] - 2.0).abs() < 0.2);
    assert!(fit_mixture(x.view(), &EmConfig::default().components(0)).is_err());
}

#[test]
fn nearest_neighbours_and_the_knn_vote() {
    let reference = array![
        [0.0, 0.0],
        [10.0, 0.0],
        [0.0, 10.0],
        [10.0, 10.0],
        [1.0, 0.0]
    ];
    let labels = [1u8, 2, 3, 4, 5];
    let q = array![[0.4, 0.0], [9.0, 9.5], [0.0, 4.0]];
    let nn = nearest(q.view(), reference.view()).unwrap();
    assert_eq!(nn[0].0, 0);
    assert!((nn[0].1 - 0.4).abs() < 1e-15);
    assert_eq!(nn[1].0, 3);
    assert!((nn[1].1 - (1.0f64 + 0.25).sqrt()).abs() < 1e-15);
    assert_eq!(nn[2].0, 0);
    // k = 1 is the nearest neighbour's label; k = 2 at (0.4, 0) is a tie between labels 1
    // and 5, won by the nearer one (label 1 at distance 0.4 against 0.6).
    assert_eq!(
        knn_classify(q.view(), reference.view(), &labels, 1).unwrap(),
        vec![1, 4, 1]
    );
    assert_eq!(
        knn_classify(q.view(), reference.view(), &labels, 2).unwrap()[0],
        1
    );
    // Majority: three of the four nearest to (0, 0.1) carry label 7.
    let lab2 = [7u8, 7, 9, 9, 7];
    assert_eq!(
        knn_classify(array![[0.0, 0.1]].view(), reference.view(), &lab2, 4).unwrap(),
        vec![7]
    );
    assert!(knn_classify(q.view(), reference.view(), &labels[..4], 1).is_err());
    assert!(knn_classify(q.view(), reference.view(), &labels, 6).is_err());
    assert!(nearest(array![[f64::NAN, 0.0]].view(), reference.view()).is_err());
    assert!(nearest(Array2::<f64>::zeros((1, 3)).view(), reference.view()).is_err());
}
