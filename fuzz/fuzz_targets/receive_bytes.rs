//! Fuzz target `receive_bytes`: the body is `shadowkv::testkit::fuzz::receive_bytes`, which
//! `tests/fuzz_corpus.rs` also replays on stable over `fuzz/corpus/receive_bytes/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shadowkv::testkit::fuzz::receive_bytes(data);
});
