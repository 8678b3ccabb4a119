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

use std::rc::Rc;

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

/// An evaluated value, shared: each object of the pickle is evaluated once, and every
/// reference to it (through the memo or from several containers) shares the result, so a
/// hostile stream cannot make the interpreter copy a value once per reference.
type V<'p> = Rc<Val<'p>>;

#[derive(Debug)]
enum Val<'p> {
    None,
    Bool,
    Int(i64),
    Float,
    Str(&'p str),
    Seq(Vec<V<'p>>),
    Dict(Vec<(V<'p>, V<'p>)>),
    Callable(&'p str, &'p str),
    StorageType(SourceDType),
    Storage {
        dtype: SourceDType,
        key: &'p str,
        numel: u64,
    },
    Tensor(Box<TensorRecord>),
    Device,
    Opaque(&'static str),
}

impl TensorRecord {
    /// Heap bytes besides the record itself.
    fn heap(&self) -> usize {
        self.name.len() + self.storage_key.len() + 8 * (self.shape.len() + self.stride.len())
    }
}

impl Val<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Val::None => "None",
            Val::Bool => "a bool",
            Val::Int(_) => "an int",
            Val::Float => "a float",
            Val::Str(_) => "a str",
            Val::Seq(_) => "a tuple or list",
            Val::Dict(_) => "a dict",
            Val::Callable(..) => "a callable",
            Val::StorageType(_) => "a storage class",
            Val::Storage { .. } => "a storage",
            Val::Tensor(_) => "a tensor",
            Val::Device => "a device",
            Val::Opaque(k) => k,
        }
    }

    /// Bytes this value holds: itself in its `Rc`, and what it owns on the heap (strings are
    /// borrowed from the pickle, which the VM already charged for).
    fn bytes(&self) -> usize {
        const RC: usize = 2 * size_of::<usize>();
        RC + size_of::<Self>()
            + match self {
                Val::Seq(v) => v.len() * size_of::<V<'_>>(),
                Val::Dict(v) => v.len() * size_of::<(V<'_>, V<'_>)>(),
                Val::Tensor(t) => size_of::<TensorRecord>() + t.heap(),
                _ => 0,
            }
    }
}

const MAX_DEPTH: usize = 256;
const MAX_NEST: usize = 8;

/// What the interpreter knows of one object of the arena.
#[derive(Debug)]
enum Slot<'p> {
    Todo,
    /// Being evaluated: meeting it again is a cycle.
    Busy,
    Done(V<'p>),
}

struct Interp<'p> {
    p: &'p Pickle,
    /// The evaluated value of each object, once evaluated.
    memo: Vec<Slot<'p>>,
    /// The whole byte budget (VM and interpreter), for messages.
    budget: usize,
    /// Bytes of it left.
    bytes_left: usize,
    /// Bytes this interpreter charged.
    bytes_used: usize,
    /// Dict items the walk for tensors may still visit (a shared dict is walked once per
    /// path to it).
    steps: usize,
}

type R<T> = Result<T, String>;

fn int(v: &Val<'_>, what: &str) -> R<u64> {
    match v {
        Val::Int(i) if *i >= 0 => Ok(*i as u64),
        Val::Int(i) => Err(format!("{what} is negative ({i})")),
        v => Err(format!("{what} is {}, expected an int", v.kind())),
    }
}

fn ints(v: &Val<'_>, what: &str) -> R<Vec<u64>> {
    match v {
        Val::Seq(items) => items.iter().map(|x| int(x, what)).collect(),
        v => Err(format!("{what} is {}, expected a tuple of ints", v.kind())),
    }
}

impl<'p> Interp<'p> {
    /// Fails unless `n` more bytes fit in the budget.
    fn room(&self, n: usize) -> R<()> {
        if n <= self.bytes_left {
            Ok(())
        } else {
            Err(format!(
                "interpreting the pickle needs more than its byte budget of {} bytes (objects shared or copied too many times); refusing",
                self.budget
            ))
        }
    }

    /// Charges `n` bytes against the budget.
    fn charge(&mut self, n: usize) -> R<()> {
        self.room(n)?;
        self.bytes_left -= n;
        self.bytes_used += n;
        Ok(())
    }

