//! The zip reader and the whole `.pth` loader on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(z) = llamapack_convert::zip::ZipArchive::parse(data, "fuzz.pth") {
        for e in z.entries() {
            let _ = z.data_checked(e);
        }
    }
    if let Ok(ts) = llamapack_convert::pth::load(data, "fuzz.pth") {
        for t in ts {
            let _ = t.bytes();
        }
    }
});
