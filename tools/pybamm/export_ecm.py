#!/usr/bin/env python3
"""Export PyBaMM's `ECM_Example` parameter set as a SmartPro ECM TOML file.

    python export_ecm.py --out ecm_example.toml

Every number is read from `pybamm.ParameterValues("ECM_Example")` at run
time: the tables are the `pybamm.Interpolant`s the parameter functions
return (their breakpoints `x` and values `y`), the scalars are the
parameter values. Nothing is copied by hand.

How each PyBaMM quantity maps onto the format (docs/models.md, "External
equivalent-circuit parameter sets"):

| PyBaMM | ours | conversion |
|---|---|---|
| Cell capacity [A.h] | capacity_ah | as is |
| Open-circuit voltage [V] (SoC) | ocv_v, own SOC axis [axes.ocv_v] | breakpoints cropped to 0..1 (ours clamps SOC to 0..1, so the rest is never read) |
| R0 [Ohm], R1 [Ohm], C1 [F] (T degC, I, SoC) | r0_ohm, r1_ohm, c1_f over temp_c x current_a x soc | current axis negated and reversed (PyBaMM: + = discharge; ours: + = charge) |
| Entropic change [V/K] (OCV, T degC) | entropic_v_per_k over temp_c x soc, own SOC axis | dUdT(OCV(soc), T) evaluated by PyBaMM's own interpolants on the OCV table's SOC breakpoints plus the SOC at which OCV crosses each dUdT breakpoint: the composition of two piecewise-linear functions is then piecewise linear on that axis, so the table is exact |
| Cell thermal mass, Cell-jig heat transfer coefficient, Jig thermal mass, Jig-air heat transfer coefficient | [thermal] | as is |

Not in the file (they are run settings, not cell parameters): Initial SoC,
Initial temperature, Ambient temperature, Element-1 initial overpotential
(must be 0: ours starts relaxed), the voltage cut-offs, "RCR lookup limit
[A]" (ECM_Example defines it; the Thevenin model does not use it).

Numbers are written with 15 significant digits (relative rounding below
5e-15 of each value, far below any effect on the voltage). Breakpoints are
rounded to 12 decimals to remove the float noise of PyBaMM's grids
(0.15000000000000002 -> 0.15).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pybamm

PARAMETER_SET = "ECM_Example"
# Decimals kept on breakpoints (removes 1e-17 float noise of PyBaMM's grids).
AXIS_DECIMALS = 12


def fmt(v: float) -> str:
    """A float as TOML, 15 significant digits."""
    s = f"{float(v):.15g}"
    if s in ("nan", "inf", "-inf"):
        raise ValueError(f"non-finite value {v}")
    if "e" not in s and "." not in s:
        s += ".0"
    return s


def arr(values, indent: str = "") -> str:
    """A (nested) list of floats as a TOML array, one innermost list a line."""
    a = np.asarray(values, dtype=float)
    if a.ndim == 1:
        return "[" + ", ".join(fmt(v) for v in a) + "]"
    inner = ",\n".join(indent + "  " + arr(sub, indent + "  ") for sub in a)
    return "[\n" + inner + ",\n" + indent + "]"


def axis(x) -> np.ndarray:
    """A breakpoint axis with PyBaMM's float noise removed, checked increasing."""
    a = np.round(np.asarray(x, dtype=float), AXIS_DECIMALS) + 0.0  # + 0.0: no -0.0
    if not np.all(np.diff(a) > 0):
        raise ValueError(f"axis not strictly increasing after rounding: {a}")
    return a


def interpolant(values: pybamm.ParameterValues, name: str, n_args: int) -> pybamm.Interpolant:
    """The Interpolant a function parameter builds (its data are x and y)."""
    args = [pybamm.Variable(f"arg{k}") for k in range(n_args)]
    f = values[name](*args)
    if not isinstance(f, pybamm.Interpolant):
        raise TypeError(f"{name!r} is not a table (got {type(f).__name__})")
    if f.interpolator != "linear":
        raise ValueError(f"{name!r} uses {f.interpolator!r} interpolation; the format is piecewise linear")
    return f


def rc_table(values: pybamm.ParameterValues, name: str, temps_c, currents_a_ours, socs) -> np.ndarray:
    """A (T, I, SoC) table on our grid, current in our sign (+ = charge)."""
    f = interpolant(values, name, 3)
    t_ax, i_ax, s_ax = (axis(x) for x in f.x)
    y = np.asarray(f.y, dtype=float).reshape(len(t_ax), len(i_ax), len(s_ax))
    if not (np.array_equal(t_ax, temps_c) and np.array_equal(-i_ax[::-1], currents_a_ours)
            and np.array_equal(s_ax, socs)):
        raise ValueError(f"{name!r} is not on the grid of R0 [Ohm]")
    return y[:, ::-1, :]


