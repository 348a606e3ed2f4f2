//! Which workflow key each action goes to: uniform, Zipf, one hot key, or a fresh key per
//! action in round-robin order.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;

use crate::cli::Dist;

/// Samples ranks 0..n with probability proportional to 1/(rank+1)^s, by binary search in a
/// precomputed cumulative distribution: O(n) memory once, O(log n) per sample.
#[derive(Debug, Clone)]
pub struct Zipf {
    /// `cdf[k]` is the probability of a rank at most k; the last entry is 1.
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` ranks (at least one) with exponent `s` (0 is uniform).
    pub fn new(n: u64, s: f64) -> Self {
        let mut running = 0.0;
        let mut cdf: Vec<f64> = (1..=n.max(1))
            .map(|rank| {
                running += (rank as f64).powf(-s);
                running
            })
            .collect();
        let total = running;
        for c in &mut cdf {
            *c /= total;
        }
        // Rounding must not leave a sliver above the last entry that no rank covers.
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        Self { cdf }
    }

    /// One rank, 0 the most likely.
    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.random();
        let rank = self.cdf.partition_point(|&c| c <= u);
        rank.min(self.cdf.len() - 1) as u64
    }
}

/// Chooses the key index of each action; shared by all callers of a run.
#[derive(Debug)]
pub enum KeyPicker {
    /// Any of `keys`, equally likely.
    Uniform {
        /// Distinct keys.
        keys: u64,
    },
    /// Zipf-distributed over the keys.
    Zipf(Zipf),
    /// Always key 0.
    Hot,
    /// The next key after the one handed out last, wrapping after `keys`.
    Sequential {
        /// Distinct keys.
        keys: u64,
        /// How many keys were handed out so far, across all callers.
        next: AtomicU64,
    },
}

impl KeyPicker {
    /// The picker for `dist` over `keys` keys.
    pub fn new(dist: Dist, keys: u64, zipf_s: f64) -> Self {
        match dist {
            Dist::Uniform => Self::Uniform { keys },
            Dist::Zipf => Self::Zipf(Zipf::new(keys, zipf_s)),
            Dist::Hot => Self::Hot,
            Dist::Sequential => Self::Sequential {
                keys,
                next: AtomicU64::new(0),
            },
        }
    }

    /// The key index for the next action.
    pub fn pick(&self, rng: &mut impl Rng) -> u64 {
        match self {
            Self::Uniform { keys } => rng.random_range(0..*keys),
            Self::Zipf(zipf) => zipf.sample(rng),
            Self::Hot => 0,
            Self::Sequential { keys, next } => next.fetch_add(1, Ordering::Relaxed) % keys,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn histogram(zipf: &Zipf, ranks: usize, samples: usize) -> Vec<f64> {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = vec![0u64; ranks];
        for _ in 0..samples {
            counts[zipf.sample(&mut rng) as usize] += 1;
        }
        counts.iter().map(|&c| c as f64 / samples as f64).collect()
    }

    #[test]
    fn zipf_with_exponent_one_follows_the_harmonic_weights() {
        let ranks = 100;
        let freq = histogram(&Zipf::new(ranks as u64, 1.0), ranks, 400_000);
        let harmonic: f64 = (1..=ranks).map(|k| 1.0 / k as f64).sum();
        for (rank, expected) in [(0, 1.0 / harmonic), (1, 0.5 / harmonic), (9, 0.1 / harmonic)] {
            let got = freq[rank];
            assert!(
                (got - expected).abs() < 0.1 * expected,
                "rank {rank}: got {got:.4}, expected {expected:.4}"
            );
        }
        // The head is heavy: the first ten ranks take about 56% of all samples.
        let head: f64 = freq[..10].iter().sum();
        assert!((0.53..0.60).contains(&head), "head share {head}");
    }

    #[test]
    fn zipf_with_exponent_zero_is_uniform() {
        let freq = histogram(&Zipf::new(10, 0.0), 10, 200_000);
        assert!(freq.iter().all(|f| (f - 0.1).abs() < 0.01), "{freq:?}");
    }

    #[test]
    fn larger_exponent_is_more_skewed_and_every_rank_is_in_range() {
        let mild = histogram(&Zipf::new(1000, 0.5), 1000, 100_000);
        let steep = histogram(&Zipf::new(1000, 1.5), 1000, 100_000);
        assert!(steep[0] > 3.0 * mild[0]);
        let one = Zipf::new(1, 1.0);
        let mut rng = SmallRng::seed_from_u64(1);
        assert!((0..1000).all(|_| one.sample(&mut rng) == 0));
    }

    #[test]
    fn sequential_hands_out_each_key_once_per_round() {
        let picker = KeyPicker::new(Dist::Sequential, 3, 1.0);
        let mut rng = SmallRng::seed_from_u64(1);
        let picked: Vec<u64> = (0..7).map(|_| picker.pick(&mut rng)).collect();
        assert_eq!(picked, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn uniform_stays_in_range_and_hot_is_one_key() {
        let mut rng = SmallRng::seed_from_u64(3);
        let uniform = KeyPicker::new(Dist::Uniform, 5, 1.0);
        assert!((0..1000).all(|_| uniform.pick(&mut rng) < 5));
        let hot = KeyPicker::new(Dist::Hot, 1, 1.0);
        assert!((0..10).all(|_| hot.pick(&mut rng) == 0));
    }
}
