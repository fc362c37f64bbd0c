//! The crate's one error type.
//!
//! Every fallible call in `score_sde` returns [`Result<T>`](Result). Each variant
//! names what was wrong and, where it helps, the offending value and its place.
//!
//! ```
//! use score_sde::prelude::*;
//! // A schedule with β_min > β_max is refused with a typed error, not a panic.
//! let err = VpLinear::<f64>::new(20.0, 0.1).unwrap_err();
//! assert!(matches!(err, Error::InvalidParameter { .. }));
//! println!("{err}"); // names the parameter, its value and the reason
//! ```

use thiserror::Error;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in `score_sde`.
///
/// The enum is `#[non_exhaustive]`: match it with a wildcard arm.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum Error {
    /// Two shapes that must agree do not.
    #[error("shape mismatch for {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// Which argument or buffer.
        what: &'static str,
        /// The shape that was required.
        expected: String,
        /// The shape that was passed.
        got: String,
    },
    /// A batch with no rows, or a mixture with no components.
    #[error("{what} is empty")]
    Empty {
        /// What was empty.
        what: &'static str,
    },
    /// A time outside the schedule's (or SDE's) range.
    #[error("time t = {t:?} is outside the range [{min:?}, {max:?}]")]
    TimeOutOfRange {
        /// The time that was passed.
        t: f64,
        /// Lower end of the range.
        min: f64,
        /// Upper end of the range.
        max: f64,
    },
    /// A NaN or infinity where a finite number is required.
    #[error("non-finite value {value:?} in {what} at index {index}")]
    NonFinite {
        /// Which argument or state.
        what: &'static str,
        /// Flat (or row) index of the first offending entry.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// A numeric parameter outside its valid domain.
    #[error("invalid parameter {name} = {value:?}: {reason}")]
    InvalidParameter {
        /// Parameter name, as in the constructor.
        name: &'static str,
        /// The value that was passed.
        value: f64,
        /// What the value must satisfy.
        reason: &'static str,
    },
    /// A covariance that is not symmetric positive definite.
    #[error("covariance of component {component} is not symmetric positive definite: {reason}")]
    NotPositiveDefinite {
        /// Index of the mixture component (or 0 for a single matrix).
        component: usize,
        /// What failed (asymmetry, or the Cholesky pivot that was not positive).
        reason: String,
    },
    /// Mixture weights that are non-positive or do not sum to one.
    #[error("mixture weights must be positive and sum to 1: {reason}")]
    InvalidWeights {
        /// Which weight failed, or the sum.
        reason: String,
    },
    /// A sampler's state (or a model's output) turned non-finite during a run.
    #[error("the state became non-finite at step {step} (t = {t:?}), row {row}")]
    Diverged {
        /// The step index at which the first non-finite value appeared.
        step: usize,
        /// The time of that step.
        t: f64,
        /// The first row containing a non-finite value.
        row: usize,
    },
    /// An adaptive solver ran out of its step budget.
    #[error("step budget of {max_steps} steps exhausted at t = {t_reached:?}")]
    StepBudgetExceeded {
        /// The step budget.
        max_steps: usize,
        /// The time reached when the budget ran out.
        t_reached: f64,
    },
    /// A root-finder or iterative routine failed to converge.
    #[error("{what} did not converge: {reason}")]
    NoConvergence {
        /// The routine.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// An error reported by a user's model or an external backend.
    #[error("model error: {0}")]
    Model(String),
    /// A network file's interface (input names, shapes or element types) is not the one
    /// the loader expects; `expected` says what is needed, `found` what the file declares.
    #[error("model interface mismatch for {what}: expected {expected}, found {found}")]
    ModelInterface {
        /// Which part of the interface (e.g. "ONNX input names", "ONNX input t shape").
        what: String,
        /// What the loader expects.
        expected: String,
        /// What the file declares.
        found: String,
    },
    /// Reading or parsing a file or JSON document failed.
    #[error("I/O or parse error: {0}")]
    Io(String),
    /// A count or size too large for this machine: its arithmetic overflows `usize`, the
    /// memory it needs exceeds `isize::MAX` bytes or the memory available, or the allocator
    /// refused it. Checked before anything is allocated, so the process is not aborted.
    #[error("{what} is too large: {reason}")]
    TooLarge {
        /// What was to be counted or allocated (e.g. "sample batch", "npy array").
        what: &'static str,
        /// The requested size and why it cannot be had.
        reason: String,
    },
    /// A result that exists in exact arithmetic but lies outside the float type's range
    /// (e.g. a log-density below `−f64::MAX` far out in the tails): the inputs were finite
    /// and valid, the answer cannot be represented, and an `Ok` would hold `±inf` or NaN.
    #[error("{what} is not representable at index {index}: {reason}")]
    Unrepresentable {
        /// The quantity (e.g. "mixture log-density").
        what: &'static str,
        /// The row (or flat index) of the first value that cannot be represented.
        index: usize,
        /// Why, with the sizes involved.
        reason: String,
    },
    /// A combination the configuration cannot run (a sampler option the SDE or method does
    /// not support, or a step method breaking the driver's contract).
    #[error("{what} is not supported: {reason}")]
    Unsupported {
        /// What was asked for.
        what: &'static str,
        /// Why it cannot be done.
        reason: String,
    },
    /// An observer asked the run to stop.
    #[error("stopped by observer at step {step}: {reason}")]
    Stopped {
        /// Step index at which the observer stopped the run.
        step: usize,
        /// The observer's reason.
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::ShapeMismatch`] from two displayable shapes.
    pub fn shape(
        what: &'static str,
        expected: impl std::fmt::Debug,
        got: impl std::fmt::Debug,
    ) -> Self {
        Error::ShapeMismatch {
            what,
            expected: format!("{expected:?}"),
            got: format!("{got:?}"),
        }
    }

    /// Shorthand for [`Error::InvalidParameter`].
    pub fn param(name: &'static str, value: f64, reason: &'static str) -> Self {
        Error::InvalidParameter {
            name,
            value,
            reason,
        }
    }
}
