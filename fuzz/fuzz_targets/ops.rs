//! Fuzz target `ops`: the body is `shadowkv::testkit::fuzz::ops`, which
//! `tests/fuzz_corpus.rs` also replays on stable over `fuzz/corpus/ops/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shadowkv::testkit::fuzz::ops(data);
});
