//! A type per tensor under a size budget: the multiple-choice knapsack behind
//! `quantize --target-bpw` / `--target-size`.
//!
//! Every tensor ([`Item`]) has candidate encodings ([`Candidate`]: a type, its bytes, its
//! predicted loss — for llamapack the predicted increase of the KL divergence against the f16
//! model). [`solve`] picks one per tensor so that the bytes fit the budget and the summed loss is
//! least, by the Lagrangian method on each tensor's lower convex hull: start every tensor at its
//! smallest candidate, then apply upgrades in order of loss saved per byte (the multiplier
//! falling) while they fit; the hull makes each tensor's successive upgrades ever less
//! efficient, so this is the Lagrangian optimum at the bytes it reaches. A last pass spends what
//! is left on the single best upgrade that still fits, hull or not, until none does.
//!
//! Bound (tested against exhaustive search): the result is never worse than the true optimum
//! for a budget smaller by the largest single upgrade step; in practice it is the optimum or
//! within one tensor's step of it.
//!
//! ```
//! use llamapack_quantize::budget::{Candidate, Item, solve};
//! use llamapack_quantize::DType;
//!
//! let c = |dtype, bytes, loss| Candidate { dtype, bytes, loss };
//! let items = vec![
//!     Item { name: "sensitive".into(), candidates: vec![c(DType::Q4_0, 45, 9.0), c(DType::Q8_0, 85, 0.5)] },
//!     Item { name: "robust".into(), candidates: vec![c(DType::Q4_0, 45, 1.0), c(DType::Q8_0, 85, 0.1)] },
//! ];
//! let s = solve(&items, 140)?;
//! assert_eq!(s.choice, vec![1, 0]); // the bytes go where they save the most loss
//! assert_eq!(s.bytes, 130);
//! assert!(solve(&items, 80).is_err()); // below the smallest reachable size
//! # Ok::<(), llamapack_quantize::budget::BudgetError>(())
//! ```

use llamapack_format::DType;

/// One way to store a tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// The type.
    pub dtype: DType,
    /// Bytes the tensor takes in it.
    pub bytes: u64,
    /// Predicted loss (≥ 0, smaller is better; finite).
    pub loss: f64,
}

/// A tensor and its candidates (at least one).
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// Tensor name, for errors and plans.
    pub name: String,
    /// Its candidate encodings, in any order.
    pub candidates: Vec<Candidate>,
}

/// What [`solve`] chose.
#[derive(Clone, Debug, PartialEq)]
pub struct Solution {
    /// Per item, the index of the chosen candidate.
    pub choice: Vec<usize>,
    /// Total bytes of the choice.
    pub bytes: u64,
    /// Summed predicted loss of the choice.
    pub loss: f64,
}

/// Why no choice fits.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BudgetError {
    /// The budget is below the smallest reachable size.
    #[error(
        "a budget of {budget} bytes is below the smallest reachable size, {min} bytes (every tensor in its smallest candidate type); reachable: {min}..={max} bytes"
    )]
    TooSmall {
        /// The budget asked for.
        budget: u64,
        /// Every tensor at its smallest candidate.
        min: u64,
        /// Every tensor at its least-loss candidate.
        max: u64,
    },
    /// An item has no candidate, or a candidate's loss is not finite or negative.
    #[error("tensor `{0}`: {1}")]
    Item(String, String),
}

/// Bytes of every tensor at its smallest and at its least-loss candidate: the range of budgets
/// that mean something (a larger budget changes nothing).
pub fn reachable(items: &[Item]) -> Result<(u64, u64), BudgetError> {
    check(items)?;
    let min = items
        .iter()
        .map(|it| it.candidates.iter().map(|c| c.bytes).min().unwrap_or(0))
        .sum();
    let max = items.iter().map(|it| it.candidates[best(it)].bytes).sum();
    Ok((min, max))
}

fn check(items: &[Item]) -> Result<(), BudgetError> {
    for it in items {
        if it.candidates.is_empty() {
            return Err(BudgetError::Item(
                it.name.clone(),
                "no candidate type".into(),
            ));
        }
        if let Some(c) = it
            .candidates
            .iter()
            .find(|c| !c.loss.is_finite() || c.loss < 0.0)
        {
            return Err(BudgetError::Item(
                it.name.clone(),
                format!("predicted loss {} for {}", c.loss, c.dtype),
            ));
        }
    }
    Ok(())
}

