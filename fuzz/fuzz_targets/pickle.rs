//! The pickle VM and the torch allow-list interpreter on arbitrary bytes: never a panic, never
//! more memory than the byte budget (by its accounting; libFuzzer's `-rss_limit_mb` watches the
//! real figure).
#![no_main]

use libfuzzer_sys::fuzz_target;
use llamapack_convert::pickle::{torch, vm};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = vm::run(data, &torch::allowed, vm::Limits::default()) {
        let budget = vm::byte_budget(data.len());
        assert!(p.bytes_used <= budget);
        if let Ok((_, used)) = torch::state_dict_with_usage(&p) {
            assert!(p.bytes_used + used <= budget, "charged beyond the byte budget");
        }
    }
});
