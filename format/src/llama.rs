//! The tensors of a Llama model under Meta's names (what a `.lpk` holds), and the shape a
//! [`ModelConfig`] gives each: the one table the workspace checks configs against.
//!
//! [`ModelConfig::check_tensors`] is how the reader and the writer hold a file's config to its
//! tensors, once, at load: every consumer (the runner, both exports, `inspect`) then sees
//! numbers that agree with the bytes.

use std::collections::HashSet;

use crate::meta::ModelConfig;

/// The tensors of each layer, in order: the name after `layers.N.`.
pub const LAYER_TENSORS: [&str; 9] = [
    "attention.wq.weight",
    "attention.wk.weight",
    "attention.wv.weight",
    "attention.wo.weight",
    "feed_forward.w1.weight",
    "feed_forward.w2.weight",
    "feed_forward.w3.weight",
    "attention_norm.weight",
    "ffn_norm.weight",
];

/// The token embedding, first of the model's tensors.
pub const TOK_EMBEDDINGS: &str = "tok_embeddings.weight";
/// The final norm, after the layers.
pub const NORM: &str = "norm.weight";
/// The output projection, last (absent when the output is tied to the embedding).
pub const OUTPUT: &str = "output.weight";

/// What a tensor is in a Llama model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// `tok_embeddings.weight`.
    TokEmbeddings,
    /// `norm.weight`.
    Norm,
    /// `output.weight`.
    Output,
    /// `layers.<layer>.<LAYER_TENSORS[which]>`.
    Layer {
        /// The layer.
        layer: u32,
        /// Index in [`LAYER_TENSORS`].
        which: usize,
    },
}

impl Role {
    /// The role of a Meta tensor name (`layers.3.attention.wk.weight`); `None` for a name that
    /// is not a Llama weight (a layer number is canonical decimal: `01` is not `1`).
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            TOK_EMBEDDINGS => return Some(Role::TokEmbeddings),
            NORM => return Some(Role::Norm),
            OUTPUT => return Some(Role::Output),
            _ => {}
        }
        let (n, leaf) = name.strip_prefix("layers.")?.split_once('.')?;
        let canonical = !n.is_empty() && (n == "0" || !n.starts_with('0'));
        if !canonical || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Role::Layer {
            layer: n.parse().ok()?,
            which: LAYER_TENSORS.iter().position(|&t| t == leaf)?,
        })
    }

    /// The Meta name.
    pub fn name(self) -> String {
        match self {
            Role::TokEmbeddings => TOK_EMBEDDINGS.into(),
            Role::Norm => NORM.into(),
            Role::Output => OUTPUT.into(),
            Role::Layer { layer, which } => format!("layers.{layer}.{}", LAYER_TENSORS[which]),
        }
    }
}

/// A tensor the config contradicts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The tensor.
    pub tensor: String,
    /// How it disagrees, with the numbers on both sides.
    pub reason: String,
}

impl ModelConfig {
    /// Each dimension of `role`'s shape with how it follows from the config.
    fn dims(&self, role: Role) -> Vec<(u64, String)> {
        let (dim, ffn, vocab) = (
            u64::from(self.dim),
            u64::from(self.ffn_dim),
            u64::from(self.vocab_size),
        );
        let hd = u64::from(self.head_dim());
        let d = || (dim, format!("dim = {dim}"));
        let q = || {
            let n = u64::from(self.n_heads);
            (n * hd, format!("n_heads {n} × head_dim {hd} = {}", n * hd))
        };
        let kv = || {
            let n = u64::from(self.n_kv_heads);
            (
                n * hd,
                format!("n_kv_heads {n} × head_dim {hd} = {}", n * hd),
            )
        };
        let f = || (ffn, format!("ffn_dim = {ffn}"));
        match role {
            Role::TokEmbeddings | Role::Output => {
                vec![(vocab, format!("vocab_size = {vocab}")), d()]
            }
            Role::Norm | Role::Layer { which: 7 | 8, .. } => vec![d()],
            Role::Layer { which: 0, .. } => vec![q(), d()],
            Role::Layer { which: 1 | 2, .. } => vec![kv(), d()],
            Role::Layer { which: 3, .. } => vec![d(), q()],
            Role::Layer { which: 5, .. } => vec![d(), f()],
            Role::Layer { .. } => vec![f(), d()],
        }
    }

    /// The shape this config gives the tensor `role` (outermost first, `[out, in]`).
    pub fn shape_of(&self, role: Role) -> Vec<u64> {
        self.dims(role).into_iter().map(|(v, _)| v).collect()
    }

    /// The tensors of a model with this config, in order: the embedding, each layer's
    /// [`LAYER_TENSORS`], the norm, the output unless tied. Lazy: nothing is built for a layer
    /// count until it is reached.
    pub fn roles(&self) -> impl Iterator<Item = Role> + use<> {
        let layers = (0..self.n_layers).flat_map(|layer| {
            (0..LAYER_TENSORS.len()).map(move |which| Role::Layer { layer, which })
        });
        let output = (!self.tied_output).then_some(Role::Output);
        std::iter::once(Role::TokEmbeddings)
            .chain(layers)
            .chain([Role::Norm])
            .chain(output)
    }

