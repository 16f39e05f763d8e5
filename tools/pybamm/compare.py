#!/usr/bin/env python3
"""Compare our terminal voltage with PyBaMM's, profile by profile.

    python compare.py NAME=REFERENCE.csv,OURS.csv [NAME=...] [--max-rmse-mv 2] [--markdown]

REFERENCE.csv is run_pybamm.py's output, OURS.csv `smartpro-sim ecm`'s;
both have one row per profile row (time_s,current_A,voltage_V,soc,temp_C,
...), current + = charge. Rows are paired in order; their times and
currents must agree (else the files are not of the same profile). Prints per
profile: rows, RMSE and max |error| of the terminal voltage (mV), where the
max is, the max SOC and cell temperature differences. Exit 0 if every RMSE
is below --max-rmse-mv, 1 if one is not, 2 on bad input.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys

COLUMNS = ("time_s", "current_A", "voltage_V", "soc", "temp_C")


def load(path):
    with open(path, encoding="utf-8") as f:
        lines = [ln for ln in f if ln.strip() and not ln.startswith("#")]
    reader = csv.DictReader(lines)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)}")
    return [{c: float(r[c]) for c in COLUMNS} for r in reader]


def compare(ref, ours, name):
    if len(ref) != len(ours):
        raise ValueError(f"{name}: {len(ref)} reference rows, {len(ours)} of ours")
    sq = 0.0
    worst = (0.0, 0.0, 0.0)
    d_soc = d_temp = 0.0
    for k, (a, b) in enumerate(zip(ref, ours)):
        if abs(a["time_s"] - b["time_s"]) > 1e-6 or abs(a["current_A"] - b["current_A"]) > 1e-6 * max(1.0, abs(a["current_A"])):
            raise ValueError(f"{name}: row {k + 1} is t = {a['time_s']} s, {a['current_A']} A in the reference, "
                             f"t = {b['time_s']} s, {b['current_A']} A in ours")
        e = b["voltage_V"] - a["voltage_V"]
        sq += e * e
        if abs(e) > abs(worst[0]):
            worst = (e, a["time_s"], a["current_A"])
        d_soc = max(d_soc, abs(b["soc"] - a["soc"]))
        d_temp = max(d_temp, abs(b["temp_C"] - a["temp_C"]))
    rmse = math.sqrt(sq / len(ref))
    v = [r["voltage_V"] for r in ref]
    t = [r["temp_C"] for r in ref]
    return {
        "name": name,
        "rows": len(ref),
        "duration_s": ref[-1]["time_s"] - ref[0]["time_s"],
        "v_range": (min(v), max(v)),
        "i_range": (min(r["current_A"] for r in ref), max(r["current_A"] for r in ref)),
        "t_max": max(t),
        "rmse_mv": rmse * 1e3,
        "max_mv": worst[0] * 1e3,
        "max_at_s": worst[1],
        "max_at_a": worst[2],
        "d_soc": d_soc,
        "d_temp_c": d_temp,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pairs", nargs="+", metavar="NAME=REFERENCE.csv,OURS.csv")
    ap.add_argument("--max-rmse-mv", type=float, default=2.0)
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table (for docs/models.md)")
    args = ap.parse_args()
    results = []
    try:
        for pair in args.pairs:
            name, _, files = pair.partition("=")
            ref_path, _, ours_path = files.partition(",")
            if not (name and ref_path and ours_path):
                raise ValueError(f"{pair!r}: expected NAME=REFERENCE.csv,OURS.csv")
            results.append(compare(load(ref_path), load(ours_path), name))
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.markdown:
        print("| profile | rows | duration | current | PyBaMM voltage | cell temp. max | RMSE | max error (at) | max ΔSOC | max ΔT |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in results:
            print(f"| {r['name']} | {r['rows']} | {r['duration_s']:.0f} s | {r['i_range'][0]:.0f}..{r['i_range'][1]:.0f} A "
                  f"| {r['v_range'][0]:.3f}..{r['v_range'][1]:.3f} V | {r['t_max']:.2f} °C | {r['rmse_mv']:.4f} mV "
                  f"| {r['max_mv']:+.4f} mV ({r['max_at_s']:.0f} s, {r['max_at_a']:.0f} A) | {r['d_soc']:.1e} "
                  f"| {r['d_temp_c']:.1e} K |")
    else:
        for r in results:
            print(f"{r['name']:>8}: {r['rows']:5d} rows  RMSE {r['rmse_mv']:.4f} mV  max {r['max_mv']:+.4f} mV "
                  f"at {r['max_at_s']:.0f} s ({r['max_at_a']:.0f} A)  max dSOC {r['d_soc']:.1e}  max dT {r['d_temp_c']:.1e} K")
    failed = [r["name"] for r in results if not r["rmse_mv"] < args.max_rmse_mv]
    if failed:
        print(f"RMSE >= {args.max_rmse_mv} mV: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
