//! The allow-list interpreter: gives meaning to the inert values of [`super::vm`] for exactly
//! the globals a `PyTorch` state dict uses, and nothing else.
//!
//! | global | meaning |
//! |---|---|
//! | `collections.OrderedDict` | a dict (its `_metadata` state is ignored) |
//! | `torch._utils._rebuild_tensor_v2`, `_rebuild_tensor` | a tensor view of a storage |
//! | `torch._utils._rebuild_parameter`, `_rebuild_parameter_with_state` | its tensor |
//! | `torch.FloatStorage`, `HalfStorage`, `BFloat16Storage`, … | a storage dtype |
//! | `torch.device` | a device (ignored) |

use super::vm::{Id, Obj, Pickle, kind};
use crate::dtype::SourceDType;

/// Whether the VM may reference `module.name`.
pub fn allowed(module: &str, name: &str) -> bool {
    match module {
        "collections" => name == "OrderedDict",
        "torch._utils" => matches!(
            name,
            "_rebuild_tensor_v2"
                | "_rebuild_tensor"
                | "_rebuild_parameter"
                | "_rebuild_parameter_with_state"
        ),
        "torch" => name == "device" || storage_dtype(name).is_some(),
        _ => false,
    }
}

/// The element type of a `torch.*Storage` class.
pub fn storage_dtype(class: &str) -> Option<SourceDType> {
    Some(match class {
        "DoubleStorage" => SourceDType::F64,
        "FloatStorage" => SourceDType::F32,
        "HalfStorage" => SourceDType::F16,
        "BFloat16Storage" => SourceDType::BF16,
        "LongStorage" => SourceDType::I64,
        "IntStorage" => SourceDType::I32,
        "ShortStorage" => SourceDType::I16,
        "CharStorage" => SourceDType::I8,
        "ByteStorage" => SourceDType::U8,
        "BoolStorage" => SourceDType::Bool,
        _ => return None,
    })
}

/// One tensor of a state dict, as `_rebuild_tensor_v2` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorRecord {
    /// Key in the state dict (nested dicts joined with `.`).
    pub name: String,
    /// Element type of the storage.
    pub dtype: SourceDType,
    /// Storage key: the data lives in the archive entry `<root>/data/<key>`.
    pub storage_key: String,
    /// Elements in the storage, as the persistent id says.
    pub storage_numel: u64,
    /// Offset of the first element, in elements.
    pub storage_offset: u64,
    /// Sizes, outermost first.
    pub shape: Vec<u64>,
    /// Strides in elements.
    pub stride: Vec<u64>,
}

#[derive(Clone, Debug)]
enum Val {
    None,
    Bool,
    Int(i64),
    Float,
    Str(String),
    Seq(Vec<Val>),
    Dict(Vec<(Val, Val)>),
    Callable(String),
    StorageType(SourceDType),
    Storage {
        dtype: SourceDType,
        key: String,
        numel: u64,
    },
    Tensor(Box<TensorRecord>),
    Device,
    Opaque(&'static str),
}

impl Val {
    fn kind(&self) -> &'static str {
        match self {
            Val::None => "None",
            Val::Bool => "a bool",
            Val::Int(_) => "an int",
            Val::Float => "a float",
            Val::Str(_) => "a str",
            Val::Seq(_) => "a tuple or list",
            Val::Dict(_) => "a dict",
            Val::Callable(_) => "a callable",
            Val::StorageType(_) => "a storage class",
            Val::Storage { .. } => "a storage",
            Val::Tensor(_) => "a tensor",
            Val::Device => "a device",
            Val::Opaque(k) => k,
        }
    }
}

const MAX_DEPTH: usize = 256;
const MAX_NEST: usize = 8;

struct Interp<'p> {
    p: &'p Pickle,
    /// Objects left to evaluate (shared objects count once per reference).
    budget: usize,
    /// String bytes left to copy.
    bytes: usize,
}

type R<T> = Result<T, String>;

fn int(v: &Val, what: &str) -> R<u64> {
    match v {
        Val::Int(i) if *i >= 0 => Ok(*i as u64),
        Val::Int(i) => Err(format!("{what} is negative ({i})")),
        v => Err(format!("{what} is {}, expected an int", v.kind())),
    }
}

fn ints(v: &Val, what: &str) -> R<Vec<u64>> {
    match v {
        Val::Seq(items) => items.iter().map(|x| int(x, what)).collect(),
        v => Err(format!("{what} is {}, expected a tuple of ints", v.kind())),
    }
}

