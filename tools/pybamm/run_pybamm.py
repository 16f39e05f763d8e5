#!/usr/bin/env python3
"""Run PyBaMM's Thevenin model with `ECM_Example` on a current profile.

    python run_pybamm.py PROFILE.csv --out reference.csv [--initial-soc X] [--until-s T]

PROFILE.csv is `time_s,current_A` with + = charge (the project's
convention; see models/src/profile/mod.rs): linear between rows, a step is two
rows at the same time. `--initial-soc` defaults to the profile's
`# initial_soc = X` comment line, else ECM_Example's "Initial SoC".

The model is `pybamm.equivalent_circuit.Thevenin()` with its default
options (one RC element, no diffusion element) and
`pybamm.ParameterValues("ECM_Example")` unchanged except "Initial SoC" and
"Current function [A]" — so the thermal model is the one the example comes
with: the cell and the jig as two lumped nodes, cell 1000 J/K, cell-jig
10 W/K, jig 500 J/K, jig-air 10 W/K, ambient and initial temperature
25 degC, heat = I^2 R0 + I * eta_RC (irreversible) + I T dU/dT
(reversible), and R0, R1, C1 read at the cell temperature.

The current is applied interval by interval: between two rows PyBaMM's
"Current function [A]" is the straight line between them (inputs I_a,
slope, t_a), and the solver is stepped from row to row, so every row is an
output point and a step in current is exact (no smoothing of the jump).
PyBaMM's current is + = discharge: the profile's column is negated on the
way in and the output's on the way out.

Output (`--out`): time_s,current_A,voltage_V,soc,temp_C,jig_temp_C, one row
per profile row, current + = charge; at a step the row before it has the
voltage with the old current, the row after with the new one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pybamm

PARAMETER_SET = "ECM_Example"
# Solver tolerances: tight enough that PyBaMM's own error is far below the
# microvolts compared (the default rtol 1e-4 would not be).
RTOL = 1e-10
ATOL = 1e-10

OUTPUTS = ["Voltage [V]", "SoC", "Cell temperature [degC]", "Jig temperature [degC]"]


def read_profile(path):
    soc0 = None
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            s = line.strip()
            if s.startswith("#"):
                key, _, val = s.lstrip("# ").partition("=")
                if key.strip() == "initial_soc":
                    soc0 = float(val)
                continue
            if not s or not s[0].isdigit() and s[0] not in "-.":
                continue
            t, i = s.split(",")[:2]
            rows.append((float(t), float(i)))
            if len(rows) > 1 and rows[-1][0] < rows[-2][0]:
                raise SystemExit(f"{path}:{n}: time goes backwards")
    return soc0, rows


def run(rows, initial_soc):
    model = pybamm.equivalent_circuit.Thevenin()
    values = pybamm.ParameterValues(PARAMETER_SET)

    def current_pb(t):
        # + = discharge; a line through (t_a, I_a) with the interval's slope
        return pybamm.InputParameter("I_a") + pybamm.InputParameter("slope") * (t - pybamm.InputParameter("t_a"))

    values.update({"Current function [A]": current_pb, "Initial SoC": initial_soc})
    sim = pybamm.Simulation(model, parameter_values=values, solver=pybamm.IDAKLUSolver(rtol=RTOL, atol=ATOL))
    sim.build()
    solver, built = sim.solver, sim.built_model

    # Values at the start of each interval (the state with the interval's
    # current) and at its end; a row takes the end of the interval it
    # closes, or, the first row and a step's second row, the start of the
    # interval it opens.
    start, end = {}, {}
    sol = None
    for k in range(len(rows) - 1):
        (t_k, i_k), (t_next, i_next) = rows[k], rows[k + 1]
        if t_next == t_k:
            continue
        dt = t_next - t_k
        inputs = {"I_a": -i_k, "slope": -(i_next - i_k) / dt, "t_a": t_k}
        sol = solver.step(sol, built, dt, inputs=inputs, save=False)
        if abs(sol.t[-1] - t_next) > 1e-9 * max(1.0, t_next):
            raise SystemExit(f"PyBaMM stopped at t = {sol.t[-1]} s ({sol.termination}); row {k + 2} is at {t_next} s")
        start[k] = [float(sol[v].entries[0]) for v in OUTPUTS]
        end[k + 1] = [float(sol[v].entries[-1]) for v in OUTPUTS]
    out = []
    for k, (t_k, i_k) in enumerate(rows):
        vals = end.get(k) if k > 0 and rows[k - 1][0] < t_k else start.get(k)
        if vals is None:
            raise SystemExit(f"row {k + 1} (t = {t_k} s): a step at the end of the profile, or three rows at one time")
        out.append((t_k, i_k, *vals))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("profile")
    ap.add_argument("--out", required=True)
    ap.add_argument("--initial-soc", type=float)
    ap.add_argument("--until-s", type=float, help="use only the profile's rows up to this time (a short fixture)")
    args = ap.parse_args()
    soc_comment, rows = read_profile(args.profile)
    if args.until_s is not None:
        rows = [r for r in rows if r[0] <= args.until_s]
        if len(rows) > 1 and rows[-1][0] == rows[-2][0]:
            rows.pop()  # do not end on a step
    soc0 = args.initial_soc if args.initial_soc is not None else soc_comment
    if soc0 is None:
        soc0 = float(pybamm.ParameterValues(PARAMETER_SET)["Initial SoC"])
    t0 = time.time()
    out = run(rows, soc0)
    with open(args.out, "w", encoding="utf-8") as f:
        part = "" if args.until_s is None else f" up to {args.until_s:g} s"
        f.write(f"# pybamm {pybamm.__version__} Thevenin {PARAMETER_SET} (tools/pybamm/run_pybamm.py) on "
                f"{os.path.basename(args.profile)}{part}, initial SOC {soc0}, rtol {RTOL}, atol {ATOL}; + = charge\n")
        f.write("time_s,current_A,voltage_V,soc,temp_C,jig_temp_C\n")
        for r in out:
            f.write(",".join(repr(float(x)) for x in r) + "\n")
    print(f"wrote {args.out}: {len(out)} rows in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
