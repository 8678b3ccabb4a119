//! Intel AMX (Advanced Matrix Extensions): whether this process may use the int8 tile unit,
//! and the tile configuration the panel kernels load.
//!
//! AMX needs three things: the CPU's tiles and int8 multiply (CPUID leaf 7: `AMX-TILE`,
//! `AMX-INT8`), the AVX-512 level the kernels' scaling steps use, and the operating system's
//! leave to use the 8 KiB tile state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`
//! on Linux, once per process; without it the first tile instruction faults). All three are
//! checked once ([`usable`]); `LLAMAPACK_AMX=0` turns the path off.
//!
//! The tile instructions are written as inline assembly (Rust has no stable AMX
//! intrinsics); each kernel loads its configuration, uses the tiles it configured, and
//! releases them before it returns, so no tile state outlives a call.

use std::sync::OnceLock;

/// Whether the AMX panel kernels may run in this process (detected once).
pub(crate) fn usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| {
        if std::env::var("LLAMAPACK_AMX").is_ok_and(|v| v.trim() == "0") {
            return false;
        }
        // CPUID leaf 7 sub-leaf 0, EDX: bit 24 AMX-TILE, bit 25 AMX-INT8
        let c = std::arch::x86_64::__cpuid_count(7, 0);
        let amx = (c.edx >> 24) & 1 == 1 && (c.edx >> 25) & 1 == 1;
        amx && crate::Level::Avx512.is_supported() && request_tile_data()
    })
}

/// Asks Linux for the tile data state (`ARCH_REQ_XCOMP_PERM` = 0x1023 with feature 18,
/// `XFEATURE_XTILEDATA`); true if granted. Elsewhere: false.
fn request_tile_data() -> bool {
    #[cfg(target_os = "linux")]
    {
        let ret: i64;
        // SAFETY: the `arch_prctl` system call (158 on x86-64) with these arguments only
        // changes the process's permitted extended state; it reads and writes no memory of
        // ours. `syscall` clobbers rcx and r11, declared as such.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") 158i64 => ret,
                in("rdi") 0x1023i64,
                in("rsi") 18i64,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack)
            );
        }
        ret == 0
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// A tile configuration (palette 1): 64 bytes, 64-aligned, as `ldtilecfg` reads it.
#[repr(C, align(64))]
pub(crate) struct TileConfig([u8; 64]);

impl TileConfig {
    /// Palette 1 with tile `t` of `rows` rows of `bytes` bytes for each `(t, rows, bytes)`.
    pub(crate) fn new(tiles: &[(usize, u8, u16)]) -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1;
        for &(t, rows, bytes) in tiles {
            c[16 + 2 * t..18 + 2 * t].copy_from_slice(&bytes.to_le_bytes());
            c[48 + t] = rows;
        }
        TileConfig(c)
    }

    /// Loads the configuration (`ldtilecfg`).
    ///
    /// # Safety
    /// [`usable`] returned true; the caller ends its use of the tiles with [`release`].
    #[inline]
    pub(crate) unsafe fn load(&self) {
        // SAFETY: the 64 bytes are a valid palette-1 configuration (unused tiles zero), and
        // the caller has the OS's leave to use the tile state.
        unsafe { std::arch::asm!("ldtilecfg [{0}]", in(reg) self.0.as_ptr(), options(nostack)) };
    }
}

/// Releases the tiles (`tilerelease`): the tile state returns to its initial, unconfigured
/// state.
///
/// # Safety
/// [`usable`] returned true.
#[inline]
pub(crate) unsafe fn release() {
    // SAFETY: `tilerelease` only resets the tile state.
    unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
}
