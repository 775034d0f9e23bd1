//! Fuzz target `open_bytes`: the body is `shadowkv::testkit::fuzz::open_bytes`, which
//! `tests/fuzz_corpus.rs` also replays on stable over `fuzz/corpus/open_bytes/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shadowkv::testkit::fuzz::open_bytes(data);
});
