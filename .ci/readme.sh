#!/usr/bin/env bash
# The README, followed verbatim (issue 21, item 6). Every ```sh block of
# README.md is tagged with what it needs:
#
#   sh readme    run here, exactly as shown, in a copy of the repository
#                (`git ls-files`: what a fresh clone has), one bash session
#                for all blocks in order (a twin a block starts with `&`
#                serves the block's next commands; a command with
#                `--port /tmp/X` first waits until the twin has made X);
#   sh install   `cargo install --path …`: done here by its equivalent, the
#                release binaries (built if missing) first on PATH;
#   sh ci        run by .ci/run itself (cargo test, the scenario library, the FMU);
#   sh hardware  needs a board on a serial adapter: must name /dev/tty…; not run.
#
# An untagged sh block fails the script, so no README command goes untested
# by accident. It also checks that every scenario of the library is in the
# README's table. Takes about a minute once the release build exists.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
say() { printf 'readme: %s\n' "$*"; }
fail() { printf 'readme: FAILED: %s\n' "$*" >&2; exit 1; }
START=$SECONDS

# --- the blocks --------------------------------------------------------------
WORK=$(mktemp -d)
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/blocks"
# Writes each block to blocks/NNN.TAG (first line: `# README.md:LINE`).
awk -v dir="$WORK/blocks" '
  /^```sh/ {
    if (inblock) { print "README.md:" NR ": a code block opens inside another" > "/dev/stderr"; exit 2 }
    tag = $2; if (tag == "") { print "README.md:" NR ": ```sh block without a tag (readme, install, ci, hardware)" > "/dev/stderr"; bad = 1 }
    n++; file = sprintf("%s/%03d.%s", dir, n, tag == "" ? "untagged" : tag); print "# README.md:" NR > file
    inblock = 1; next
  }
  /^```/ && inblock { inblock = 0; close(file); next }
  inblock { print > file }
  END { if (inblock) { print "README.md: unclosed code block" > "/dev/stderr"; exit 2 } exit bad }
' README.md || fail "README.md's sh blocks are not all tagged"
for f in "$WORK"/blocks/*; do
  case "$f" in
    *.readme | *.install | *.ci) ;;
    *.hardware) grep -q '/dev/tty' "$f" || fail "$(head -1 "$f" | cut -c3-): a hardware block that names no /dev/tty… device" ;;
    *) fail "$(head -1 "$f" | cut -c3-): unknown tag ${f##*.}" ;;
  esac
done
say "$(ls "$WORK"/blocks/*.readme | wc -l) blocks to run, $(ls "$WORK"/blocks/*.hardware 2>/dev/null | wc -l) for hardware, $(ls "$WORK"/blocks/*.ci "$WORK"/blocks/*.install 2>/dev/null | wc -l) run elsewhere"

# --- every scenario of the library in the README's table ---------------------
python3 - <<'PY' || fail "the README's scenario table"
import pathlib, re, sys
readme = pathlib.Path("README.md").read_text()
table = readme.split("## The scenario library", 1)[1].split("\n## ", 1)[0]
names = set()
for row in table.splitlines():
    cells = re.findall(r"`([^`]+)`", row.split("|")[1] if row.startswith("|") else "")
    full = [c for c in cells if "…" not in c]
    for c in cells:
        if c.endswith("…") and full:            # `24v-…` after `12v-short-circuit`
            names.add(c[:-1] + full[0].split("-", 1)[1])
        elif c.startswith("…") and full:        # `…-not-counted` after `12v-self-consumption-counted`
            names.add(full[0].rsplit("-", 1)[0] + c[1:])
        else:
            names.add(c)
missing = sorted(p.stem for p in pathlib.Path("scenarios").glob("*.toml") if p.stem not in names)
if missing:
    print("readme: scenarios missing from the README's table: " + ", ".join(missing), file=sys.stderr)
    sys.exit(1)
print(f"readme: all {len(list(pathlib.Path('scenarios').glob('*.toml')))} scenarios of the library are in the table")
PY

# --- `cargo install`, and a fresh copy of the repository ---------------------
if [ ! -x target/release/smartpro-sim ] || [ ! -x target/release/hil-rig ]; then
  say "building the release binaries"
  cargo build --release --quiet --bin smartpro-sim --bin hil-rig
fi
mkdir -p "$WORK/bin" "$WORK/clone"
ln -s "$REPO/target/release/smartpro-sim" "$REPO/target/release/hil-rig" "$WORK/bin/"
export PATH="$WORK/bin:$PATH"
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$WORK/clone"

# --- one session: the blocks in order ----------------------------------------
{
  echo 'set -euo pipefail'
  # a port that a block opens: made by a twin the session started (up to 20 s)
  echo 'readme_wait() { for p in "$@"; do for _ in $(seq 200); do [ -e "$p" ] && break; sleep 0.1; done; [ -e "$p" ] || { echo "readme: no $p after 20 s" >&2; exit 1; }; done; }'
  echo 'trap '"'"'for j in $(jobs -p); do kill "$j" 2>/dev/null || true; done'"'"' EXIT'
  for f in "$WORK"/blocks/*.readme; do
    at=$(head -1 "$f" | cut -c3-)
    printf 'printf "\\nreadme: === %s ===\\n"\n' "$at"
    # before a command that opens a twin's pty (not the serve that makes it), wait for it
    tail -n +2 "$f" | awk '/--port \/tmp\// && !/ serve / { if (match($0, /--port \/tmp\/[^ ]*/)) print "readme_wait " substr($0, RSTART + 7, RLENGTH - 7) } { print }'
    # a twin the block stopped with kill has ended before the next block starts
    grep -q '^kill %' "$f" && echo 'wait || true'
  done
} >"$WORK/session.sh"
cd "$WORK/clone"
bash "$WORK/session.sh" || fail "a README command failed (the block above)"
cd "$REPO"
say "passed in $((SECONDS - START)) s"
