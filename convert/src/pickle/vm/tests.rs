//! Unit tests of the pickle VM: memo sharing, in-place mutation, integers, refusals.

use super::*;

fn allow_all(_: &str, _: &str) -> bool {
    true
}

fn go(p: &[u8]) -> Result<Pickle, VmError> {
    run(p, &allow_all, Limits::default())
}

#[test]
fn memo_shares_objects_like_python() {
    // d = {}; memo[0] = d; d['a'] = 1; return [d (via memo), d]
    let p = b"\x80\x02]q\x01}q\x00X\x01\x00\x00\x00aK\x01sh\x00\x86a.";
    let r = go(p).unwrap();
    let Obj::List(items) = r.get(r.root) else {
        panic!("{:?}", r.get(r.root))
    };
    let Obj::Tuple(pair) = r.get(items[0]) else {
        panic!()
    };
    assert_eq!(pair[0], pair[1], "the same dict, not a copy");
    assert!(matches!(r.get(pair[0]), Obj::Dict(d) if d.len() == 1));
}

#[test]
fn build_and_setitems_mutate_in_place() {
    // x = OrderedDict(); memo[0] = x; x['k'] = None; x.__setstate__({}); return (x, memo[0])
    let p = b"\x80\x02ccollections\nOrderedDict\n)Rq\x00X\x01\x00\x00\x00kNs}bh\x00\x86.";
    let r = go(p).unwrap();
    let Obj::Tuple(pair) = r.get(r.root) else {
        panic!()
    };
    assert_eq!(pair[0], pair[1]);
    let Obj::Build { obj, .. } = r.get(pair[0]) else {
        panic!("{:?}", r.get(pair[0]))
    };
    assert!(matches!(r.get(*obj), Obj::SetItems { items, .. } if items.len() == 1));
}

#[test]
fn integers_of_every_width() {
    let p = b"\x80\x02(J\xff\xff\xff\xffK\xffM\xff\xff\x8a\x02\x00\x80\x8a\x00\x88\x89t.";
    let r = go(p).unwrap();
    let Obj::Tuple(v) = r.get(r.root) else {
        panic!()
    };
    let got: Vec<&Obj> = v.iter().map(|&i| r.get(i)).collect();
    assert_eq!(
        got,
        [
            &Obj::Int(-1),
            &Obj::Int(255),
            &Obj::Int(65535),
            &Obj::Int(-32768),
            &Obj::Int(0),
            &Obj::Bool(true),
            &Obj::Bool(false)
        ]
    );
}

#[test]
fn refusals_name_what_is_wrong() {
    let global = run(b"\x80\x02cos\nsystem\n.", &|_, _| false, Limits::default());
    assert_eq!(global, Err(VmError::Global("os.system".into())));
    let bad = |p: &[u8]| match go(p) {
        Err(VmError::Bad { reason, .. }) => reason,
        other => panic!("{other:?}"),
    };
    assert!(bad(b"\x80\x02.").contains("underflow"));
    assert!(bad(b"\x80\x02i__main__\nX\n.").contains("INST"));
    assert!(bad(b"\x80\x02h\x07.").contains("memo key 7"));
    assert!(bad(b"\x80\x02X\xff\xff\xff\x7f").contains("exceeds"));
    assert!(bad(b"\x80\x09.").contains("protocol 9"));
    let tight = Limits {
        max_objects: 3,
        ..Limits::default()
    };
    assert!(matches!(
        run(b"\x80\x02NNNN.", &allow_all, tight),
        Err(VmError::Bad { .. })
    ));
}
