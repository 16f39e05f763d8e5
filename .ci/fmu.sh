#!/usr/bin/env bash
# The SmartPro FMU under a third-party importer (issue 19 part 1, docs/fmu.md):
# builds the FMU with its documented command, runs `smartpro-sim run` of
# fmu/tests/data/compare.toml, and has FMPy (pinned) validate the FMU, simulate
# the same scenario as an input table and compare with run's trace, and test
# many instances, reset, a step that is not a whole number of ADC periods, bad
# parameters and 1,000 instantiate/free cycles (fmu/tests/fmpy_check.py).
#
# Needs libclang (fmi-export's fmi-sys generates its bindings with bindgen):
# installs Debian's libclang-dev when missing, and FMPy from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
START_S=$SECONDS
FMPY_VERSION=0.3.32
OUT=target/ci-fmu

say() { printf 'fmu: %s\n' "$*"; }
fail() { printf 'fmu: FAILED: %s\n' "$*" >&2; exit 1; }

if ! ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1; then
  say "installing libclang-dev (bindgen, for fmi-sys)"
  [ "$(id -u)" -eq 0 ] || fail "libclang is missing and this is not root: apt-get install libclang-dev"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev >/dev/null
fi
if [ "$(python3 -c 'import fmpy; print(fmpy.__version__)' 2>/dev/null || true)" != "$FMPY_VERSION" ]; then
  say "installing FMPy $FMPY_VERSION from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "fmpy==$FMPY_VERSION"
fi
INSTALLED_S=$SECONDS

rm -rf "$OUT" && mkdir -p "$OUT"
# fmu/ is a workspace of its own (it needs libclang, the root's tests must not); it
# shares the root's target folder so the engine's crates are built once.
FMU=(--manifest-path fmu/Cargo.toml --target-dir target)
say "the fmu crate: fmt, clippy, tests"
cargo fmt --manifest-path fmu/Cargo.toml -- --check
# Release throughout: the tests and the FMU then share one build of the engine's crates.
cargo clippy -q --release "${FMU[@]}" --all-targets -- -D warnings
cargo test -q --release "${FMU[@]}"
say "building the FMU (docs/fmu.md: cargo run --release --manifest-path fmu/Cargo.toml -- --out …)"
cargo run --release -q "${FMU[@]}" -- --out "$OUT/smartpro.fmu"
say "smartpro-sim run of the equivalent scenario"
cargo run --release -q --bin smartpro-sim -- run fmu/tests/data/compare.toml --out "$OUT/run" >/dev/null
[ -s "$OUT/run/fmu-compare/trace.csv" ] || fail "run wrote no trace"
BUILT_S=$SECONDS

python3 fmu/tests/fmpy_check.py "$OUT/smartpro.fmu" "$OUT/run/fmu-compare/trace.csv"
say "done in $((SECONDS - START_S)) s (installs $((INSTALLED_S - START_S)) s, builds $((BUILT_S - INSTALLED_S)) s, FMPy checks $((SECONDS - BUILT_S)) s)"
