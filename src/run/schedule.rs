//! The training order and the minibatch stream. Epoch e visits the rows in a permutation
//! drawn from (seed, e), and step t's preprocessing noise comes from (seed, t), so any step
//! can be regenerated: that is what makes resuming exact.

use crate::data::images::Preprocess;
use crate::data::Table;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::sync::Arc;

pub struct Schedule {
    pub rows: usize,
    pub batch: usize,
    pub seed: u64,
}

pub(crate) fn mix(a: u64, b: u64) -> u64 {
    // SplitMix64 of the pair: decorrelates neighbouring seeds and epochs.
    let mut z = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Schedule {
    pub fn steps_per_epoch(&self) -> usize {
        self.rows / self.batch
    }
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.rows).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(mix(self.seed, epoch as u64)));
        order
    }
}

/// Prepares minibatches for steps `first..=last` (1-based) on a background thread, so the
/// GPU never waits for the host to gather and preprocess.
pub fn batch_stream(
    data: Arc<Table>,
    pre: Option<Preprocess>,
    sched: Schedule,
    first: u64,
    last: u64,
) -> std::sync::mpsc::Receiver<Vec<f32>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    std::thread::spawn(move || {
        let spe = sched.steps_per_epoch() as u64;
        let mut cached: Option<(usize, Vec<usize>)> = None;
        for t in first..=last {
            let epoch = ((t - 1) / spe) as usize;
            let b = ((t - 1) % spe) as usize;
            let order = match &cached {
                Some((e, order)) if *e == epoch => order,
                _ => &cached.insert((epoch, sched.order(epoch))).1,
            };
            let mut xb = Vec::with_capacity(sched.batch * data.dim);
            for &r in &order[b * sched.batch..(b + 1) * sched.batch] {
                data.extend_rows(r..r + 1, &mut xb);
            }
            if let Some(p) = &pre {
                let mut rng = rand::rngs::StdRng::seed_from_u64(mix(sched.seed ^ 0xDE0A, t));
                p.apply(&mut xb, data.dim, &mut rng);
            }
            if tx.send(xb).is_err() {
                return;
            }
        }
    });
    rx
}
