#!/usr/bin/env python3
"""Write the current profiles of the PyBaMM comparison as CSV.

    python profiles.py --out-dir DIR [--us06 US06.csv]

Each file is `time_s,current_A` in the project's convention (+ = charge,
- = discharge), one row a second; a step in current is two rows at the same
time (the profile format of models/src/profile/mod.rs, linear between rows).
Sized for one 100 Ah cell of PyBaMM's `ECM_Example` (OCV 3.2 V at 0 % SOC,
4.19 V at 100 %), kept inside its 3.2..4.2 V cut-offs. The first comment
line names the initial SOC the profile is meant to start from.

| file | initial SOC | what |
|---|---|---|
| cc.csv | 0.90 | 60 s rest, 1 C (100 A) discharge for 2400 s, 900 s rest |
| pulses.csv | 0.80 | HPPC-like train: discharge 100/200/300 A and charge 50/100/150 A pulses of 10-30 s with rests, 40 min |
| drive.csv | 0.80 | synthetic drive cycle, 30 min: a vehicle model (speed phases -> tractive power) scaled to -300 A drive / +150 A regen, seed 4 |
| us06.csv | 0.70 | only with --us06: PyBaMM's US06.csv (current, + = discharge, 8.1 A peak) x 30, negated, 3 repeats (1 Hz) |
| wltc.csv | 0.70 | only with --wltc: PyBaMM's WLTC.csv (power, kW, 10 Hz) as current, 6 A per kW, negated |

PyBaMM's drive cycles (US06.csv, WLTC.csv) are not in the pybamm wheel:
`pybamm.DataLoader().get_data("US06.csv")` downloads them from the
pybamm-data release and returns the path; pass it to --us06 / --wltc.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

# Seed of the synthetic drive cycle.
DRIVE_SEED = 4


def rows_from_segments(segments):
    """[(current_a, duration_s), ...] of constant currents -> rows at 1 s with jumps."""
    t = 0
    rows = []
    for current, duration in segments:
        if rows and rows[-1][1] != current:
            rows.append((t, current))  # the jump: a second row at the same time
        elif not rows:
            rows.append((t, current))
        for _ in range(int(duration)):
            t += 1
            rows.append((t, current))
    return rows


def cc():
    return 0.90, rows_from_segments([(0.0, 60), (-100.0, 2400), (0.0, 900)])


def pulses():
    segs = [(0.0, 60)]
    for dis, chg in [(-100.0, 50.0), (-200.0, 100.0), (-300.0, 150.0)] * 3:
        segs += [(dis, 10), (0.0, 40), (chg, 10), (0.0, 40), (dis / 2, 30), (0.0, 130)]
    segs += [(0.0, 60)]
    return 0.80, rows_from_segments(segs)


def drive():
    """A vehicle on random speed phases; battery current from tractive power."""
    rng = np.random.default_rng(DRIVE_SEED)
    dt = 1.0
    n = 1800
    v = 0.0
    speeds = np.zeros(n)
    target, hold = 0.0, 0
    for k in range(n):
        if hold <= 0:
            target = 0.0 if rng.random() < 0.2 else rng.uniform(5.0, 35.0)  # m/s
            hold = int(rng.integers(10, 90))
        hold -= 1
        accel = np.clip(target - v, -3.0, 2.5) * rng.uniform(0.3, 1.0)
        v = max(0.0, v + accel * dt)
        speeds[k] = v
    mass_kg, cda_m2, crr, rho = 1500.0, 0.65, 0.01, 1.2
    a = np.gradient(speeds, dt)
    power_w = speeds * (mass_kg * a + 0.5 * rho * cda_m2 * speeds**2 + crr * mass_kg * 9.81 * (speeds > 0))
    drive_w = np.maximum(power_w, 0.0)
    regen_w = np.minimum(power_w, 0.0) * 0.6
    # Scale: the largest drive power -> 300 A discharge; regen capped at 150 A.
    k = 300.0 / drive_w.max()
    current = -(drive_w * k) - np.maximum(regen_w * k, -150.0)
    rows = [(0, 0.0)] + [(i + 1, round(float(c), 3) + 0.0) for i, c in enumerate(current)]
    return 0.80, rows


# Scale of PyBaMM's US06 current (sized for a small cell) to a 100 Ah cell:
# 8.1 A peak -> 243 A.
US06_SCALE = 30.0
# PyBaMM's WLTC power (kW, 43 kW peak, -26 kW regen) as current: 6 A per kW
# -> 260 A peak discharge, 159 A regen.
WLTC_A_PER_KW = 6.0


def us06(path):
    data = np.genfromtxt(path, delimiter=",", comments="#")
    t, i_pb = data[:, 0], data[:, 1]
    period = t[-1] + (t[1] - t[0])
    rows = []
    for rep in range(3):
        for tk, ik in zip(t, i_pb):
            rows.append((round(float(tk + rep * period), 6), round(-US06_SCALE * float(ik), 6) + 0.0))
    return 0.70, rows


def wltc(path):
    data = np.genfromtxt(path, delimiter=",", comments="#")
    return 0.70, [(round(float(t), 6), round(-WLTC_A_PER_KW * float(p), 6) + 0.0) for t, p in data]


def write(path, initial_soc, rows, what):
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"# initial_soc = {initial_soc}\n# {what}; + = charge (A)\ntime_s,current_A\n")
        for t, i in rows:
            f.write(f"{t:g},{i:g}\n")
    print(f"wrote {path}: {len(rows)} rows, {rows[-1][0]} s, initial SOC {initial_soc}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--us06", help="PyBaMM's US06.csv (time [s], current [A], + = discharge)")
    ap.add_argument("--wltc", help="PyBaMM's WLTC.csv (time [s], power [kW], + = discharge)")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    profiles = {
        "cc": (cc(), "1 C discharge between rests"),
        "pulses": (pulses(), "pulse train"),
        "drive": (drive(), f"synthetic drive cycle, seed {DRIVE_SEED}"),
    }
    if args.us06:
        profiles["us06"] = (us06(args.us06), f"PyBaMM US06 x {US06_SCALE:g}, 3 repeats")
    if args.wltc:
        profiles["wltc"] = (wltc(args.wltc), f"PyBaMM WLTC power, {WLTC_A_PER_KW:g} A per kW")
    for name, ((soc0, rows), what) in profiles.items():
        write(os.path.join(args.out_dir, f"{name}.csv"), soc0, rows, what)
    return 0


if __name__ == "__main__":
    sys.exit(main())