/// Index of the least-loss candidate (the smaller on ties).
fn best(it: &Item) -> usize {
    let mut b = 0;
    for (i, c) in it.candidates.iter().enumerate() {
        let cb = &it.candidates[b];
        if c.loss < cb.loss || (c.loss == cb.loss && c.bytes < cb.bytes) {
            b = i;
        }
    }
    b
}

/// The lower convex hull of an item's (bytes, loss) points, smallest first: the candidates a
/// Lagrangian multiplier can select, each upgrade saving less loss per byte than the one before.
fn hull(it: &Item) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..it.candidates.len()).collect();
    let c = &it.candidates;
    idx.sort_by(|&a, &b| {
        (c[a].bytes, c[a].loss)
            .partial_cmp(&(c[b].bytes, c[b].loss))
            .expect("finite losses")
    });
    // Pareto: strictly less loss for more bytes.
    let mut pareto: Vec<usize> = Vec::new();
    for i in idx {
        if pareto
            .last()
            .is_none_or(|&p| c[i].loss < c[p].loss && c[i].bytes > c[p].bytes)
        {
            pareto.push(i);
        }
    }
    let mut h: Vec<usize> = Vec::new();
    for i in pareto {
        while h.len() >= 2 {
            let (a, b) = (h[h.len() - 2], h[h.len() - 1]);
            // drop b if it lies on or above the segment a → i
            let (x1, y1) = ((c[b].bytes - c[a].bytes) as f64, c[a].loss - c[b].loss);
            let (x2, y2) = ((c[i].bytes - c[a].bytes) as f64, c[a].loss - c[i].loss);
            if y1 * x2 <= y2 * x1 {
                h.pop();
            } else {
                break;
            }
        }
        h.push(i);
    }
    h
}

