//! A pickle virtual machine that never executes anything.
//!
//! Written from the opcode table in `CPython`'s `pickletools` (protocols 2 to 5 — what
//! `torch.save` writes — plus the few protocol-0/1 opcodes that are pure data). Instead of
//! importing and calling, `GLOBAL`/`STACK_GLOBAL` produce an inert [`Obj::Global`] (refused
//! unless the caller's allow-list accepts `module.name`), and `REDUCE`, `NEWOBJ`, `BUILD`,
//! `BINPERSID` record what *would* have been called as [`Obj::Reduce`], [`Obj::NewObj`],
//! [`Obj::Build`], [`Obj::PersId`]. A separate interpreter gives those meaning.
//!
//! Objects live in an arena and are referred to by [`Id`], so the memo shares them exactly as
//! Python does (a dict memoized before its items are set is the same dict afterwards) and a
//! hostile stream cannot make the reader copy a value exponentially often. Stack, memo and
//! arena sizes are capped, and so are the bytes they hold: every object, container item and
//! memo entry is charged against one budget ([`byte_budget`], proportional to the input),
//! which the interpreter then continues to spend ([`Pickle::budget_left`]).

use std::collections::HashMap;

/// Index of an object in [`Pickle::objs`].
pub type Id = u32;

/// An inert value built by the VM.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Obj {
    /// `None`.
    #[default]
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A float.
    Float(f64),
    /// A `str`.
    Str(String),
    /// `bytes` / `bytearray`.
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<Id>),
    /// A list.
    List(Vec<Id>),
    /// A dict, in insertion order.
    Dict(Vec<(Id, Id)>),
    /// A set or frozenset.
    Set(Vec<Id>),
    /// A reference to `module.name` (already checked against the allow-list).
    Global {
        /// Module.
        module: String,
        /// Attribute.
        name: String,
    },
    /// `func(*args)` — not called.
    Reduce {
        /// The callable.
        func: Id,
        /// The argument tuple.
        args: Id,
    },
    /// `cls.__new__(cls, *args, **kwargs)` — not called.
    NewObj {
        /// The class.
        cls: Id,
        /// The argument tuple.
        args: Id,
        /// Keyword arguments (`NEWOBJ_EX`).
        kwargs: Option<Id>,
    },
    /// `persistent_load(pid)` — resolved by the interpreter.
    PersId(Id),
    /// `obj.__setstate__(state)` — not called.
    Build {
        /// The object.
        obj: Id,
        /// The state.
        state: Id,
    },
    /// `obj[k] = v` on something that is not a plain dict (e.g. an `OrderedDict` instance).
    SetItems {
        /// The object.
        obj: Id,
        /// The items, in order.
        items: Vec<(Id, Id)>,
    },
    /// `obj.append(v)` / `extend` on something that is not a plain list.
    Appends {
        /// The object.
        obj: Id,
        /// The items, in order.
        items: Vec<Id>,
    },
}

/// Working memory allowed per byte of pickle, on top of [`BASE_BYTES`]: a state dict written
/// by torch needs about 40 (20 for its arena, 20 for its evaluated values), so this leaves
/// room while holding a hostile 4 MB pickle to under 300 MB.
pub const BYTES_PER_INPUT_BYTE: usize = 64;

/// Working memory allowed whatever the input's size.
pub const BASE_BYTES: usize = 32 << 20;

/// The memory budget, in bytes, of reading and interpreting a pickle of `len` bytes: what the
/// VM's arena and memo and then the interpreter's values may hold together.
pub fn byte_budget(len: usize) -> usize {
    BASE_BYTES.saturating_add(len.saturating_mul(BYTES_PER_INPUT_BYTE))
}

/// Resource limits of the VM.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Objects in the arena.
    pub max_objects: usize,
    /// Stack depth.
    pub max_stack: usize,
    /// Nested `MARK`s.
    pub max_marks: usize,
    /// Memo entries.
    pub max_memo: usize,
    /// Bytes of working memory; `None`: [`byte_budget`] of the input's length.
    pub max_bytes: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_objects: 1 << 22,
            max_stack: 1 << 20,
            max_marks: 1 << 12,
            max_memo: 1 << 22,
            max_bytes: None,
        }
    }
}

