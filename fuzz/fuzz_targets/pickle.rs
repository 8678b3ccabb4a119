//! The pickle VM and the torch allow-list interpreter on arbitrary bytes: never a panic, never
//! unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llamapack_convert::pickle::{torch, vm};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = vm::run(data, &torch::allowed, vm::Limits::default()) {
        let _ = torch::state_dict(&p);
    }
});