/// Picks a candidate per item with total bytes ≤ `budget` and the least summed loss (see the
/// module docs for the method and its bound).
pub fn solve(items: &[Item], budget: u64) -> Result<Solution, BudgetError> {
    let (min, max) = reachable(items)?;
    if budget < min {
        return Err(BudgetError::TooSmall { budget, min, max });
    }
    let hulls: Vec<Vec<usize>> = items.iter().map(hull).collect();
    // position on each hull
    let mut pos = vec![0usize; items.len()];
    let mut bytes: u64 = items
        .iter()
        .zip(&hulls)
        .map(|(it, h)| it.candidates[h[0]].bytes)
        .sum();
    // Upgrades in order of efficiency; each item's next step becomes available after the last.
    let step = |i: usize, p: usize| -> Option<(f64, u64)> {
        let h = &hulls[i];
        let (a, b) = (
            &items[i].candidates[*h.get(p)?],
            &items[i].candidates[*h.get(p + 1)?],
        );
        Some((
            (a.loss - b.loss) / (b.bytes - a.bytes) as f64,
            b.bytes - a.bytes,
        ))
    };
    loop {
        // the most efficient step that fits (ties: lower index), linear scan is fine for the
        // few hundred tensors of a model
        let mut pick: Option<(f64, usize)> = None;
        for (i, &p) in pos.iter().enumerate() {
            if let Some((eff, db)) = step(i, p)
                && bytes + db <= budget
                && pick.is_none_or(|(e, _)| eff > e)
            {
                pick = Some((eff, i));
            }
        }
        let Some((_, i)) = pick else { break };
        bytes += step(i, pos[i]).expect("picked").1;
        pos[i] += 1;
    }
    let mut choice: Vec<usize> = pos.iter().zip(&hulls).map(|(&p, h)| h[p]).collect();
    // Spend the rest: the single upgrade (any candidate) saving the most loss that fits.
    loop {
        let mut pick: Option<(f64, usize, usize)> = None;
        for (i, it) in items.iter().enumerate() {
            let cur = &it.candidates[choice[i]];
            for (j, c) in it.candidates.iter().enumerate() {
                let saved = cur.loss - c.loss;
                if saved > 0.0
                    && bytes - cur.bytes + c.bytes <= budget
                    && pick.is_none_or(|(s, _, _)| saved > s)
                {
                    pick = Some((saved, i, j));
                }
            }
        }
        let Some((_, i, j)) = pick else { break };
        bytes = bytes - items[i].candidates[choice[i]].bytes + items[i].candidates[j].bytes;
        choice[i] = j;
    }
    let loss = items
        .iter()
        .zip(&choice)
        .map(|(it, &j)| it.candidates[j].loss)
        .sum();
    Ok(Solution {
        choice,
        bytes,
        loss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(points: &[(u64, f64)]) -> Item {
        Item {
            name: "t".into(),
            candidates: points
                .iter()
                .map(|&(bytes, loss)| Candidate {
                    dtype: DType::Q4_0,
                    bytes,
                    loss,
                })
                .collect(),
        }
    }

    /// Exhaustive optimum for a budget (None when nothing fits).
    fn optimum(items: &[Item], budget: u64) -> Option<f64> {
        fn go(items: &[Item], budget: u64) -> Option<f64> {
            let Some((first, rest)) = items.split_first() else {
                return Some(0.0);
            };
            first
                .candidates
                .iter()
                .filter(|c| c.bytes <= budget)
                .filter_map(|c| go(rest, budget - c.bytes).map(|l| l + c.loss))
                .min_by(|a, b| a.partial_cmp(b).unwrap())
        }
        go(items, budget)
    }

    proptest! {
        #[test]
        fn fits_and_is_within_one_step_of_the_optimum(
            raw in prop::collection::vec(prop::collection::vec((1u64..40, 0.0f64..10.0), 1..5), 1..6),
            slack in 0u64..120,
        ) {
            let items: Vec<Item> = raw.iter().map(|p| item(p)).collect();
            let (min, max) = reachable(&items).unwrap();
            let budget = min + slack;
            let s = solve(&items, budget).unwrap();
            prop_assert!(s.bytes <= budget);
            let bytes: u64 = items.iter().zip(&s.choice).map(|(it, &j)| it.candidates[j].bytes).sum();
            prop_assert_eq!(bytes, s.bytes);
            let max_step = items.iter().flat_map(|it| it.candidates.iter().map(|c| c.bytes)).max().unwrap();
            if let Some(opt) = optimum(&items, budget.saturating_sub(max_step)) {
                prop_assert!(s.loss <= opt + 1e-9, "{} > optimum {} at budget {} - {}", s.loss, opt, budget, max_step);
            }
            let exact = optimum(&items, budget).unwrap();
            prop_assert!(s.loss + 1e-9 >= exact);
            if budget >= max {
                let least: f64 = items.iter().map(|it| it.candidates[best(it)].loss).sum();
                prop_assert!((s.loss - least).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn too_small_a_budget_names_the_range() {
        let items = vec![item(&[(10, 1.0), (20, 0.5)]), item(&[(5, 2.0)])];
        let e = solve(&items, 14).unwrap_err();
        assert_eq!(
            e,
            BudgetError::TooSmall {
                budget: 14,
                min: 15,
                max: 25
            }
        );
        assert!(e.to_string().contains("15..=25"));
    }

    #[test]
    fn bad_items_are_refused() {
        assert!(matches!(
            solve(&[item(&[])], 10),
            Err(BudgetError::Item(_, _))
        ));
        assert!(matches!(
            solve(&[item(&[(1, f64::NAN)])], 10),
            Err(BudgetError::Item(_, _))
        ));
    }

    #[test]
    fn hull_drops_dominated_and_concave_points() {
        // (30, 5.0) and (25, 8.0) are dominated by (20, 4.0), which lies below the segment
        // (10,9)→(40,0) and stays; in the second, (20, 7.0) lies above it and goes.
        let it = item(&[(10, 9.0), (20, 4.0), (30, 5.0), (40, 0.0), (25, 8.0)]);
        assert_eq!(hull(&it), vec![0, 1, 3]);
        let it = item(&[(10, 9.0), (20, 7.0), (40, 0.0)]);
        assert_eq!(hull(&it), vec![0, 2]);
    }
}
