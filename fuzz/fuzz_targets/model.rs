//! Fuzzes the config-against-tensors check of a `.lpk` (`ModelConfig::check_tensors`, what the
//! reader and the writer run at load/finish): any config and any (name, shape) list must pass
//! or give a mismatch naming a tensor — never panic, never work proportional to a hostile
//! `n_layers` — and what passes must be exactly the config's model (or no model at all).
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use llamapack_format::llama::{LAYER_TENSORS, Role};
use llamapack_format::{ModelConfig, testing};

/// A count: usually small, sometimes anything.
fn count(u: &mut Unstructured<'_>) -> Result<u32> {
    Ok(if u.ratio(7, 8)? {
        u.int_in_range(0..=9)?
    } else {
        u.arbitrary()?
    })
}

fn config(u: &mut Unstructured<'_>) -> Result<ModelConfig> {
    let heads = count(u)?;
    Ok(ModelConfig {
        dim: count(u)?.saturating_mul(heads.max(1)).saturating_mul(2),
        n_layers: count(u)?,
        n_heads: heads,
        n_kv_heads: count(u)?,
        ffn_dim: count(u)?,
        vocab_size: count(u)?,
        tied_output: u.arbitrary()?,
        ..testing::tiny_config()
    })
}

fn tensors(u: &mut Unstructured<'_>, c: &ModelConfig) -> Result<Vec<(String, Vec<u64>)>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    // Often the whole true model, then edits; else a list from scratch.
    if u.ratio(1, 2)? && c.tensor_count() < 200 {
        out.extend(c.tensors());
    }
    for _ in 0..u.int_in_range(0..=8)? {
        let role = match u.int_in_range(0..=4)? {
            0 => Role::TokEmbeddings,
            1 => Role::Norm,
            2 => Role::Output,
            _ => Role::Layer {
                layer: count(u)?,
                which: u.int_in_range(0..=LAYER_TENSORS.len() - 1)?,
            },
        };
        let name = if u.ratio(1, 8)? {
            u.arbitrary::<String>()?
        } else {
            role.name()
        };
        let shape = if u.ratio(1, 2)? {
            c.shape_of(role)
        } else {
            let n = u.int_in_range(0..=3)?;
            (0..n).map(|_| u.arbitrary::<u16>().map(u64::from)).collect::<Result<_>>()?
        };
        match u.int_in_range(0..=2)? {
            0 if !out.is_empty() => {
                let i = u.choose_index(out.len())?;
                out.remove(i);
            }
            1 if !out.is_empty() => {
                let i = u.choose_index(out.len())?;
                out[i].1 = shape;
            }
            _ => out.push((name, shape)),
        }
    }
    // The reader refuses duplicate names before this check.
    out.retain(|(n, _)| seen.insert(n.clone()));
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(c) = config(&mut u) else { return };
    if c.validate().is_err() {
        return;
    }
    let Ok(ts) = tensors(&mut u, &c) else { return };
    let view = ts.iter().map(|(n, s)| (n.as_str(), s.as_slice()));
    match c.check_tensors(view) {
        Ok(()) => {
            let llama: Vec<Role> = ts.iter().filter_map(|(n, _)| Role::parse(n)).collect();
            if !llama.is_empty() {
                assert_eq!(llama.len(), ts.len(), "a model with other tensors passed");
                assert_eq!(llama.len() as u64, c.tensor_count(), "an incomplete model passed");
                for (n, s) in &ts {
                    assert_eq!(*s, c.shape_of(Role::parse(n).unwrap()), "{n}");
                }
            }
        }
        // The mismatch names a tensor of the list (whatever its name, "" included) or one the
        // config has and the list lacks; it says why.
        Err(m) => {
            assert!(!m.reason.is_empty());
            let listed = ts.iter().any(|(n, _)| *n == m.tensor);
            let missing = c.roles().take(ts.len() + 1).any(|r| r.name() == m.tensor);
            assert!(listed || missing, "{m:?}");
        }
    }
});
