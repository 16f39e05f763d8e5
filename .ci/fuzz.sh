#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer) of every untrusted input: docs/reliability.md.
#
#   .ci/fuzz.sh TARGET SECONDS   run one target (rtu pdu nvm tcp files csv hil_reply),
#                                print execs, coverage, crashes; exit 1 on a crash
#   .ci/fuzz.sh smoke [SECONDS]  every target SECONDS (default 12) each: CI
#   .ci/fuzz.sh list             the targets
#
# Build: the nightly toolchain, with exactly the flags `cargo fuzz build -s none -a`
# passes (cargo-fuzz 0.13's SanitizerCoverage set, debug assertions and overflow
# checks on, no sanitizer), by plain cargo: CI needs no `cargo install cargo-fuzz`
# (that takes minutes), and `cargo +nightly fuzz run TARGET` still works in fuzz/
# for whoever has it. Corpus: fuzz/corpus/TARGET (committed seeds) plus what a run
# finds, kept in target/fuzz-corpus/TARGET (not committed). Crashes: fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(rtu pdu nvm tcp files csv hil_reply)
TRIPLE=x86_64-unknown-linux-gnu
BIN=fuzz/target/$TRIPLE/release

say() { printf 'fuzz: %s\n' "$*"; }
usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

build() {
  if ! rustup toolchain list | grep -q '^nightly'; then
    say "installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal
  fi
  local flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
  flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
  flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
  flags+=" -Cllvm-args=-simplifycfg-branch-fold-threshold=0 -Cllvm-args=-sanitizer-coverage-stack-depth"
  flags+=" -Cdebug-assertions -Ccodegen-units=1"
  local bins=()
  for t in "$@"; do bins+=(--bin "$t"); done
  RUSTFLAGS="$flags" CARGO_INCREMENTAL=0 cargo +nightly build --quiet --manifest-path fuzz/Cargo.toml \
    --target "$TRIPLE" --release --config 'profile.release.debug="line-tables-only"' "${bins[@]}"
}

# run TARGET SECONDS: libFuzzer on the committed seeds and the kept corpus, one job.
run() {
  local t=$1 secs=$2
  local kept=target/fuzz-corpus/$t art=fuzz/artifacts/$t log
  mkdir -p "$kept" "$art" fuzz/corpus/"$t"
  log=$(mktemp)
  local status=0
  # -timeout: an input taking 10 s is a hang; -rss_limit_mb: memory that grows is a finding.
  "$BIN/$t" "$kept" fuzz/corpus/"$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 \
    -max_len=4096 -print_final_stats=1 -artifact_prefix="$art/" >"$log" 2>&1 || status=$?
  local execs cov crashes
  execs=$(awk '/stat::number_of_executed_units:/ { print $2 }' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  crashes=$(grep -cE '^==[0-9]+== ERROR: libFuzzer|panicked at|deadly signal|Test unit written to' "$log" || true)
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
  printf 'fuzz: %-9s %5s s  execs %s  coverage %s  crashes %s\n' "$t" "$secs" "${execs:-?}" "${cov:-?}" "$crashes"
  if [ "$status" -ne 0 ]; then
    grep -E 'panicked at|ERROR|SUMMARY|Test unit written to|^thread' "$log" | head -20 >&2
    say "$t: FAILED (exit $status); the input is in $art/ (docs/reliability.md: a crash becomes a regression test)"
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

[ $# -ge 1 ] || usage
case "$1" in
  list) printf '%s\n' "${TARGETS[@]}" ;;
  smoke)
    secs=${2:-12}
    t0=$(date +%s)
    build "${TARGETS[@]}"
    say "built in $(( $(date +%s) - t0 )) s"
    failed=0
    for t in "${TARGETS[@]}"; do run "$t" "$secs" || failed=1; done
    say "smoke: $(( $(date +%s) - t0 )) s in all"
    exit "$failed"
    ;;
  *)
    [ $# -eq 2 ] || usage
    printf '%s\n' "${TARGETS[@]}" | grep -qx "$1" || { say "no target $1 (targets: ${TARGETS[*]})"; exit 2; }
    build "$1"
    run "$1" "$2"
    ;;
esac