/// The result of running a pickle: the arena and the object `STOP` returned.
#[derive(Clone, Debug, PartialEq)]
pub struct Pickle {
    /// All objects built.
    pub objs: Vec<Obj>,
    /// The returned object.
    pub root: Id,
    /// Bytes of working memory the VM charged (arena, container items, memo).
    pub bytes_used: usize,
    /// What is left of the byte budget for the interpreter.
    pub budget_left: usize,
}

impl Pickle {
    /// The object with id `id` (ids come from this pickle, so they are in range).
    pub fn get(&self, id: Id) -> &Obj {
        &self.objs[id as usize]
    }
}

/// Why the VM stopped; the caller adds the file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmError {
    /// Malformed or unsupported input at byte `offset`.
    Bad {
        /// Byte offset of the opcode.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A global outside the allow-list.
    Global(String),
}

struct Vm<'a, 'f> {
    data: &'a [u8],
    pos: usize,
    op_pos: usize,
    objs: Vec<Obj>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
    limits: Limits,
    /// Bytes charged so far, and the budget.
    bytes: usize,
    max_bytes: usize,
    allow: &'f dyn Fn(&str, &str) -> bool,
}

/// Bytes of one memo entry (key, value, hash-table overhead).
const MEMO_ENTRY_BYTES: usize = 16;

/// Heap bytes an object holds besides itself.
fn payload(o: &Obj) -> usize {
    match o {
        Obj::Str(s) => s.len(),
        Obj::Bytes(b) => b.len(),
        Obj::Tuple(v) | Obj::List(v) | Obj::Set(v) | Obj::Appends { items: v, .. } => {
            v.len() * size_of::<Id>()
        }
        Obj::Dict(v) | Obj::SetItems { items: v, .. } => v.len() * size_of::<(Id, Id)>(),
        Obj::Global { module, name } => module.len() + name.len(),
        _ => 0,
    }
}

type R<T> = Result<T, VmError>;

impl Vm<'_, '_> {
    fn bad<T>(&self, reason: impl Into<String>) -> R<T> {
        Err(VmError::Bad {
            offset: self.op_pos as u64,
            reason: reason.into(),
        })
    }

    fn take(&mut self, n: usize) -> R<&[u8]> {
        match self.pos.checked_add(n).filter(|&e| e <= self.data.len()) {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => self.bad(format!(
                "truncated: needs {n} more bytes, {} left",
                self.data.len() - self.pos
            )),
        }
    }

