//! What a `.lpk` carries besides tensors: the model config, the tokenizer, the provenance.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Hyper-parameters of a Llama-architecture model, as Meta's `ModelArgs` has them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Architecture name; always `"llama"` today.
    pub arch: String,
    /// Model (embedding) width: `dim` in params.json, `hidden_size` in HF.
    pub dim: u32,
    /// Number of transformer blocks.
    pub n_layers: u32,
    /// Query heads.
    pub n_heads: u32,
    /// Key/value heads (= `n_heads` without GQA; 8 on Llama 2 70B).
    pub n_kv_heads: u32,
    /// Hidden width of the SwiGLU feed-forward (`w1`/`w3` rows).
    pub ffn_dim: u32,
    /// Vocabulary size (rows of `tok_embeddings`).
    pub vocab_size: u32,
    /// RMSNorm epsilon.
    pub norm_eps: f32,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// Maximum context length the model was trained for.
    pub context_length: u32,
    /// True when `output.weight` is absent and `tok_embeddings.weight` is used instead.
    pub tied_output: bool,
}

impl ModelConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> u32 {
        self.dim / self.n_heads.max(1)
    }

    /// Width of the K and V projections (`n_kv_heads * head_dim`).
    pub fn kv_dim(&self) -> u32 {
        self.n_kv_heads * self.head_dim()
    }

    /// Checks that the numbers describe a buildable model.
    pub fn validate(&self) -> Result<(), String> {
        const MAX: u32 = 1 << 24;
        let fields = [
            ("dim", self.dim),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("ffn_dim", self.ffn_dim),
            ("vocab_size", self.vocab_size),
            ("context_length", self.context_length),
        ];
        for (name, v) in fields {
            if v == 0 || v > MAX {
                return Err(format!("{name} = {v} is out of range 1..={MAX}"));
            }
        }
        if self.arch != "llama" {
            return Err(format!(
                "unsupported architecture `{}` (expected `llama`)",
                self.arch
            ));
        }
        if !self.dim.is_multiple_of(self.n_heads) {
            return Err(format!(
                "dim {} is not divisible by n_heads {}",
                self.dim, self.n_heads
            ));
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(format!(
                "n_heads {} is not a multiple of n_kv_heads {}",
                self.n_heads, self.n_kv_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(format!(
                "head_dim {} is odd; RoPE needs pairs",
                self.head_dim()
            ));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return Err(format!(
                "norm_eps {} must be a positive number",
                self.norm_eps
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 1.0) {
            return Err(format!(
                "rope_theta {} must be a number above 1",
                self.rope_theta
            ));
        }
        Ok(())
    }
}

/// Which algorithm the vocabulary is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// SentencePiece BPE (Llama 1/2): score-ordered merges, `▁` for spaces, byte fallback.
    SentencePiece,
    /// GPT-2 byte-level BPE (many HF Llama-family models): rank-ordered `merges`.
    Gpt2Bpe,
}

/// SentencePiece's piece types (also GGUF's `tokenizer.ggml.token_type` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TokenType {
    /// An ordinary piece.
    Normal = 1,
    /// The unknown piece.
    Unknown = 2,
    /// A control token (`<s>`, `</s>`): never produced from text.
    Control = 3,
    /// A user-defined piece, matched literally.
    UserDefined = 4,
    /// Unused.
    Unused = 5,
    /// A byte-fallback piece `<0xNN>`.
    Byte = 6,
}

impl TokenType {
    /// From the stored byte; `None` for values outside 1..=6.
    pub fn from_u8(v: u8) -> Option<TokenType> {
        Some(match v {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => return None,
        })
    }
}

/// The tokenizer, complete enough to encode, decode and export again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenizerData {
    /// Algorithm.
    pub kind: TokenizerKind,
    /// Piece text of each id (SentencePiece uses `▁` for a space).
    pub pieces: Vec<String>,
    /// Score of each piece (merge priority for SentencePiece BPE).
    pub scores: Vec<f32>,
    /// [`TokenType`] of each piece, as `u8`.
    pub types: Vec<u8>,
    /// Beginning-of-sequence id.
    pub bos_id: Option<u32>,
    /// End-of-sequence id.
    pub eos_id: Option<u32>,
    /// Unknown-piece id.
    pub unk_id: Option<u32>,
    /// Padding id.
    pub pad_id: Option<u32>,
    /// Prepend BOS when encoding a prompt.
    pub add_bos: bool,
    /// Append EOS when encoding a prompt.
    pub add_eos: bool,
    /// SentencePiece normalizer: prefix the text with a space.
    pub add_dummy_prefix: bool,
    /// SentencePiece normalizer: collapse runs of whitespace.
    pub remove_extra_whitespaces: bool,
    /// Unknown characters become `<0xNN>` byte pieces instead of `<unk>`.
    pub byte_fallback: bool,
    /// GPT-2 BPE merges (`"a b"`), highest priority first; empty for SentencePiece.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merges: Vec<String>,
    /// GPT-2 BPE pre-tokenizer name (as GGUF's `tokenizer.ggml.pre`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre: Option<String>,
    /// Jinja chat template, when the source had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
}

