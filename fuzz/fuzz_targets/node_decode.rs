//! Fuzz target `node_decode`: the body is `shadowkv::testkit::fuzz::node_decode`, which
//! `tests/fuzz_corpus.rs` also replays on stable over `fuzz/corpus/node_decode/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shadowkv::testkit::fuzz::node_decode(data);
});
