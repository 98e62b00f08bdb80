//! `hash(len, n)`: SHA-256 of the first `len` bytes of `INPUT`, `n` times, as the Worker's
//! `software_sha256` computes it (the sha2 crate at opt-level "z").

use sha2::{Digest, Sha256};

static mut INPUT: [u8; 65536] = [0; 65536];

/// Where the caller writes the input.
#[no_mangle]
pub extern "C" fn input() -> *mut u8 {
    core::ptr::addr_of_mut!(INPUT).cast()
}

/// Hashes the first `len` bytes of the input `n` times; returns a sum of digest bytes, so the
/// work cannot be optimized away.
#[no_mangle]
pub extern "C" fn hash(len: usize, n: u32) -> u32 {
    // SAFETY: single-threaded wasm; the caller writes the input only between calls.
    let input: &[u8; 65536] = unsafe { &*core::ptr::addr_of!(INPUT) };
    let bytes = &input[..len.min(input.len())];
    (0..n).fold(0u32, |acc, _| acc.wrapping_add(u32::from(Sha256::digest(bytes)[0])))
}