impl TokenizerData {
    /// Number of pieces.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// True when there are no pieces.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// The type of piece `id` (`Normal` for a stored value outside the enum).
    pub fn token_type(&self, id: usize) -> TokenType {
        self.types
            .get(id)
            .and_then(|&t| TokenType::from_u8(t))
            .unwrap_or(TokenType::Normal)
    }

    /// Checks array lengths, special ids and piece types, and that the vocabulary is one the
    /// runner can build a tokenizer from (the one validation of every tokenizer source and of
    /// `.lpk` loading, so a file accepted at convert time loads).
    pub fn validate(&self) -> Result<(), String> {
        let n = self.pieces.len();
        if n == 0 {
            return Err("no pieces".into());
        }
        if self.scores.len() != n || self.types.len() != n {
            return Err(format!(
                "{} pieces but {} scores and {} types",
                n,
                self.scores.len(),
                self.types.len()
            ));
        }
        for (name, id) in [
            ("bos", self.bos_id),
            ("eos", self.eos_id),
            ("unk", self.unk_id),
            ("pad", self.pad_id),
        ] {
            if let Some(id) = id
                && id as usize >= n
            {
                return Err(format!(
                    "{name}_id {id} is not below the vocabulary size {n}"
                ));
            }
        }
        if let Some(i) = self
            .types
            .iter()
            .position(|&t| TokenType::from_u8(t).is_none())
        {
            return Err(format!("piece {i} has unknown type {}", self.types[i]));
        }
        if let Some(i) = self.scores.iter().position(|s| !s.is_finite()) {
            return Err(format!("piece {i} has a non-finite score"));
        }
        match self.kind {
            TokenizerKind::SentencePiece => self.validate_sentencepiece(),
            TokenizerKind::Gpt2Bpe => self.validate_merges(),
        }
    }

    /// What a SentencePiece vocabulary needs to encode: no empty piece, no piece twice among
    /// the ones merges produce (normal, user-defined, unused) nor among the reserved ones
    /// (control, unknown, byte), one unknown piece, and with byte fallback the 256 `<0xNN>`.
    fn validate_sentencepiece(&self) -> Result<(), String> {
        let mut mergeable = std::collections::HashMap::with_capacity(self.pieces.len());
        let mut reserved = std::collections::HashMap::new();
        let mut unk = None;
        let mut bytes = [false; 256];
        for (i, p) in self.pieces.iter().enumerate() {
            if p.is_empty() {
                return Err(format!("piece {i} is empty"));
            }
            let ty = self.token_type(i);
            let map = match ty {
                TokenType::Normal | TokenType::UserDefined | TokenType::Unused => &mut mergeable,
                TokenType::Control | TokenType::Unknown | TokenType::Byte => &mut reserved,
            };
            if let Some(first) = map.insert(p.as_str(), i) {
                return Err(format!(
                    "piece `{p}` is defined twice (ids {first} and {i})"
                ));
            }
            match ty {
                TokenType::Unknown => {
                    if let Some(first) = unk.replace(i) {
                        return Err(format!("two unknown pieces (ids {first} and {i})"));
                    }
                }
                TokenType::Byte => {
                    let b = byte_piece_value(p)
                        .ok_or_else(|| format!("byte piece {i} `{p}` is not <0xNN>"))?;
                    bytes[b as usize] = true;
                }
                _ => {}
            }
        }
        if unk.is_none() && self.unk_id.is_none() {
            return Err("no unknown piece (no piece of type unknown and no unk_id)".into());
        }
        if self.byte_fallback
            && let Some(b) = bytes.iter().position(|&seen| !seen)
        {
            return Err(format!(
                "byte_fallback is on but the byte piece <0x{b:02X}> is missing (all 256 are needed)"
            ));
        }
        Ok(())
    }

    /// GPT-2 merges are two pieces separated by a space.
    fn validate_merges(&self) -> Result<(), String> {
        match self.merges.iter().position(|m| !m.contains(' ')) {
            Some(i) => Err(format!(
                "merge {i} `{}` is not two space-separated pieces",
                self.merges[i]
            )),
            None => Ok(()),
        }
    }
}

/// The byte of a SentencePiece byte piece `<0xNN>` (two hex digits), else `None`.
pub fn byte_piece_value(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// One input file a `.lpk` was made from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    /// File name (relative to the source directory; no absolute paths, for determinism).
    pub name: String,
    /// Lower-case hex sha256 of its bytes.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// How the file came to be: inputs, tool, quantization, measured accuracy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// `llamapack <version>` of the tool that wrote the file.
    pub tool: String,
    /// What the input was: `meta`, `hf`, `gguf`, `lpk`, or `test`.
    pub source_format: String,
    /// Input files with their hashes.
    pub sources: Vec<SourceFile>,
    /// Quantization recipe and per-tensor choices, when quantized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<serde_json::Value>,
    /// The stored accuracy report (`eval --store`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<serde_json::Value>,
    /// Anything else a step wants to record (ordered, so output stays deterministic).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub notes: BTreeMap<String, serde_json::Value>,
}

/// Everything in a `.lpk` header but the tensor index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Hyper-parameters.
    pub config: ModelConfig,
    /// Vocabulary and tokenizer settings.
    pub tokenizer: TokenizerData,
    /// Origin of the file.
    pub provenance: Provenance,
}
