//! Pickles that share objects through the memo to amplify memory: each is refused or read
//! within its byte budget (`vm::byte_budget`, proportional to its length), by the budget's own
//! accounting and by what the counting allocator measures.

use crate::alloc::peak;

use llamapack_convert::pickle::{torch, vm};

/// Pickle text builder.
#[derive(Default)]
struct P(Vec<u8>);

impl P {
    fn new() -> P {
        P(vec![0x80, 2])
    }
    fn op(&mut self, b: &[u8]) -> &mut P {
        self.0.extend_from_slice(b);
        self
    }
    fn text(&mut self, s: &str) -> &mut P {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.op(s.as_bytes())
    }
    fn put(&mut self, slot: u32) -> &mut P {
        self.0.push(b'r');
        self.op(&slot.to_le_bytes())
    }
    fn get(&mut self, slot: u32) -> &mut P {
        self.0.push(b'j');
        self.op(&slot.to_le_bytes())
    }
}

/// What reading `p` cost: the bytes the budget charged (or why it was refused) and the peak
/// the allocator measured.
fn read(p: &[u8]) -> (Result<usize, String>, usize) {
    peak(|| {
        let pk =
            vm::run(p, &torch::allowed, vm::Limits::default()).map_err(|e| format!("{e:?}"))?;
        let vm_bytes = pk.bytes_used;
        let (_, used) = torch::state_dict_with_usage(&pk)?;
        Ok(vm_bytes + used)
    })
}

/// Reads `p`; checks that the charge and the measured peak are within the budget and that the
/// charge is no underestimate. Returns the charge, or the reason it was refused.
fn within_budget(what: &str, p: &[u8]) -> Result<usize, String> {
    let budget = vm::byte_budget(p.len());
    let (r, measured) = read(p);
    eprintln!(
        "{what}: {} bytes, budget {budget}, measured peak {measured}, result {r:?}",
        p.len()
    );
    assert!(
        measured <= budget,
        "{what}: held {measured} bytes, over the budget of {budget}"
    );
    match &r {
        Ok(charged) => {
            assert!(*charged <= budget, "{what}: charged {charged} > {budget}");
            // The accounting is an upper bound of what is really held (1 MiB of slack for
            // transient buffers).
            assert!(
                measured <= charged + (1 << 20),
                "{what}: measured {measured} but charged only {charged}"
            );
        }
        Err(e) => assert!(
            e.contains("budget") || e.contains("too many times"),
            "{what}: refused for another reason: {e}"
        ),
    }
    r
}

/// `{'k': [T, T, …]}` where T is one tuple of `n` distinct ints, shared `refs` times: the old
/// interpreter copied T once per reference (about 160 bytes of memory per byte of pickle).
fn wide(n: usize, refs: usize) -> Vec<u8> {
    let mut p = P::new();
    p.op(b"}").text("k").op(b"]").op(b"(");
    for i in 0..n {
        p.op(&[b'K', i as u8]);
    }
    p.op(b"t").put(0).op(b"a").op(b"(");
    for _ in 1..refs {
        p.get(0);
    }
    p.op(b"es.");
    p.0
}

#[test]
fn a_tuple_shared_through_the_memo_is_held_once() {
    let p = wide(500_000, 8);
    within_budget("wide", &p).unwrap_or_else(|e| panic!("refused: {e}"));
}

/// T0 = 10 ints; T(i+1) = a tuple of 10 references to T(i): 10^40 values if copied.
#[test]
fn nested_sharing_is_linear() {
    let mut p = P::new();
    p.op(b"}").text("k").op(b"(");
    for i in 0..10u8 {
        p.op(&[b'K', i]);
    }
    p.op(b"t").put(0);
    for level in 1..40u32 {
        p.op(b"0(");
        for _ in 0..10 {
            p.get(level - 1);
        }
        p.op(b"t").put(level);
    }
    p.op(b"s.");
    let charged = within_budget("nested", &p.0).unwrap_or_else(|e| panic!("refused: {e}"));
    assert!(charged < 1 << 20, "{charged}");
}

/// A state dict D0 of 100 tensors, D1 = 1000 keys all naming D0, D2 = 1000 keys naming D1:
/// 10^8 tensor records if expanded. Refused before the records outgrow the budget.
#[test]
fn dicts_of_tensors_shared_through_the_memo_are_refused() {
    let tensors: Vec<(String, Vec<u64>)> = (0..100).map(|i| (format!("t{i}"), vec![2])).collect();
    let mut p = P(llamapack_convert::testing::state_dict_pickle(&tensors));
    assert_eq!(p.0.pop(), Some(b'.'));
    // D0 is memo 0 (state_dict_pickle memoizes it first).
    for level in 1..3u32 {
        p.op(b"}(");
        for j in 0..1000 {
            p.text(&format!("k{j}"))
                .get(if level == 1 { 0 } else { 100 + level - 1 });
        }
        p.op(b"u").put(100 + level);
    }
    p.op(b".");
    within_budget("dicts", &p.0).unwrap_err();
}

/// OrderedDict of `n` items, then 120 × (BUILD, SETITEMS of one more): each SETITEMS wraps the
/// previous value; taken over, not copied, so the cost stays linear.
#[test]
fn a_chain_of_setitems_and_builds_does_not_copy_the_dict() {
    let n = 100_000;
    let mut p = P::new();
    p.op(b"}").text("k").op(b"]ccollections\nOrderedDict\n)R(");
    for i in 0..n {
        p.op(b"J").op(&(i as i32).to_le_bytes()).op(b"N");
    }
    p.op(b"u");
    for i in 0..120i32 {
        p.op(b"}b(J").op(&(-1 - i).to_le_bytes()).op(b"Nu");
    }
    p.op(b"as.");
    let charged = within_budget("setitems chain", &p.0).unwrap_or_else(|e| panic!("refused: {e}"));
    // One dict (about 370 bytes an item with its arena and values), not 120 copies of it
    // (which would not fit the budget).
    assert!(charged < 500 * n, "{charged}");
}

/// 4 MB of one-byte objects (`None` wrapped in a 1-tuple, wrapped again, …) are refused by the
/// VM's budget before it holds more.
#[test]
fn a_flood_of_tiny_objects_is_refused_within_the_budget() {
    let mut p = P::new();
    p.op(b"N");
    p.op(&vec![0x85; 4 << 20]);
    p.op(b".");
    let e = within_budget("flood", &p.0).unwrap_err();
    assert!(e.contains("budget"), "{e}");
}