    /// A new value, charged.
    fn new_val(&mut self, v: Val<'p>) -> R<V<'p>> {
        self.charge(v.bytes())?;
        Ok(Rc::new(v))
    }

    fn eval(&mut self, id: Id, depth: usize) -> R<V<'p>> {
        match &self.memo[id as usize] {
            Slot::Done(v) => return Ok(v.clone()),
            Slot::Busy => return Err("an object contains itself (a cyclic pickle)".into()),
            Slot::Todo => {}
        }
        if depth > MAX_DEPTH {
            return Err(format!("objects nested deeper than {MAX_DEPTH}"));
        }
        self.memo[id as usize] = Slot::Busy;
        let v = self.eval_new(id, depth + 1)?;
        self.memo[id as usize] = Slot::Done(v.clone());
        Ok(v)
    }

    /// Evaluates the object a `BUILD`, `SETITEMS` or `APPENDS` wraps. The VM moved it to an id
    /// only its wrapper refers to, so it is not kept in the memo: the wrapper takes the value
    /// over and extends it in place instead of copying it (a chain of such wrappers stays
    /// linear).
    fn eval_wrapped(&mut self, id: Id, depth: usize) -> R<V<'p>> {
        if !matches!(self.memo[id as usize], Slot::Todo) {
            return self.eval(id, depth);
        }
        if depth > MAX_DEPTH {
            return Err(format!("objects nested deeper than {MAX_DEPTH}"));
        }
        self.memo[id as usize] = Slot::Busy;
        let v = self.eval_new(id, depth + 1);
        self.memo[id as usize] = Slot::Todo;
        v
    }

    /// The value of `v` to extend: taken over when nothing else shares it (its charge is given
    /// back, the extended value is charged anew), else copied.
    fn take_over(&mut self, v: V<'p>, extra: usize) -> R<Val<'p>> {
        match Rc::try_unwrap(v) {
            Ok(v) => {
                let n = v.bytes();
                self.bytes_left += n;
                self.bytes_used -= n;
                Ok(v)
            }
            Err(shared) => {
                let len = match &*shared {
                    Val::Dict(d) => d.len() * size_of::<(V<'_>, V<'_>)>(),
                    Val::Seq(s) => s.len() * size_of::<V<'_>>(),
                    _ => 0,
                };
                self.room(len + extra)?;
                Ok(match &*shared {
                    Val::Dict(d) => Val::Dict(d.clone()),
                    Val::Seq(s) => Val::Seq(s.clone()),
                    other => Val::Opaque(other.kind()),
                })
            }
        }
    }

    fn eval_new(&mut self, id: Id, d: usize) -> R<V<'p>> {
        let p = self.p;
        let v = match p.get(id) {
            Obj::None => Val::None,
            Obj::Bool(_) => Val::Bool,
            Obj::Int(i) => Val::Int(*i),
            Obj::Float(_) => Val::Float,
            Obj::Str(s) => Val::Str(s),
            Obj::Bytes(_) => Val::Opaque("bytes"),
            Obj::Tuple(v) | Obj::List(v) | Obj::Set(v) => Val::Seq(self.all(v, d)?),
            Obj::Dict(pairs) => Val::Dict(self.pairs(pairs, d)?),
            Obj::Global { module, name } => {
                if module == "torch"
                    && let Some(dt) = storage_dtype(name)
                {
                    Val::StorageType(dt)
                } else {
                    Val::Callable(module, name)
                }
            }
            Obj::Reduce { func, args } => {
                let f = self.eval(*func, d)?;
                let a = self.eval(*args, d)?;
                return self.call(&f, &a);
            }
            Obj::NewObj { cls, .. } => {
                let c = self.eval(*cls, d)?;
                let name = match &*c {
                    Val::Callable(m, n) => format!("{m}.{n}"),
                    v => v.kind().to_owned(),
                };
                return Err(format!("constructing `{name}` objects is not supported"));
            }
            Obj::PersId(pid) => self.persistent(*pid, d)?,
            Obj::Build { obj, .. } => {
                let v = self.eval_wrapped(*obj, d)?;
                // OrderedDict state (`_metadata`) and parameter state carry no tensor data.
                return match &*v {
                    Val::Dict(_) | Val::Tensor(_) => Ok(v),
                    v => Err(format!("cannot set the state of {}", v.kind())),
                };
            }
            Obj::SetItems { obj, items } => {
                let base = self.eval_wrapped(*obj, d)?;
                match self.take_over(base, items.len() * size_of::<(V<'_>, V<'_>)>())? {
                    Val::Dict(mut v) => {
                        v.extend(self.pairs(items, d)?);
                        Val::Dict(v)
                    }
                    v => return Err(format!("cannot set items on {}", v.kind())),
                }
            }
            Obj::Appends { obj, items } => {
                let base = self.eval_wrapped(*obj, d)?;
                match self.take_over(base, items.len() * size_of::<V<'_>>())? {
                    Val::Seq(mut v) => {
                        v.extend(self.all(items, d)?);
                        Val::Seq(v)
                    }
                    v => return Err(format!("cannot append to {}", v.kind())),
                }
            }
        };
        self.new_val(v)
    }

    fn all(&mut self, ids: &[Id], d: usize) -> R<Vec<V<'p>>> {
        ids.iter().map(|&i| self.eval(i, d)).collect()
    }

    fn pairs(&mut self, pairs: &[(Id, Id)], d: usize) -> R<Vec<(V<'p>, V<'p>)>> {
        pairs
            .iter()
            .map(|&(k, v)| Ok((self.eval(k, d)?, self.eval(v, d)?)))
            .collect()
    }

    fn persistent(&mut self, pid: Id, d: usize) -> R<Val<'p>> {
        let t = self.eval(pid, d)?;
        let Val::Seq(t) = &*t else {
            return Err(format!(
                "persistent id is {}, expected a tuple",
                kind(self.p.get(pid))
            ));
        };
        if let [tag, ty, key, _location, numel] = t.as_slice()
            && let (Val::Str("storage"), Val::Str(key)) = (&**tag, &**key)
        {
            let Val::StorageType(dtype) = &**ty else {
                return Err(format!(
                    "storage `{key}` has type {}, expected a torch.*Storage class",
                    ty.kind()
                ));
            };
            return Ok(Val::Storage {
                dtype: *dtype,
                key,
                numel: int(numel, "storage size")?,
            });
        }
        Err("unsupported persistent id (expected ('storage', type, key, location, size))".into())
    }

    fn call(&mut self, f: &Val<'p>, args: &Val<'p>) -> R<V<'p>> {
        let Val::Callable(module, name) = f else {
            return Err(format!("calling {} is not supported", f.kind()));
        };
        let Val::Seq(args) = args else {
            return Err(format!(
                "arguments of `{module}.{name}` are {}, expected a tuple",
                args.kind()
            ));
        };
        let v = match (*module, *name) {
            ("collections", "OrderedDict") => match args.as_slice() {
                [] => Val::Dict(Vec::new()),
                [items] => match &**items {
                    Val::Seq(items) => Val::Dict(
                        items
                            .iter()
                            .map(|it| match &**it {
                                Val::Seq(kv) if kv.len() == 2 => Ok((kv[0].clone(), kv[1].clone())),
                                v => Err(format!(
                                    "OrderedDict item is {}, expected a pair",
                                    v.kind()
                                )),
                            })
                            .collect::<R<_>>()?,
                    ),
                    Val::Dict(d) => Val::Dict(d.clone()),
                    _ => return Err("unsupported OrderedDict arguments".into()),
                },
                _ => return Err("unsupported OrderedDict arguments".into()),
            },
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
                let [storage, offset, size, stride, ..] = args.as_slice() else {
                    return Err(format!(
                        "`{module}.{name}` needs at least 4 arguments, got {}",
                        args.len()
                    ));
                };
                let Val::Storage { dtype, key, numel } = &**storage else {
                    return Err(format!(
                        "`{module}.{name}` storage argument is {}",
                        storage.kind()
                    ));
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
                Val::Tensor(Box::new(TensorRecord {
                    name: String::new(),
                    dtype: *dtype,
                    storage_key: (*key).to_owned(),
                    storage_numel: *numel,
                    storage_offset: int(offset, "storage offset")?,
                    shape,
                    stride,
                }))
            }
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                return match args.first() {
                    Some(t) if matches!(**t, Val::Tensor(_)) => Ok(t.clone()),
                    Some(v) => Err(format!("`{module}.{name}` data argument is {}", v.kind())),
                    None => Err(format!("`{module}.{name}` needs arguments")),
                };
            }
            ("torch", "device") => Val::Device,
            _ => return Err(format!("calling `{module}.{name}` is not supported")),
        };
        self.new_val(v)
    }

    /// Appends the tensors of the dict `v` to `out`, keys joined with `.` under `prefix`.
    fn collect(
        &mut self,
        v: &Val<'p>,
        prefix: &str,
        nest: usize,
        out: &mut Vec<TensorRecord>,
    ) -> R<()> {
        let Val::Dict(items) = v else {
            return Err(format!(
                "the checkpoint is {}, expected a dict of tensors (a state dict)",
                v.kind()
            ));
        };
        for (k, v) in items {
            self.steps = self
                .steps
                .checked_sub(1)
                .ok_or("the pickle's dicts are shared too many times")?;
            let Val::Str(k) = &**k else {
                return Err(format!("state dict key is {}, expected a str", k.kind()));
            };
            let name = if prefix.is_empty() {
                (*k).to_owned()
            } else {
                format!("{prefix}.{k}")
            };
            match &**v {
                Val::Tensor(t) => {
                    let mut t = (**t).clone();
                    t.name = name;
                    // The record, twice for the growth of `out`, and its heap.
                    self.charge(2 * size_of::<TensorRecord>() + t.heap())?;
                    out.push(t);
                }
                d @ Val::Dict(_) if nest < MAX_NEST => self.collect(d, &name, nest + 1, out)?,
                // Non-tensor entries (an epoch counter, a config string) carry no weights.
                _ => {}
            }
        }
        Ok(())
    }
}

