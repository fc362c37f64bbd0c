//! `.npy` round trips: exact for both float types, across them, and for NumPy's 1-D arrays.
#![cfg(feature = "npy")]

use ndarray::{Array1, Array2, Array3, array};
use score_sde::Error;
use score_sde::backend::npy::{load_npy, save_npy};

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("score_sde_npy_io_{}_{name}", std::process::id()))
}

#[test]
fn round_trips_are_exact_in_both_float_types() {
    let p = tmp("f64.npy");
    let x = Array2::from_shape_fn((17, 3), |(i, j)| (i as f64 + 0.1) * (j as f64 - 1.3).exp());
    save_npy(&p, x.view()).unwrap();
    assert_eq!(load_npy::<f64>(&p).unwrap(), x);
    let p32 = tmp("f32.npy");
    let y = x.mapv(|v| v as f32);
    save_npy(&p32, y.view()).unwrap();
    assert_eq!(load_npy::<f32>(&p32).unwrap(), y);
    // An f32 file read as f64 widens exactly; an f64 file read as f32 rounds to nearest.
    assert_eq!(load_npy::<f64>(&p32).unwrap(), y.mapv(f64::from));
    assert_eq!(load_npy::<f32>(&p).unwrap(), y);
    std::fs::remove_file(p).ok();
    std::fs::remove_file(p32).ok();
}

#[test]
fn non_standard_layouts_are_written_in_logical_order() {
    let p = tmp("transposed.npy");
    let x = array![[1.0_f64, 2.0, 3.0], [4.0, 5.0, 6.0]];
    save_npy(&p, x.t()).unwrap();
    assert_eq!(load_npy::<f64>(&p).unwrap(), x.t().to_owned());
    std::fs::remove_file(p).ok();
}

#[test]
fn one_dimensional_files_load_as_a_column_and_others_are_shape_errors() {
    let p1 = tmp("1d.npy");
    ndarray_npy::write_npy(&p1, &Array1::from_vec(vec![1.0_f64, 2.0, 3.0])).unwrap();
    assert_eq!(
        load_npy::<f32>(&p1).unwrap(),
        array![[1.0_f32], [2.0], [3.0]]
    );
    let p3 = tmp("3d.npy");
    ndarray_npy::write_npy(&p3, &Array3::<f32>::zeros((2, 2, 2))).unwrap();
    let e = load_npy::<f64>(&p3).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e:?}");
    assert!(e.to_string().contains("expected 2, got 3"), "{e}");
    std::fs::remove_file(p1).ok();
    std::fs::remove_file(p3).ok();
}

#[test]
fn missing_and_non_float_files_are_io_errors() {
    assert!(matches!(
        load_npy::<f64>(tmp("missing.npy")),
        Err(Error::Io(_))
    ));
    let p = tmp("ints.npy");
    ndarray_npy::write_npy(&p, &Array2::<i32>::zeros((2, 2))).unwrap();
    assert!(matches!(load_npy::<f64>(&p), Err(Error::Io(_))));
    std::fs::remove_file(p).ok();
}
