//! Step 2 of calibrated quantization: the allocation, and the plan file that records it
//! (`--dry-run` prints it, `--save-plan` writes it, `--plan` applies a saved one).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use llamapack_format::DType;
use llamapack_quantize::budget::{self, Candidate, Item};
use serde::{Deserialize, Serialize};

use super::Sensitivities;

/// One tensor of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedTensor {
    /// Tensor name (Meta naming).
    pub name: String,
    /// Its type.
    pub dtype: String,
    /// Its bytes in that type.
    pub bytes: u64,
    /// Predicted ΔKLD of the tensor in that type.
    pub predicted: f64,
}

/// The types chosen for a budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetPlan {
    /// `plan`, so a file can be recognized.
    pub kind: String,
    /// The budget: bytes of all tensors (2-D and the rest).
    pub budget_bytes: u64,
    /// Bytes of all tensors with this plan.
    pub bytes: u64,
    /// Bits per weight over all tensors.
    pub bits_per_weight: f64,
    /// Summed predicted ΔKLD (the additive prediction of the whole model's mean KLD).
    pub predicted_kld: f64,
    /// The 2-D tensors and their types.
    pub tensors: Vec<PlannedTensor>,
}

impl BudgetPlan {
    /// The chosen type per tensor name.
    pub fn types(&self) -> anyhow::Result<BTreeMap<String, DType>> {
        self.tensors
            .iter()
            .map(|t| {
                let d = DType::from_name(&t.dtype).with_context(|| {
                    format!("plan: tensor `{}`: unknown type `{}`", t.name, t.dtype)
                })?;
                Ok((t.name.clone(), d))
            })
            .collect()
    }

    /// Reads a plan file written by `--save-plan`.
    pub fn read(path: &std::path::Path) -> anyhow::Result<BudgetPlan> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading plan {}", path.display()))?;
        let p: BudgetPlan = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a llamapack plan file", path.display()))?;
        if p.kind != "plan" {
            bail!(
                "{}: not a llamapack plan file (kind `{}`)",
                path.display(),
                p.kind
            );
        }
        Ok(p)
    }
}

/// Solves the budget: `fixed_bytes` for the tensors that are not planned (norms), `n_weights`
/// every element of the model (for bits per weight).
pub fn allocate(
    sens: &Sensitivities,
    budget_bytes: u64,
    fixed_bytes: u64,
    n_weights: u64,
) -> anyhow::Result<BudgetPlan> {
    let items: Vec<Item> = sens
        .tensors
        .iter()
        .map(|t| Item {
            name: t.name.clone(),
            candidates: t
                .candidates
                .iter()
                .filter_map(|c| {
                    Some(Candidate {
                        dtype: DType::from_name(&c.dtype)?,
                        bytes: c.bytes,
                        loss: c.predicted,
                    })
                })
                .collect(),
        })
        .collect();
    let (min, max) = budget::reachable(&items)?;
    let Some(for_planned) = budget_bytes.checked_sub(fixed_bytes) else {
        bail!(
            "the budget ({budget_bytes} bytes) does not even hold the unquantized tensors ({fixed_bytes} bytes); reachable: {} ..= {} bytes ({:.3} ..= {:.3} bpw)",
            min + fixed_bytes,
            max + fixed_bytes,
            bpw(min + fixed_bytes, n_weights),
            bpw(max + fixed_bytes, n_weights),
        );
    };
    if for_planned > max {
        bail!(
            "a budget of {budget_bytes} bytes ({:.3} bpw) is above the size with every tensor in its best type ({} bytes, {:.3} bpw: nothing more to buy); reachable: {} ..= {} bytes ({:.3} ..= {:.3} bpw)",
            bpw(budget_bytes, n_weights),
            max + fixed_bytes,
            bpw(max + fixed_bytes, n_weights),
            min + fixed_bytes,
            max + fixed_bytes,
            bpw(min + fixed_bytes, n_weights),
            bpw(max + fixed_bytes, n_weights),
        );
    }
    let solution = budget::solve(&items, for_planned).map_err(|e| match e {
        budget::BudgetError::TooSmall { .. } => anyhow::anyhow!(
            "a budget of {budget_bytes} bytes ({:.3} bpw) is below the smallest reachable size; reachable: {} ..= {} bytes ({:.3} ..= {:.3} bpw)",
            bpw(budget_bytes, n_weights),
            min + fixed_bytes,
            max + fixed_bytes,
            bpw(min + fixed_bytes, n_weights),
            bpw(max + fixed_bytes, n_weights),
        ),
        e @ budget::BudgetError::Item(..) => e.into(),
    })?;
    let tensors: Vec<PlannedTensor> = items
        .iter()
        .zip(&solution.choice)
        .map(|(it, &j)| {
            let c = &it.candidates[j];
            PlannedTensor {
                name: it.name.clone(),
                dtype: c.dtype.name().to_owned(),
                bytes: c.bytes,
                predicted: c.loss,
            }
        })
        .collect();
    let bytes = solution.bytes + fixed_bytes;
    Ok(BudgetPlan {
        kind: "plan".into(),
        budget_bytes,
        bytes,
        bits_per_weight: bpw(bytes, n_weights),
        predicted_kld: solution.loss,
        tensors,
    })
}

/// Bits per weight of `bytes` over `n` weights.
pub fn bpw(bytes: u64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        bytes as f64 * 8.0 / n as f64
    }
}
