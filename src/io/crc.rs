//! CRC-32C for short buffers (stream records, about a hundred bytes each).
//!
//! Why: the `crc32c` crate aligns its input first, a byte at a time, and the CRC instruction
//! is one long dependency chain, so a record of 140 bytes took about fourteen single-byte
//! steps besides its seventeen words. Here every step takes eight bytes, read unaligned
//! (x86 loads any address), and at most one four-byte and three single-byte steps end it.
//!
//! Invariants:
//! - [`crc32c_append`] equals `crc32c::crc32c_append` for every input (tested against it).
//! - Buffers of [`SHORT_BYTES`] or more, and CPUs without SSE 4.2, go to the crate, whose
//!   three interleaved chains are faster for long buffers.

/// The longest buffer this module checksums itself.
const SHORT_BYTES: usize = 512;

/// The CRC-32C of `bytes` continuing from `crc`, as `crc32c::crc32c_append` computes it.
#[inline]
pub(crate) fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() < SHORT_BYTES && std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: `short_sse42` needs SSE 4.2, which the CPU was just found to have.
        return unsafe { short_sse42(crc, bytes) };
    }
    crc32c::crc32c_append(crc, bytes)
}

/// The CRC-32C of `bytes`.
#[inline]
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    crc32c_append(0, bytes)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn short_sse42(crc: u32, bytes: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u32, _mm_crc32_u64, _mm_crc32_u8};
    let mut wide = u64::from(!crc);
    let mut words = bytes.chunks_exact(8);
    // Bounded: one step per eight bytes.
    for word in &mut words {
        wide = _mm_crc32_u64(wide, u64::from_le_bytes(word.try_into().expect("8 bytes")));
    }
    // The CRC instruction leaves the upper half of its 64-bit result zero.
    let mut crc = wide as u32;
    let mut rest = words.remainder().chunks_exact(4);
    if let Some(half) = rest.next() {
        crc = _mm_crc32_u32(crc, u32::from_le_bytes(half.try_into().expect("4 bytes")));
    }
    for &byte in rest.remainder() {
        crc = _mm_crc32_u8(crc, byte);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::crc32c_append;
    use proptest::prelude::*;

    #[test]
    fn equals_the_crate_at_every_length_and_alignment() {
        let bytes: Vec<u8> = (0..1200u32).map(|i| (i * 151 % 251) as u8).collect();
        // Bounded: lengths and offsets below the buffer's.
        for offset in 0..9 {
            for len in 0..(bytes.len() - offset) {
                let part = &bytes[offset..offset + len];
                for seed in [0u32, 1, 0xDEAD_BEEF] {
                    assert_eq!(
                        crc32c_append(seed, part),
                        crc32c::crc32c_append(seed, part),
                        "offset {offset} len {len} seed {seed:#x}"
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn equals_the_crate_on_any_bytes(seed: u32, bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
            prop_assert_eq!(crc32c_append(seed, &bytes), crc32c::crc32c_append(seed, &bytes));
        }
    }
}
