#!/bin/sh
# A RUSTC_WRAPPER for fuzz builds (fuzz/README.md, "Speed of ops"): compiles the crc32c
# crate without coverage instrumentation. Its loop ran one traced compare per 8 bytes
# hashed, a sixth of the instrumented `ops` target's time, and its branches say nothing
# about the engine. cargo-fuzz's RUSTFLAGS come last on rustc's command line, so a
# per-crate profile flag cannot turn them off; dropping them here can.
#
# It also gives every crate `popcnt` (the machines that fuzz have it; cargo-fuzz's trace
# compares assume it too): without it `u64::count_ones` is a dozen instructions, and the
# debug assertion of `Bitmaps::get` counts the free bits of every bitmap loaded.
rustc="$1"
shift
case " $* " in
*" --crate-name crc32c "*) ;;
*) exec "$rustc" "$@" -Ctarget-feature=+popcnt ;;
esac
for arg do
    shift
    case "$arg" in
    -Cpasses=sancov-module | -Cllvm-args=-sanitizer-coverage-*) ;;
    *) set -- "$@" "$arg" ;;
    esac
done
exec "$rustc" "$@" -Ctarget-feature=+popcnt
