//! Fuzzes the `.lpk` parser: any byte string must parse or give an error, never panic, and a
//! parsed file must hand out in-bounds views whose checksums can be recomputed.
//!
//! Each input is tried twice: as a whole file, and as `[u16 split][data region][JSON header]`
//! wrapped in a correct preamble (right lengths and header crc32c), so the fuzzer reaches the
//! index validation instead of stopping at the header checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llamapack_format::{Lpk, header};

fn exercise(bytes: &[u8]) {
    if let Ok(lpk) = Lpk::parse(bytes, "fuzz.lpk") {
        for t in lpk.tensors() {
            let _ = t.checksum_ok();
            let _ = (t.rows(), t.row_len(), t.numel());
        }
        let _ = lpk.verify();
        let _ = lpk.blob("tokenizer.model");
    }
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    if data.len() < 2 {
        return;
    }
    let split = u16::from_le_bytes([data[0], data[1]]) as usize % (data.len() - 1);
    let (region, json) = data[2..].split_at(split);
    let mut file = vec![0u8; header::PREAMBLE_LEN];
    file.extend_from_slice(region);
    let header_offset = file.len() as u64;
    file.extend_from_slice(json);
    let pre = header::Preamble {
        major: header::VERSION_MAJOR,
        minor: header::VERSION_MINOR,
        header_offset,
        header_len: json.len() as u64,
        header_crc32c: crc32c::crc32c(json),
        file_len: file.len() as u64,
    };
    file[..header::PREAMBLE_LEN].copy_from_slice(&pre.to_bytes());
    exercise(&file);
});
