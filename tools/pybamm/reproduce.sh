#!/usr/bin/env bash
# The PyBaMM comparison end to end (tools/pybamm/README.md):
#   export ECM_Example -> write the profiles -> PyBaMM Thevenin on each ->
#   smartpro-sim ecm on each (twin heat and Bernardi heat) -> RMSE table.
#
# Usage: tools/pybamm/reproduce.sh [OUT_DIR]      (default target/pybamm)
# Environment:
#   PYTHON   a Python with pybamm installed (default: python3)
#   US06, WLTC  PyBaMM's drive-cycle files; unset: asked of pybamm.DataLoader
#            (downloads from the pybamm-data release), skipped if unreachable
#   MAX_STEP_S  smartpro-sim ecm --max-step-s (default 1)
# Exit status: compare.py's (0: every RMSE < 2 mV, 1: one is not, 2: bad input).
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${1:-target/pybamm}
PY=${PYTHON:-python3}
MAX_STEP_S=${MAX_STEP_S:-1}
mkdir -p "$OUT/profiles" "$OUT/pybamm" "$OUT/ours"

"$PY" -c 'import pybamm' 2>/dev/null || {
  echo "error: $PY has no pybamm (python3 -m venv /tmp/pybamm-venv && /tmp/pybamm-venv/bin/pip install pybamm; PYTHON=/tmp/pybamm-venv/bin/python $0)" >&2
  exit 2
}

fetch() { # PyBaMM's drive cycle $1 via its DataLoader, or nothing
  "$PY" -c "import pybamm, sys; sys.stdout.write(str(pybamm.DataLoader().get_data('$1')))" 2>/dev/null || true
}
US06=${US06:-$(fetch US06.csv)}
WLTC=${WLTC:-$(fetch WLTC.csv)}
[ -n "$US06" ] || echo "note: US06.csv not available (pybamm-data unreachable): skipped"
[ -n "$WLTC" ] || echo "note: WLTC.csv not available (pybamm-data unreachable): skipped"

"$PY" tools/pybamm/export_ecm.py --out "$OUT/ecm_example.toml"
"$PY" tools/pybamm/profiles.py --out-dir "$OUT/profiles" ${US06:+--us06 "$US06"} ${WLTC:+--wltc "$WLTC"}

cargo build --release --bin smartpro-sim
SIM=target/release/smartpro-sim

pairs_pack=()
pairs_bernardi=()
for profile in "$OUT"/profiles/*.csv; do
  name=$(basename "$profile" .csv)
  soc=$(sed -n 's/^# initial_soc = //p' "$profile")
  "$PY" tools/pybamm/run_pybamm.py "$profile" --initial-soc "$soc" --out "$OUT/pybamm/$name.csv"
  for heat in pack bernardi; do
    "$SIM" ecm "$OUT/ecm_example.toml" "$profile" --initial-soc "$soc" --heat "$heat" \
      --max-step-s "$MAX_STEP_S" --out "$OUT/ours/${name}_$heat.csv"
  done
  pairs_pack+=("$name=$OUT/pybamm/$name.csv,$OUT/ours/${name}_pack.csv")
  pairs_bernardi+=("$name=$OUT/pybamm/$name.csv,$OUT/ours/${name}_bernardi.csv")
done

echo
echo "twin heat (smartpro-sim ecm --heat pack):"
"$PY" tools/pybamm/compare.py --markdown "${pairs_pack[@]}" || status=$?
echo
echo "Bernardi heat, as PyBaMM (smartpro-sim ecm --heat bernardi):"
"$PY" tools/pybamm/compare.py --markdown "${pairs_bernardi[@]}" || status=$?
exit "${status:-0}"