impl Interp<'_> {
    fn eval(&mut self, id: Id, depth: usize) -> R<Val> {
        if depth > MAX_DEPTH {
            return Err(format!("objects nested deeper than {MAX_DEPTH}"));
        }
        self.budget = self
            .budget
            .checked_sub(1)
            .ok_or("the pickle references shared objects too many times")?;
        let d = depth + 1;
        Ok(match self.p.get(id) {
            Obj::None => Val::None,
            Obj::Bool(_) => Val::Bool,
            Obj::Int(i) => Val::Int(*i),
            Obj::Float(_) => Val::Float,
            Obj::Str(s) => {
                self.bytes = self
                    .bytes
                    .checked_sub(s.len())
                    .ok_or("the pickle references its strings too many times")?;
                Val::Str(s.clone())
            }
            Obj::Bytes(_) => Val::Opaque("bytes"),
            Obj::Tuple(v) | Obj::List(v) | Obj::Set(v) => Val::Seq(self.all(v, d)?),
            Obj::Dict(pairs) => Val::Dict(self.pairs(pairs, d)?),
            Obj::Global { module, name } => {
                if module == "torch"
                    && let Some(dt) = storage_dtype(name)
                {
                    return Ok(Val::StorageType(dt));
                }
                Val::Callable(format!("{module}.{name}"))
            }
            Obj::Reduce { func, args } => {
                let f = self.eval(*func, d)?;
                let a = self.eval(*args, d)?;
                Self::call(&f, a)?
            }
            Obj::NewObj { cls, .. } => {
                let c = self.eval(*cls, d)?;
                let name = match &c {
                    Val::Callable(n) => n.clone(),
                    v => v.kind().to_owned(),
                };
                return Err(format!("constructing `{name}` objects is not supported"));
            }
            Obj::PersId(pid) => self.persistent(*pid, d)?,
            Obj::Build { obj, .. } => match self.eval(*obj, d)? {
                // OrderedDict state (`_metadata`) and parameter state carry no tensor data.
                v @ (Val::Dict(_) | Val::Tensor(_)) => v,
                v => return Err(format!("cannot set the state of {}", v.kind())),
            },
            Obj::SetItems { obj, items } => match self.eval(*obj, d)? {
                Val::Dict(mut v) => {
                    v.extend(self.pairs(items, d)?);
                    Val::Dict(v)
                }
                v => return Err(format!("cannot set items on {}", v.kind())),
            },
            Obj::Appends { obj, items } => match self.eval(*obj, d)? {
                Val::Seq(mut v) => {
                    v.extend(self.all(items, d)?);
                    Val::Seq(v)
                }
                v => return Err(format!("cannot append to {}", v.kind())),
            },
        })
    }

    fn all(&mut self, ids: &[Id], d: usize) -> R<Vec<Val>> {
        ids.iter().map(|&i| self.eval(i, d)).collect()
    }

    fn pairs(&mut self, pairs: &[(Id, Id)], d: usize) -> R<Vec<(Val, Val)>> {
        pairs
            .iter()
            .map(|&(k, v)| Ok((self.eval(k, d)?, self.eval(v, d)?)))
            .collect()
    }

    fn persistent(&mut self, pid: Id, d: usize) -> R<Val> {
        let Val::Seq(t) = self.eval(pid, d)? else {
            return Err(format!(
                "persistent id is {}, expected a tuple",
                kind(self.p.get(pid))
            ));
        };
        match t.as_slice() {
            [Val::Str(tag), ty, Val::Str(key), _location, numel] if tag == "storage" => {
                let Val::StorageType(dtype) = ty else {
                    return Err(format!(
                        "storage `{key}` has type {}, expected a torch.*Storage class",
                        ty.kind()
                    ));
                };
                Ok(Val::Storage {
                    dtype: *dtype,
                    key: key.clone(),
                    numel: int(numel, "storage size")?,
                })
            }
            _ => Err(
                "unsupported persistent id (expected ('storage', type, key, location, size))"
                    .into(),
            ),
        }
    }

    fn call(f: &Val, args: Val) -> R<Val> {
        let Val::Callable(name) = f else {
            return Err(format!("calling {} is not supported", f.kind()));
        };
        let Val::Seq(args) = args else {
            return Err(format!(
                "arguments of `{name}` are {}, expected a tuple",
                args.kind()
            ));
        };
        match name.as_str() {
            "collections.OrderedDict" => match args.as_slice() {
                [] => Ok(Val::Dict(Vec::new())),
                [Val::Seq(items)] => items
                    .iter()
                    .map(|it| match it {
                        Val::Seq(kv) if kv.len() == 2 => Ok((kv[0].clone(), kv[1].clone())),
                        v => Err(format!("OrderedDict item is {}, expected a pair", v.kind())),
                    })
                    .collect::<R<_>>()
                    .map(Val::Dict),
                [Val::Dict(d)] => Ok(Val::Dict(d.clone())),
                _ => Err("unsupported OrderedDict arguments".into()),
            },
            "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => {
                let [storage, offset, size, stride, ..] = args.as_slice() else {
                    return Err(format!(
                        "`{name}` needs at least 4 arguments, got {}",
                        args.len()
                    ));
                };
                let Val::Storage { dtype, key, numel } = storage else {
                    return Err(format!("`{name}` storage argument is {}", storage.kind()));
                };
                let shape = ints(size, "tensor size")?;
                let stride = ints(stride, "tensor stride")?;
                if shape.len() != stride.len() {
                    return Err(format!(
                        "tensor has {} sizes but {} strides",
                        shape.len(),
                        stride.len()
                    ));
                }
                Ok(Val::Tensor(Box::new(TensorRecord {
                    name: String::new(),
                    dtype: *dtype,
                    storage_key: key.clone(),
                    storage_numel: *numel,
                    storage_offset: int(offset, "storage offset")?,
                    shape,
                    stride,
                })))
            }
            "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" => {
                match args.into_iter().next() {
                    Some(t @ Val::Tensor(_)) => Ok(t),
                    Some(v) => Err(format!("`{name}` data argument is {}", v.kind())),
                    None => Err(format!("`{name}` needs arguments")),
                }
            }
            "torch.device" => Ok(Val::Device),
            _ => Err(format!("calling `{name}` is not supported")),
        }
    }
}