    /// [`roles`](Self::roles) with their names and shapes.
    pub fn tensors(&self) -> impl Iterator<Item = (String, Vec<u64>)> + '_ {
        self.roles().map(|r| (r.name(), self.shape_of(r)))
    }

    /// How many tensors a model with this config has.
    pub fn tensor_count(&self) -> u64 {
        2 + LAYER_TENSORS.len() as u64 * u64::from(self.n_layers) + u64::from(!self.tied_output)
    }

    /// Holds `tensors` (name, shape) to the config: each Llama tensor has the config's shape,
    /// none lies beyond `n_layers`, there is no `output.weight` when the output is tied, and
    /// none is missing. A set without any Llama tensor is a plain container and passes; one
    /// with Llama tensors may hold nothing else.
    ///
    /// Linear in the tensors, whatever the config claims: a hostile `n_layers` costs nothing.
    pub fn check_tensors<'a>(
        &self,
        tensors: impl IntoIterator<Item = (&'a str, &'a [u64])>,
    ) -> Result<(), Mismatch> {
        let fail = |tensor: &str, reason: String| {
            Err(Mismatch {
                tensor: tensor.to_owned(),
                reason,
            })
        };
        let mut present = HashSet::new();
        let mut last_layer = None;
        let mut other = None;
        for (name, shape) in tensors {
            let Some(role) = Role::parse(name) else {
                other.get_or_insert(name);
                continue;
            };
            match role {
                Role::Layer { layer, .. } if layer >= self.n_layers => {
                    return fail(
                        name,
                        format!(
                            "it is in layer {layer}, but the config has n_layers = {}",
                            self.n_layers
                        ),
                    );
                }
                Role::Layer { layer, .. } => {
                    last_layer = last_layer.max(Some(layer));
                }
                Role::Output if self.tied_output => {
                    return fail(
                        name,
                        "it is present, but the config has tied_output = true, which would ignore it and use tok_embeddings.weight".into(),
                    );
                }
                _ => {}
            }
            let dims = self.dims(role);
            let want: Vec<u64> = dims.iter().map(|(v, _)| *v).collect();
            if shape != want.as_slice() {
                let why = match shape.iter().zip(&dims).position(|(s, (v, _))| s != v) {
                    Some(i) if shape.len() == dims.len() => format!(
                        "dimension {i} is {} where the config's {}",
                        shape[i], dims[i].1
                    ),
                    _ => format!(
                        "{} dimensions where the config implies {}",
                        shape.len(),
                        dims.len()
                    ),
                };
                return fail(
                    name,
                    format!("its shape is {shape:?}, the config's is {want:?}: {why}"),
                );
            }
            present.insert(role);
        }
        if present.is_empty() {
            return Ok(());
        }
        if let Some(name) = other {
            return fail(
                name,
                "it is not a Llama tensor, and the file holds a Llama model".into(),
            );
        }
        if present.len() as u64 == self.tensor_count() {
            return Ok(());
        }
        // Every tensor present is one of the config's (checked above), so the first missing
        // one comes within `present.len() + 1` steps, however large `n_layers` is.
        let missing = self
            .roles()
            .find(|r| !present.contains(r))
            .expect("fewer tensors present than the config has");
        let reason = match (missing, last_layer) {
            (Role::Layer { layer, .. }, Some(last)) if layer > last => format!(
                "it is missing: the config has n_layers = {}, the file's layers stop at layer {last}",
                self.n_layers
            ),
            (Role::Layer { .. }, None) => format!(
                "it is missing: the config has n_layers = {}, the file holds no layer",
                self.n_layers
            ),
            _ => "it is missing".into(),
        };
        fail(&missing.name(), reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_both_ways() {
        let c = crate::testing::tiny_config();
        for r in c.roles() {
            assert_eq!(Role::parse(&r.name()), Some(r));
        }
        assert_eq!(c.roles().count() as u64, c.tensor_count());
        for bad in [
            "layers.01.attention.wq.weight",
            "layers.x.ffn_norm.weight",
            "rope.freqs",
        ] {
            assert_eq!(Role::parse(bad), None, "{bad}");
        }
    }

    /// Found by the `model` fuzz target: a tensor with an empty name beside a whole model is
    /// the one named (as ``) in the mismatch.
    #[test]
    fn an_unnamed_tensor_beside_a_model_is_the_one_named() {
        let c = crate::testing::tiny_config();
        let mut ts: Vec<(String, Vec<u64>)> = c.tensors().collect();
        ts.push((String::new(), vec![1]));
        let m = c
            .check_tensors(ts.iter().map(|(n, s)| (n.as_str(), s.as_slice())))
            .unwrap_err();
        assert_eq!(m.tensor, "");
        assert!(m.reason.contains("not a Llama tensor"), "{}", m.reason);
    }
}