    fn arr<const N: usize>(&mut self) -> R<[u8; N]> {
        let s = self.take(N)?;
        Ok(s.try_into().expect("take returned N bytes"))
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.arr::<1>()?[0])
    }
    fn u16(&mut self) -> R<u16> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    fn u32(&mut self) -> R<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> R<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }

    fn len_u64(&mut self, n: u64) -> R<usize> {
        match usize::try_from(n) {
            Ok(n) if n <= self.data.len() - self.pos => Ok(n),
            _ => self.bad(format!(
                "length {n} exceeds the {} bytes left",
                self.data.len() - self.pos
            )),
        }
    }

    fn line(&mut self) -> R<String> {
        let rest = &self.data[self.pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            return self.bad("unterminated text line");
        };
        let s = String::from_utf8_lossy(&rest[..nl]).into_owned();
        self.pos += nl + 1;
        Ok(s)
    }

    fn string(&mut self, n: usize) -> R<String> {
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => self.bad(format!("invalid utf-8 in string: {e}")),
        }
    }

    /// Charges `n` bytes of working memory against the budget.
    fn charge(&mut self, n: usize) -> R<()> {
        match self.bytes.checked_add(n).filter(|&b| b <= self.max_bytes) {
            Some(b) => {
                self.bytes = b;
                Ok(())
            }
            None => self.bad(format!(
                "the pickle needs more than {} bytes of memory to read (its byte budget); refusing to continue",
                self.max_bytes
            )),
        }
    }

    fn alloc(&mut self, o: Obj) -> R<Id> {
        if self.objs.len() >= self.limits.max_objects {
            return self.bad(format!(
                "more than {} objects; refusing to continue",
                self.limits.max_objects
            ));
        }
        // The arena's slot (twice: a growing Vec may hold up to double its length) and the
        // object's own heap bytes.
        self.charge(2 * size_of::<Obj>() + payload(&o))?;
        self.objs.push(o);
        Ok((self.objs.len() - 1) as Id)
    }

    fn push_id(&mut self, id: Id) -> R<()> {
        if self.stack.len() >= self.limits.max_stack {
            return self.bad(format!("stack deeper than {}", self.limits.max_stack));
        }
        self.stack.push(id);
        Ok(())
    }

    fn push(&mut self, o: Obj) -> R<()> {
        let id = self.alloc(o)?;
        self.push_id(id)
    }

    fn pop(&mut self) -> R<Id> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.bad("stack underflow");
        }
        Ok(self.stack.pop().expect("checked non-empty"))
    }

    fn top(&self) -> R<Id> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.bad("stack underflow");
        }
        Ok(*self.stack.last().expect("checked non-empty"))
    }

    fn pop_mark(&mut self) -> R<Vec<Id>> {
        let Some(m) = self.marks.pop() else {
            return self.bad("no MARK on the stack");
        };
        Ok(self.stack.split_off(m))
    }

    fn pairs(&self, items: &[Id]) -> R<Vec<(Id, Id)>> {
        if !items.len().is_multiple_of(2) {
            return self.bad("odd number of items for a dict");
        }
        Ok(items.chunks_exact(2).map(|p| (p[0], p[1])).collect())
    }

    fn memo_put(&mut self, idx: u32) -> R<()> {
        let top = self.top()?;
        if !self.memo.contains_key(&idx) {
            if self.memo.len() >= self.limits.max_memo {
                return self.bad(format!("more than {} memo entries", self.limits.max_memo));
            }
            self.charge(2 * MEMO_ENTRY_BYTES)?;
        }
        self.memo.insert(idx, top);
        Ok(())
    }

    fn memo_get(&mut self, idx: u32) -> R<()> {
        match self.memo.get(&idx) {
            Some(&id) => self.push_id(id),
            None => self.bad(format!("memo key {idx} was never stored")),
        }
    }

    fn global(&mut self, module: String, name: String) -> R<()> {
        if !(self.allow)(&module, &name) {
            return Err(VmError::Global(format!("{module}.{name}")));
        }
        self.push(Obj::Global { module, name })
    }

    /// Replaces object `id` in place by `f(moved)`, where `moved` is a new id holding its old
    /// value: every reference to `id` (memo, containers) then sees the mutation.
    fn wrap(&mut self, id: Id, f: impl FnOnce(Id) -> Obj) -> R<()> {
        let old = std::mem::take(&mut self.objs[id as usize]);
        let moved = self.alloc(old)?;
        self.objs[id as usize] = f(moved);
        Ok(())
    }

    fn set_items(&mut self, target: Id, items: Vec<(Id, Id)>) -> R<()> {
        self.charge(items.len() * size_of::<(Id, Id)>())?;
        match &mut self.objs[target as usize] {
            Obj::Dict(d) | Obj::SetItems { items: d, .. } => d.extend(items),
            Obj::Reduce { .. } | Obj::NewObj { .. } | Obj::Build { .. } => {
                self.wrap(target, |obj| Obj::SetItems { obj, items })?;
            }
            other => {
                let what = kind(other);
                return self.bad(format!("cannot set items on {what}"));
            }
        }
        Ok(())
    }

    fn appends(&mut self, target: Id, items: Vec<Id>) -> R<()> {
        self.charge(items.len() * size_of::<Id>())?;
        match &mut self.objs[target as usize] {
            Obj::List(l) | Obj::Appends { items: l, .. } => l.extend(items),
            Obj::Reduce { .. } | Obj::NewObj { .. } | Obj::Build { .. } => {
                self.wrap(target, |obj| Obj::Appends { obj, items })?;
            }
            other => {
                let what = kind(other);
                return self.bad(format!("cannot append to {what}"));
            }
        }
        Ok(())
    }

    fn int_le(&self, b: &[u8]) -> R<i64> {
        if b.is_empty() {
            return Ok(0);
        }
        if b.len() > 8 {
            // Accept wider encodings of values that still fit (sign extension bytes only).
            let (lo, hi) = b.split_at(8);
            let fill = if lo[7] & 0x80 != 0 { 0xFF } else { 0 };
            if hi.iter().any(|&x| x != fill) {
                return self.bad(format!(
                    "integer of {} bytes does not fit in 64 bits",
                    b.len()
                ));
            }
            return self.int_le(lo);
        }
        let mut buf = if b[b.len() - 1] & 0x80 != 0 {
            [0xFF; 8]
        } else {
            [0; 8]
        };
        buf[..b.len()].copy_from_slice(b);
        Ok(i64::from_le_bytes(buf))
    }

    fn run(&mut self) -> R<Id> {
        loop {
            self.op_pos = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    // PROTO
                    let v = self.u8()?;
                    if v > 5 {
                        return self.bad(format!("unsupported pickle protocol {v}"));
                    }
                }
                0x95 => {
                    // FRAME: a length hint; the opcodes inside are read as usual.
                    let n = self.u64()?;
                    self.len_u64(n)?;
                }
                b'.' => return self.pop(), // STOP
                b'(' => {
                    if self.marks.len() >= self.limits.max_marks {
                        return self.bad("MARKs nested too deeply");
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let t = self.top()?;
                    self.push_id(t)?;
                }
                b'N' => self.push(Obj::None)?,
                0x88 => self.push(Obj::Bool(true))?,
                0x89 => self.push(Obj::Bool(false))?,
                b'J' => {
                    let v = i32::from_le_bytes(self.arr()?);
                    self.push(Obj::Int(v.into()))?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Obj::Int(v.into()))?;
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Obj::Int(v.into()))?;
                }
                0x8a | 0x8b => {
                    // LONG1 / LONG4
                    let n = if op == 0x8a {
                        u64::from(self.u8()?)
                    } else {
                        u64::from(self.u32()?)
                    };
                    let n = self.len_u64(n)?;
                    let b = self.take(n)?.to_vec();
                    let v = self.int_le(&b)?;
                    self.push(Obj::Int(v))?;
                }
                b'I' => {
                    // INT (protocol 0): also how protocol 0/1 spells True/False.
                    let l = self.line()?;
                    let o = match l.as_str() {
                        "01" => Obj::Bool(true),
                        "00" => Obj::Bool(false),
                        s => match s.parse::<i64>() {
                            Ok(v) => Obj::Int(v),
                            Err(_) => return self.bad(format!("bad INT literal `{s}`")),
                        },
                    };
                    self.push(o)?;
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.arr()?);
                    self.push(Obj::Float(v))?;
                }
                b'X' | 0x8c | 0x8d => {
                    // BINUNICODE / SHORT_BINUNICODE / BINUNICODE8
                    let n = match op {
                        b'X' => u64::from(self.u32()?),
                        0x8c => u64::from(self.u8()?),
                        _ => self.u64()?,
                    };
                    let n = self.len_u64(n)?;
                    let s = self.string(n)?;
                    self.push(Obj::Str(s))?;
                }
                b'T' | b'U' => {
                    // BINSTRING / SHORT_BINSTRING (py2 str): kept as text when it is utf-8.
                    let n = if op == b'T' {
                        u64::from(self.u32()?)
                    } else {
                        u64::from(self.u8()?)
                    };
                    let n = self.len_u64(n)?;
                    let b = self.take(n)?.to_vec();
                    let o = match String::from_utf8(b) {
                        Ok(s) => Obj::Str(s),
                        Err(e) => Obj::Bytes(e.into_bytes()),
                    };
                    self.push(o)?;
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    // BINBYTES / SHORT_BINBYTES / BINBYTES8 / BYTEARRAY8
                    let n = match op {
                        b'B' => u64::from(self.u32()?),
                        b'C' => u64::from(self.u8()?),
                        _ => self.u64()?,
                    };
                    let n = self.len_u64(n)?;
                    let b = self.take(n)?.to_vec();
                    self.push(Obj::Bytes(b))?;
                }
                b')' => self.push(Obj::Tuple(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Tuple(items))?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Obj::Tuple(items))?;
                }
                b']' => self.push(Obj::List(Vec::new()))?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::List(items))?;
                }
                b'a' => {
                    let v = self.pop()?;
                    let l = self.top()?;
                    self.appends(l, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let l = self.top()?;
                    self.appends(l, items)?;
                }
                b'}' => self.push(Obj::Dict(Vec::new()))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(&items)?;
                    self.push(Obj::Dict(pairs))?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?;
                    self.set_items(d, vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(&items)?;
                    let d = self.top()?;
                    self.set_items(d, pairs)?;
                }
                0x8f => self.push(Obj::Set(Vec::new()))?,
                0x90 => {
                    let items = self.pop_mark()?;
                    let s = self.top()?;
                    self.charge(items.len() * size_of::<Id>())?;
                    match &mut self.objs[s as usize] {
                        Obj::Set(v) => v.extend(items),
                        _ => return self.bad("ADDITEMS on something that is not a set"),
                    }
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Set(items))?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Obj::Str(m), Obj::Str(n)) =
                        (&self.objs[module as usize], &self.objs[name as usize])
                    else {
                        return self.bad("STACK_GLOBAL needs two strings");
                    };
                    let (m, n) = (m.clone(), n.clone());
                    self.global(m, n)?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    self.push(Obj::Reduce { func, args })?;
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    self.push(Obj::NewObj {
                        cls,
                        args,
                        kwargs: None,
                    })?;
                }
                0x92 => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    self.push(Obj::NewObj {
                        cls,
                        args,
                        kwargs: Some(kwargs),
                    })?;
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?;
                    self.wrap(obj, |obj| Obj::Build { obj, state })?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.push(Obj::PersId(pid))?;
                }
                b'h' => {
                    let i = self.u8()?;
                    self.memo_get(i.into())?;
                }
                b'j' => {
                    let i = self.u32()?;
                    self.memo_get(i)?;
                }
                b'q' => {
                    let i = self.u8()?;
                    self.memo_put(i.into())?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                    self.memo_put(i)?;
                }
                0x98 => {} // READONLY_BUFFER: no-op on an in-band bytes object
                _ => {
                    let name = OPCODE_NAMES
                        .iter()
                        .find(|(c, _)| *c == op)
                        .map_or("unknown", |(_, n)| n);
                    return self.bad(format!(
                        "unsupported opcode 0x{op:02x} ({name}); torch.save does not write it"
                    ));
                }
            }
        }
    }
}