/// Interprets a state-dict pickle: the tensors, in the pickle's order.
pub fn state_dict(p: &Pickle) -> Result<Vec<TensorRecord>, String> {
    state_dict_with_usage(p).map(|(t, _)| t)
}

/// [`state_dict`], and the bytes of working memory the interpretation charged: with the VM's
/// [`Pickle::bytes_used`], never more than the pickle's byte budget
/// ([`super::vm::byte_budget`]), which a value shared through the memo is charged once.
pub fn state_dict_with_usage(p: &Pickle) -> Result<(Vec<TensorRecord>, usize), String> {
    let mut it = Interp {
        p,
        memo: Vec::new(),
        budget: p.bytes_used + p.budget_left,
        bytes_left: p.budget_left,
        bytes_used: 0,
        steps: p.objs.len().saturating_mul(8).saturating_add(4096),
    };
    it.charge(p.objs.len() * size_of::<Slot<'_>>())?;
    it.memo = std::iter::repeat_with(|| Slot::Todo)
        .take(p.objs.len())
        .collect();
    let root = it.eval(p.root, 0)?;
    let mut out = Vec::new();
    it.collect(&root, "", 0, &mut out)?;
    it.charge(out.len() * 2 * size_of::<(&str, ())>())?;
    let mut seen = std::collections::HashSet::new();
    for t in &out {
        if !seen.insert(t.name.as_str()) {
            return Err(format!("tensor `{}` appears twice", t.name));
        }
    }
    Ok((out, it.bytes_used))
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
        // The string is held once by the VM and never copied: 4000 references cost 4000
        // shared handles, not 4 GB.
        assert!(pk.bytes_used < (1 << 20) + (1 << 16), "{}", pk.bytes_used);
        let (tensors, used) = state_dict_with_usage(&pk).unwrap();
        assert!(tensors.is_empty());
        assert!(used < 1 << 17, "{used}");
    }

    /// A list that contains itself is refused, not walked until the budget runs out.
    #[test]
    fn a_cyclic_pickle_is_refused() {
        // l = []; memo[0] = l; l.append(l); {'k': l}
        let p = b"\x80\x02}X\x01\x00\x00\x00k]q\x00h\x00as.";
        let pk = run(p, &allowed, Limits::default()).unwrap();
        let e = state_dict(&pk).unwrap_err();
        assert!(e.contains("cyclic"), "{e}");
    }
}
