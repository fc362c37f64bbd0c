//! Random inputs from one `u64` seed, with rand 0.9's `Pcg64` (proptest's own generator is
//! rand 0.10, which the crate's API does not take: proptest draws the seed, this builds the
//! rest). Every palette mixes ordinary values with the extremes the suite is about: 0, −0,
//! ±1e300, ±f64::MAX, NaN, ±∞, subnormals, and the edges of f32.

use score_sde::rand::{Rng, RngCore, SeedableRng};
use score_sde::rand_pcg::Pcg64;

/// The extreme floats every palette draws from.
pub const EXTREMES: [f64; 22] = [
    0.0,
    -0.0,
    1e300,
    -1e300,
    f64::MAX,
    -f64::MAX,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    5e-324,
    1e-310,
    f64::MIN_POSITIVE,
    1e-300,
    -1e-300,
    1e200,
    1.5e154,
    1e-160,
    3.5e38,
    1e20,
    1e-40,
    -1e20,
    9e307,
];

/// Huge counts: each must be refused quickly (checked arithmetic, checked allocation).
pub const HUGE_COUNTS: [usize; 6] = [
    usize::MAX,
    usize::MAX / 2,
    usize::MAX / 3 + 1,
    1 << 40,
    1 << 62,
    1_000_000_000_000,
];

/// The case's generator.
pub struct Gen {
    rng: Pcg64,
    /// Probability of an extreme value where a palette offers one.
    pub extreme: f64,
}

impl Gen {
    pub fn new(seed: u64) -> Self {
        let mut rng = Pcg64::seed_from_u64(seed);
        // Some cases are mostly valid (deep paths), some mostly extreme (every check).
        let extreme = [0.0, 0.0, 0.02, 0.08, 0.3][rng.random_range(0..5)];
        Self { rng, extreme }
    }

    /// A generator for the library's `rng` arguments.
    pub fn rng(&mut self) -> Pcg64 {
        Pcg64::seed_from_u64(self.rng.next_u64())
    }

    pub fn u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Uniform in `0..n` (`n ≥ 1`).
    pub fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.random::<f64>() < p
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    fn is_extreme(&mut self) -> bool {
        let p = self.extreme;
        self.chance(p)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.rng.random::<f64>()
    }

    /// Any float: usually O(1)–O(10) of either sign, sometimes an extreme.
    pub fn float(&mut self) -> f64 {
        if self.is_extreme() {
            return self.pick(&EXTREMES);
        }
        let mag = 10f64.powf(self.uniform(-3.0, 1.5));
        if self.chance(0.5) { mag } else { -mag }
    }

    /// A float near `typical` (within a factor 10 either way), sometimes an extreme.
    pub fn near(&mut self, typical: f64) -> f64 {
        if self.is_extreme() {
            return self.pick(&EXTREMES);
        }
        typical * 10f64.powf(self.uniform(-1.0, 1.0))
    }

    /// A value in `[lo, hi]`, sometimes an extreme.
    pub fn within(&mut self, lo: f64, hi: f64) -> f64 {
        if self.is_extreme() {
            return self.pick(&EXTREMES);
        }
        self.uniform(lo, hi)
    }

    /// A count: usually `1..=max`, sometimes 0 or huge.
    pub fn count(&mut self, max: usize) -> usize {
        if self.is_extreme() {
            if self.chance(0.3) {
                return 0;
            }
            return self.pick(&HUGE_COUNTS);
        }
        1 + self.below(max)
    }

    /// A count for something that is then run (steps, batch rows): `1..=max`, or 0; never
    /// huge, so that a valid configuration stays fast.
    pub fn small_count(&mut self, max: usize) -> usize {
        if self.is_extreme() && self.chance(0.3) {
            return 0;
        }
        1 + self.below(max)
    }

    /// `n` floats from [`Gen::float`], or (more often) scaled normal draws.
    pub fn floats(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                if self.is_extreme() {
                    self.pick(&EXTREMES)
                } else {
                    scale * (self.uniform(-1.0, 1.0) + self.uniform(-1.0, 1.0))
                }
            })
            .collect()
    }

    /// Bytes: random, or a valid prefix with random changes.
    pub fn mutate(&mut self, valid: &[u8]) -> Vec<u8> {
        match self.below(5) {
            0 => (0..self.below(300))
                .map(|_| self.rng.random::<u8>())
                .collect(),
            1 => valid[..self.below(valid.len() + 1)].to_vec(),
            _ => {
                let mut b = valid.to_vec();
                for _ in 0..1 + self.below(8) {
                    if b.is_empty() {
                        break;
                    }
                    let i = self.below(b.len());
                    match self.below(3) {
                        0 => b[i] = self.rng.random(),
                        1 => {
                            b.remove(i);
                        }
                        _ => b.insert(i, self.rng.random()),
                    }
                }
                b
            }
        }
    }
}
