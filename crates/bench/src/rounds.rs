//! Comparisons over several rounds (`--rounds`, for `--kms` and `--sse`).
//!
//! A ratio between two cells measured once is at the mercy of whatever the disk or the
//! host did during one of them: on a small machine a plaintext cell alone moves by 10–15%
//! from one run to the next. So the variants of a comparison run in turn, `--rounds`
//! times, each round starting with the next variant (a rotation: no variant always runs
//! first or always follows the same one), and each variant is reported by its median
//! round. The MiB/s of every round are printed beside it.

use crate::s3::Cell;

/// Most rounds a comparison may run.
pub const ROUNDS_MAX: usize = 9;

/// The variants, by index, in the order round `round` runs them.
pub fn order(variants: usize, round: usize) -> impl Iterator<Item = usize> {
    (0..variants).map(move |i| (round + i) % variants)
}

/// The cells of one variant (one op, size and concurrency), one per round in the order
/// they ran.
#[derive(Debug, Default)]
pub struct Rounds(Vec<Cell>);

impl Rounds {
    pub fn push(&mut self, cell: Cell) {
        self.0.push(cell);
    }

    /// The round with the median MiB/s (the lower middle one for an even count) and the
    /// MiB/s of every round in the order they ran; `None` without any round.
    pub fn median(self) -> Option<(Cell, Vec<f64>)> {
        let all: Vec<f64> = self.0.iter().map(|cell| cell.summary.mib_per_s).collect();
        let mut by_speed: Vec<usize> = (0..self.0.len()).collect();
        by_speed.sort_by(|&a, &b| all[a].total_cmp(&all[b]));
        let middle = *by_speed.get(by_speed.len().checked_sub(1)? / 2)?;
        let cell = self.0.into_iter().nth(middle)?;
        Some((cell, all))
    }
}

/// `1412/1530/1498`: every round's MiB/s, for the table.
pub fn render(all: &[f64]) -> String {
    all.iter().map(|mib_per_s| format!("{mib_per_s:.0}")).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::Op;

    fn cell(mib_per_s: f64) -> Cell {
        crate::report::tests::cell(Op::Get, 1 << 20, 1, mib_per_s)
    }

    #[test]
    fn every_variant_leads_one_round_in_turn() {
        let rounds: Vec<Vec<usize>> = (0..4).map(|round| order(3, round).collect()).collect();
        assert_eq!(rounds, vec![vec![0, 1, 2], vec![1, 2, 0], vec![2, 0, 1], vec![0, 1, 2]]);
        assert_eq!(order(1, 5).collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn the_median_round_is_kept_and_every_round_listed_in_order() {
        let mut rounds = Rounds::default();
        for mib_per_s in [900.0, 1500.0, 1200.0] {
            rounds.push(cell(mib_per_s));
        }
        let (kept, all) = rounds.median().expect("three rounds");
        assert_eq!(kept.summary.mib_per_s, 1200.0);
        assert_eq!(all, vec![900.0, 1500.0, 1200.0]);
        assert_eq!(render(&all), "900/1500/1200");

        let mut even = Rounds::default();
        for mib_per_s in [4.0, 1.0, 3.0, 2.0] {
            even.push(cell(mib_per_s));
        }
        assert_eq!(even.median().expect("four rounds").0.summary.mib_per_s, 2.0, "lower middle");

        let mut one = Rounds::default();
        one.push(cell(7.0));
        assert_eq!(one.median().expect("one round").0.summary.mib_per_s, 7.0);
        assert!(Rounds::default().median().is_none());
    }
}
