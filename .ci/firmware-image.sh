#!/usr/bin/env bash
# The example firmware image (firmware-image/, its own crate outside the root
# workspace), built for the board's Cortex-M4F:
#   1. the real image must link: its panic handler references an undefined
#      symbol, so a panic path reachable from Board's entry points fails the
#      link; if it does, the panic call sites are listed with file:line;
#   2. with one deliberate panic it must NOT link, so the check cannot rot into
#      a no-op, and it must cover every path the board runs: a panic in the
#      main loop (prove-check-works), in the settings store's load
#      (prove-check-works-nvm) and in the PDU path (prove-check-works-pdu);
#   3. flash and RAM use, against the budget: flash <= 64 KiB,
#      static RAM + worst-case stack <= 8 KiB.
# FIRMWARE_IMAGE_FEATURES=prove-check-works shows what a failure looks like
# (step 1 fails and lists the deliberate panic's call site).
set -euo pipefail
cd "$(dirname "$0")/../firmware-image"
ROOT=$(cd .. && pwd)

TARGET=thumbv7em-none-eabihf
BIN=smartpro-firmware-image
FLASH_BUDGET=$((64 * 1024))
RAM_BUDGET=$((8 * 1024))
PANIC_SYMBOL=smartpro_panic_path_is_reachable
ELF=target/$TARGET/release/$BIN
KEEP=target/$BIN.elf
LOG=target/firmware-image-build.log
FEATURES=${FIRMWARE_IMAGE_FEATURES:-}

step() { printf '\n=== firmware-image: %s ===\n' "$*"; }
fail() { printf '\nfirmware-image: FAILED: %s\n' "$*" >&2; exit 1; }
mkdir -p target

if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
  step "installing the $TARGET target"
  rustup target add "$TARGET"
fi

# Symbolises addresses with whichever addr2line is here (GNU binutils reads
# the ARM image's DWARF too).
addr2line_tool() {
  for t in llvm-addr2line addr2line arm-none-eabi-addr2line; do
    command -v "$t" >/dev/null 2>&1 && { echo "$t"; return; }
  done
}

list_panic_sites() {
  step "locating the panic paths (feature find-panics: a panic handler that links)"
  cargo build --release --features "find-panics $FEATURES" 2>&1 | tail -n 3 || true
  local sites a2l
  sites=$(python3 tools/elf_report.py "$ELF" | grep '^panic_site:' || true)
  if [ -z "$sites" ]; then
    echo "no direct call into a panic function found; the reference may be indirect"
    return
  fi
  a2l=$(addr2line_tool || true)
  while read -r _ addr rest; do
    echo "PANIC PATH at $addr ${rest}"
    if [ -n "$a2l" ]; then
      # -i: the whole inlining chain, innermost (the panicking line) first.
      chain=$("$a2l" -f -i -C -e "$ELF" "$addr" | paste - - | sed -E \
        -e 's/\$LT\$/</g; s/\$GT\$/>/g; s/\$u20\$/ /g; s/\$RF\$/\&/g; s/\$u5b\$/[/g; s/\$u5d\$/]/g' \
        -e 's/\.\./::/g; s/::h[0-9a-f]{16}//; s/^/    /')
      echo "$chain"
      own=$(echo "$chain" | grep -m1 -E '/(firmware-core|firmware-image)/' | awk -F'\t' '{print $2}' || true)
      if [ -n "$own" ]; then echo "    => innermost project line: ${own#"$ROOT/"}"; fi
    fi
  done <<<"$sites"
}

step "release build (must link: no panic path reachable)"
start=$SECONDS
if ! cargo build --release --features "$FEATURES" >"$LOG" 2>&1; then
  cat "$LOG"
  if grep -q "$PANIC_SYMBOL" "$LOG"; then
    list_panic_sites
    fail "a panic path is reachable from the image (undefined symbol $PANIC_SYMBOL); see PANIC PATH lines above"
  fi
  fail "release build failed (not the panic check)"
fi
tail -n 1 "$LOG"
cp "$ELF" "$KEEP"

for probe in prove-check-works prove-check-works-nvm prove-check-works-pdu; do
  step "the check catches a panic (feature $probe must fail to link)"
  if cargo build --release --features "$probe" >"$LOG" 2>&1; then
    cat "$LOG"
    fail "the image linked with a deliberate panic ($probe): the link-time panic check does not cover that path"
  fi
  if ! grep -q "undefined symbol: $PANIC_SYMBOL" "$LOG"; then
    cat "$LOG"
    fail "the $probe build failed, but not with 'undefined symbol: $PANIC_SYMBOL'"
  fi
  grep -m1 "undefined symbol: $PANIC_SYMBOL" "$LOG" | sed 's/^[[:space:]]*/expected link error: /'
done

step "format and clippy (this crate only: firmware-core is not a member here)"
cargo fmt -- --check
if cargo clippy -V >/dev/null 2>&1; then
  cargo clippy --release -- -D warnings
else
  echo "clippy not installed: skipped"
fi

step "flash and RAM"
report=$(python3 tools/elf_report.py "$KEEP" --object BOARD)
echo "$report"
if command -v llvm-size >/dev/null 2>&1; then
  echo "--- llvm-size -A (cross-check) ---"
  llvm-size -A "$KEEP" | grep -E '^\.(vector_table|text|rodata|data|bss|uninit) '
fi
value() { echo "$report" | sed -n "s/^$1: //p"; }
flash=$(value flash)
ram=$(value ram)
stack=$(value stack)
board=$(echo "$report" | sed -n 's/^object .*BOARD[^:]*: //p' | head -n 1)
echo
echo "firmware_image_flash_bytes: $flash"
echo "firmware_image_ram_bytes: $ram"
echo "firmware_image_stack_bytes: $stack"
if [ -n "$board" ]; then echo "firmware_image_board_bytes: $board"; fi
echo "firmware_image_budget: flash <= $FLASH_BUDGET, static RAM + stack <= $RAM_BUDGET"
echo "firmware_image_seconds: $((SECONDS - start))"

[ "$flash" -le "$FLASH_BUDGET" ] || fail "flash $flash B > $FLASH_BUDGET B"
[ "$ram" -le "$RAM_BUDGET" ] || fail "static RAM $ram B > $RAM_BUDGET B"
[ "$stack" != unknown ] || fail "worst-case stack could not be bounded (see stack_problem lines)"
[ $((ram + stack)) -le "$RAM_BUDGET" ] || fail "static RAM $ram B + stack $stack B > $RAM_BUDGET B"
echo "firmware-image: OK"
