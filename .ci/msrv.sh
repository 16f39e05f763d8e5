#!/usr/bin/env bash
# The declared minimum Rust versions build (issue 21, item 3).
#   - the workspace's `rust-version` (Cargo.toml, [workspace.package]): the floor
#     set by the dependencies (nalgebra 0.35, wide and safe_arch need 1.89);
#     every member is checked with exactly that toolchain, tests included;
#   - firmware-core (and the example image on top of it) declare their own,
#     lower floor: what an embedded user's toolchain needs; checked for the
#     board's target with exactly that toolchain.
# Each toolchain is installed with rustup's minimal profile if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

declared() { sed -n 's/^rust-version = "\([0-9.]*\)"/\1/p' "$1" | head -n 1; }
need() {
  local v=$1 target=${2:-}
  rustup toolchain list | grep -q "^$v" || rustup toolchain install "$v" --profile minimal
  if [ -n "$target" ]; then
    rustup target list --toolchain "$v" --installed | grep -qx "$target" || rustup target add --toolchain "$v" "$target"
  fi
}

ws=$(declared Cargo.toml)
fw=$(declared firmware-core/Cargo.toml)
img=$(declared firmware-image/Cargo.toml)
[ -n "$ws" ] || { echo "msrv: no rust-version in Cargo.toml" >&2; exit 1; }
fw=${fw:-$ws}

# No dependency may need more than the workspace declares.
max=$(cargo metadata --format-version 1 --locked | python3 -c '
import json, sys
m = json.load(sys.stdin)
key = lambda v: tuple(int(x) for x in v.split("."))
vs = [(p["rust_version"], p["name"]) for p in m["packages"] if p.get("rust_version")]
v, name = max(vs, key=lambda p: key(p[0]))
print(v, name)')
echo "msrv: workspace declares $ws; the highest a dependency needs: $max"
python3 - "$ws" ${max%% *} <<'PY'
import sys
key = lambda v: tuple(int(x) for x in v.split("."))[:2]
declared, needed = sys.argv[1], sys.argv[2]
if key(declared) < key(needed):
    sys.exit(f"msrv: rust-version {declared} is below what a dependency needs ({needed})")
PY

need "$ws"
echo "msrv: cargo +$ws check --workspace --all-targets"
cargo "+$ws" check --workspace --all-targets --locked --target-dir target/msrv

need "$fw" thumbv7em-none-eabihf
echo "msrv: cargo +$fw check -p smartpro-firmware-core --target thumbv7em-none-eabihf"
cargo "+$fw" check -p smartpro-firmware-core --target thumbv7em-none-eabihf --locked --target-dir target/msrv-fw

if [ -n "$img" ]; then
  need "$img" thumbv7em-none-eabihf
  echo "msrv: firmware-image: cargo +$img check --target thumbv7em-none-eabihf"
  (cd firmware-image && cargo "+$img" check --release --target thumbv7em-none-eabihf --locked --target-dir target/msrv)
fi
echo "msrv: ok (workspace $ws, firmware-core $fw, firmware-image ${img:-none})"
