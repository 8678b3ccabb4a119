//! Builders of synthetic source files, for the tests, benchmarks and fuzz seeds of this crate:
//! a stored zip as `torch.save` writes it, a state-dict `.pth` around it, a SentencePiece
//! `tokenizer.model`.

use crate::zip::{
    CENTRAL_SIG, EOCD_SIG, LOCAL_LEN, LOCAL_SIG, ZIP64_EOCD_SIG, ZIP64_LOCATOR_SIG, crc32,
};

/// Builds a stored zip in memory; `zip64` forces ZIP64 records and extra fields.
pub fn stored_zip(files: &[(&str, &[u8])], zip64: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in files {
        let off = out.len() as u64;
        // Local header with 64-byte alignment padding in the extra field, like torch.
        let base = out.len() + LOCAL_LEN + name.len() + 4;
        let pad = (64 - base % 64) % 64;
        out.extend_from_slice(&LOCAL_SIG.to_le_bytes());
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&crc32(data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&((pad + 4) as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&0x4246u16.to_le_bytes());
        out.extend_from_slice(&(pad as u16).to_le_bytes());
        out.resize(out.len() + pad, b'Z');
        assert_eq!(out.len() % 64, 0);
        out.extend_from_slice(data);
        // Central entry.
        central.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
        central.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        central.extend_from_slice(&crc32(data).to_le_bytes());
        let sz: u32 = if zip64 {
            0xFFFF_FFFF
        } else {
            data.len() as u32
        };
        central.extend_from_slice(&sz.to_le_bytes());
        central.extend_from_slice(&sz.to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&(if zip64 { 28u16 } else { 0 }).to_le_bytes());
        central.extend_from_slice(&[0; 10]);
        let o: u32 = if zip64 { 0xFFFF_FFFF } else { off as u32 };
        central.extend_from_slice(&o.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
        if zip64 {
            central.extend_from_slice(&1u16.to_le_bytes());
            central.extend_from_slice(&24u16.to_le_bytes());
            central.extend_from_slice(&(data.len() as u64).to_le_bytes());
            central.extend_from_slice(&(data.len() as u64).to_le_bytes());
            central.extend_from_slice(&off.to_le_bytes());
        }
    }
    let cd_off = out.len() as u64;
    out.extend_from_slice(&central);
    let n = files.len() as u64;
    if zip64 {
        let rec = out.len() as u64;
        out.extend_from_slice(&ZIP64_EOCD_SIG.to_le_bytes());
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(central.len() as u64).to_le_bytes());
        out.extend_from_slice(&cd_off.to_le_bytes());
        out.extend_from_slice(&ZIP64_LOCATOR_SIG.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&rec.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
    }
    out.extend_from_slice(&EOCD_SIG.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    let n16 = if zip64 { 0xFFFF } else { n as u16 };
    out.extend_from_slice(&n16.to_le_bytes());
    out.extend_from_slice(&n16.to_le_bytes());
    let (s, o) = if zip64 {
        (0xFFFF_FFFF, 0xFFFF_FFFF)
    } else {
        (central.len() as u32, cd_off as u32)
    };
    out.extend_from_slice(&s.to_le_bytes());
    out.extend_from_slice(&o.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// The pickle `torch.save` writes for a state dict of f32 tensors, each `(name, shape)` viewing
/// the whole of its own storage (key = its index), as protocol 2 with the memo sharing the
/// globals, like torch's own.
pub fn state_dict_pickle(tensors: &[(String, Vec<u64>)]) -> Vec<u8> {
    fn text(p: &mut Vec<u8>, s: &str) {
        p.push(b'X');
        p.extend_from_slice(&(s.len() as u32).to_le_bytes());
        p.extend_from_slice(s.as_bytes());
    }
    fn int(p: &mut Vec<u8>, v: u64) {
        p.push(b'J');
        p.extend_from_slice(&(v as i32).to_le_bytes());
    }
    /// `GLOBAL module.name`, memoized at `slot` the first time, fetched from the memo after.
    fn global(p: &mut Vec<u8>, first: bool, module: &str, name: &str, slot: u8) {
        if first {
            p.push(b'c');
            p.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
            p.extend_from_slice(&[b'q', slot]);
        } else {
            p.extend_from_slice(&[b'h', slot]);
        }
    }
    fn tuple(p: &mut Vec<u8>, vals: &[u64]) {
        p.push(b'(');
        for &v in vals {
            int(p, v);
        }
        p.push(b't');
    }
    let mut p = vec![0x80, 2, b'}', b'q', 0, b'('];
    for (i, (name, shape)) in tensors.iter().enumerate() {
        let first = i == 0;
        let numel: u64 = shape.iter().product();
        let mut stride = vec![1u64; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * shape[d + 1];
        }
        text(&mut p, name);
        global(&mut p, first, "torch._utils", "_rebuild_tensor_v2", 1);
        p.extend_from_slice(b"((");
        text(&mut p, "storage");
        global(&mut p, first, "torch", "FloatStorage", 2);
        text(&mut p, &i.to_string());
        text(&mut p, "cpu");
        int(&mut p, numel);
        p.extend_from_slice(b"tQ");
        int(&mut p, 0);
        tuple(&mut p, shape);
        tuple(&mut p, &stride);
        p.push(0x89);
        global(&mut p, first, "collections", "OrderedDict", 3);
        p.extend_from_slice(b")RtR");
    }
    p.extend_from_slice(b"u.");
    p
}

/// A `torch.save`-style `.pth` of f32 tensors (see [`state_dict_pickle`]): `<root>/data.pkl`,
/// `<root>/byteorder` and one entry `<root>/data/<i>` per tensor, holding `0.0, 1.0, …`.
pub fn state_dict_pth(root: &str, tensors: &[(String, Vec<u64>)]) -> Vec<u8> {
    let pkl = state_dict_pickle(tensors);
    let storages: Vec<(String, Vec<u8>)> = tensors
        .iter()
        .enumerate()
        .map(|(i, (_, shape))| {
            let n: u64 = shape.iter().product();
            let bytes = (0..n).flat_map(|v| (v as f32).to_le_bytes()).collect();
            (format!("{root}/data/{i}"), bytes)
        })
        .collect();
    let pkl_name = format!("{root}/data.pkl");
    let order_name = format!("{root}/byteorder");
    let mut files: Vec<(&str, &[u8])> = vec![(&pkl_name, &pkl), (&order_name, b"little")];
    files.extend(storages.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
    // More than 65535 entries need ZIP64's counts, as torch writes them then.
    let zip64 = files.len() > 0xFFFF;
    stored_zip(&files, zip64)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn field_bytes(num: u64, b: &[u8], out: &mut Vec<u8>) {
    varint(num << 3 | 2, out);
    varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

fn field_varint(num: u64, v: u64, out: &mut Vec<u8>) {
    varint(num << 3, out);
    varint(v, out);
}

/// A SentencePiece `tokenizer.model` (its protobuf) of `pieces` (text, score, type): BPE, the
/// identity normalizer with a dummy prefix, unk/bos/eos ids 0/1/2 (the proto defaults), no
/// pad id, and `byte_fallback` as given.
pub fn sentencepiece_model(pieces: &[(&str, f32, u8)], byte_fallback: bool) -> Vec<u8> {
    let mut m = Vec::new();
    for &(p, s, t) in pieces {
        let mut e = Vec::new();
        field_bytes(1, p.as_bytes(), &mut e);
        varint(2 << 3 | 5, &mut e);
        e.extend_from_slice(&s.to_le_bytes());
        field_varint(3, u64::from(t), &mut e);
        field_bytes(1, &e, &mut m);
    }
    let mut t = Vec::new();
    field_varint(3, 2, &mut t);
    field_varint(35, u64::from(byte_fallback), &mut t);
    field_varint(43, u64::MAX, &mut t); // pad_id = -1, sign-extended
    field_bytes(2, &t, &mut m);
    let mut n = Vec::new();
    field_bytes(1, b"identity", &mut n);
    field_varint(4, 0, &mut n);
    field_bytes(3, &n, &mut m);
    m
}