fn collect(v: Val, prefix: &str, nest: usize, out: &mut Vec<TensorRecord>) -> R<()> {
    let Val::Dict(items) = v else {
        return Err(format!(
            "the checkpoint is {}, expected a dict of tensors (a state dict)",
            v.kind()
        ));
    };
    for (k, v) in items {
        let Val::Str(k) = k else {
            return Err(format!("state dict key is {}, expected a str", k.kind()));
        };
        let name = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Val::Tensor(mut t) => {
                t.name = name;
                out.push(*t);
            }
            d @ Val::Dict(_) if nest < MAX_NEST => collect(d, &name, nest + 1, out)?,
            // Non-tensor entries (an epoch counter, a config string) carry no weights.
            _ => {}
        }
    }
    Ok(())
}

/// Interprets a state-dict pickle: the tensors, in the pickle's order.
pub fn state_dict(p: &Pickle) -> Result<Vec<TensorRecord>, String> {
    let strings: usize = p
        .objs
        .iter()
        .map(|o| if let Obj::Str(s) = o { s.len() } else { 0 })
        .sum();
    let mut it = Interp {
        p,
        budget: p.objs.len().saturating_mul(8).saturating_add(4096),
        bytes: strings.saturating_mul(4).saturating_add(1 << 26),
    };
    let root = it.eval(p.root, 0)?;
    let mut out = Vec::new();
    collect(root, "", 0, &mut out)?;
    let mut seen = std::collections::HashSet::new();
    for t in &out {
        if !seen.insert(t.name.as_str()) {
            return Err(format!("tensor `{}` appears twice", t.name));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::vm::{Limits, run};
    use super::*;

    /// `{'k': [s, s, s, …]}` with one 1 MB string referenced 4000 times through the memo.
    #[test]
    fn shared_strings_cannot_blow_up_memory() {
        let mut p = vec![0x80, 2, b'}', b'X', 1, 0, 0, 0, b'k', b']', b'X'];
        p.extend_from_slice(&(1u32 << 20).to_le_bytes());
        p.extend(std::iter::repeat_n(b'a', 1 << 20));
        p.extend_from_slice(&[b'q', 0, b'a']);
        for _ in 0..4000 {
            p.extend_from_slice(&[b'h', 0, b'a']);
        }
        p.extend_from_slice(b"s.");
        let pk = run(&p, &allowed, Limits::default()).unwrap();
        let e = state_dict(&pk).unwrap_err();
        assert!(e.contains("too many times"), "{e}");
    }
}