/// Opcodes this VM refuses, by name, for error messages.
const OPCODE_NAMES: [(u8, &str); 12] = [
    (b'F', "FLOAT"),
    (b'L', "LONG"),
    (b'S', "STRING"),
    (b'V', "UNICODE"),
    (b'P', "PERSID"),
    (b'g', "GET"),
    (b'p', "PUT"),
    (b'i', "INST"),
    (b'o', "OBJ"),
    (0x82, "EXT1"),
    (0x83, "EXT2"),
    (0x97, "NEXT_BUFFER"),
];

/// A short description of an object's kind, for errors.
pub fn kind(o: &Obj) -> &'static str {
    match o {
        Obj::None => "None",
        Obj::Bool(_) => "a bool",
        Obj::Int(_) => "an int",
        Obj::Float(_) => "a float",
        Obj::Str(_) => "a str",
        Obj::Bytes(_) => "bytes",
        Obj::Tuple(_) => "a tuple",
        Obj::List(_) => "a list",
        Obj::Dict(_) => "a dict",
        Obj::Set(_) => "a set",
        Obj::Global { .. } => "a global",
        Obj::Reduce { .. } => "a call",
        Obj::NewObj { .. } => "a new object",
        Obj::PersId(_) => "a persistent id",
        Obj::Build { .. } => "a built object",
        Obj::SetItems { .. } => "an object with items",
        Obj::Appends { .. } => "an object with appended items",
    }
}

/// Runs the pickle in `data` up to its `STOP`. `allow(module, name)` decides which globals may
/// be referenced; any other makes the whole load fail with [`VmError::Global`].
pub fn run(
    data: &[u8],
    allow: &dyn Fn(&str, &str) -> bool,
    limits: Limits,
) -> Result<Pickle, VmError> {
    let mut vm = Vm {
        data,
        pos: 0,
        op_pos: 0,
        objs: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        limits,
        bytes: 0,
        max_bytes: limits.max_bytes.unwrap_or_else(|| byte_budget(data.len())),
        allow,
    };
    let root = vm.run()?;
    Ok(Pickle {
        objs: vm.objs,
        root,
        bytes_used: vm.bytes,
        budget_left: vm.max_bytes - vm.bytes,
    })
}

#[cfg(test)]
mod tests;