def export(values: pybamm.ParameterValues) -> str:
    r0 = interpolant(values, "R0 [Ohm]", 3)
    temps_c, currents_pb, socs = (axis(x) for x in r0.x)
    currents = -currents_pb[::-1] + 0.0  # + 0.0: no -0.0
    tables = {name: rc_table(values, name, temps_c, currents, socs) for name in ("R0 [Ohm]", "R1 [Ohm]", "C1 [F]")}

    ocv = interpolant(values, "Open-circuit voltage [V]", 1)
    ocv_soc_all = axis(ocv.x[0])
    ocv_v_all = np.asarray(ocv.y, dtype=float).ravel()
    keep = (ocv_soc_all >= 0.0) & (ocv_soc_all <= 1.0)
    ocv_soc, ocv_v = ocv_soc_all[keep], ocv_v_all[keep]
    if ocv_soc[0] != 0.0 or ocv_soc[-1] != 1.0:
        # Close the table at 0 and 1 with PyBaMM's own interpolation.
        ends = [s for s in (0.0, 1.0) if s not in ocv_soc]
        ocv_soc = np.concatenate([ocv_soc, ends])
        order = np.argsort(ocv_soc)
        ocv_soc = ocv_soc[order]
        ocv_v = np.concatenate([ocv_v, np.ravel(ocv.function(np.array(ends)))])[order]
    if not np.all(np.diff(ocv_v) > 0):
        raise ValueError("OCV is not increasing in SoC: the entropic table cannot be composed")

    dudt = interpolant(values, "Entropic change [V/K]", 2)
    dudt_ocv = axis(dudt.x[0])
    # SOC where the OCV crosses each dUdT breakpoint (inverse of the increasing OCV table).
    inside = dudt_ocv[(dudt_ocv > ocv_v[0]) & (dudt_ocv < ocv_v[-1])]
    crossings = np.interp(inside, ocv_v, ocv_soc)
    ent_soc = np.unique(np.concatenate([ocv_soc, crossings]))
    ent_soc = ent_soc[np.concatenate([[True], np.diff(ent_soc) > 1e-12])]
    ent_ocv = np.interp(ent_soc, ocv_soc, ocv_v)
    grid = np.array([[(v, t) for v in ent_ocv] for t in temps_c]).reshape(-1, 2)
    entropic = np.asarray(dudt.function(grid), dtype=float).reshape(len(temps_c), len(ent_soc))

    p = values
    cap = float(p["Cell capacity [A.h]"])
    if float(p["Element-1 initial overpotential [V]"]) != 0.0:
        raise ValueError("Element-1 initial overpotential must be 0 (the pack starts relaxed)")
    head = f"""# PyBaMM `{PARAMETER_SET}` (pybamm {pybamm.__version__}) in the SmartPro ECM format
# (docs/models.md, "External equivalent-circuit parameter sets"). Generated by
# tools/pybamm/export_ecm.py from pybamm.ParameterValues("{PARAMETER_SET}") at run
# time; do not edit by hand. Current axis: + = charge (PyBaMM's negated and
# reversed). PyBaMM's run settings, not in this file: Initial SoC
# {fmt(p["Initial SoC"])}, initial and ambient temperature
# {fmt(p["Initial temperature [K]"] - 273.15)} / {fmt(p["Ambient temperature [K]"] - 273.15)} degC,
# voltage cut-offs {fmt(p["Lower voltage cut-off [V]"])}..{fmt(p["Upper voltage cut-off [V]"])} V.
name = "pybamm-{PARAMETER_SET.lower().replace("_", "-")}"
capacity_ah = {fmt(cap)}
cells_in_series = 1
soc = {arr(socs)}
temp_c = {arr(temps_c)}
current_a = {arr(currents)}
ocv_v = {arr(ocv_v)}
r0_ohm = {arr(tables["R0 [Ohm]"])}
r1_ohm = {arr(tables["R1 [Ohm]"])}
c1_f = {arr(tables["C1 [F]"])}
entropic_v_per_k = {arr(entropic)}

[axes.ocv_v]
soc = {arr(ocv_soc)}

[axes.entropic_v_per_k]
soc = {arr(ent_soc)}

[thermal]
cell_heat_capacity_j_per_k = {fmt(p["Cell thermal mass [J/K]"])}
cell_to_jig_w_per_k = {fmt(p["Cell-jig heat transfer coefficient [W/K]"])}
jig_heat_capacity_j_per_k = {fmt(p["Jig thermal mass [J/K]"])}
jig_to_ambient_w_per_k = {fmt(p["Jig-air heat transfer coefficient [W/K]"])}
"""
    return head


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="TOML file to write ('-': stdout)")
    args = ap.parse_args()
    text = export(pybamm.ParameterValues(PARAMETER_SET))
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {args.out} ({len(text)} bytes) from pybamm {pybamm.__version__} {PARAMETER_SET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
