"""The SmartPro FMU under FMPy (run by .ci/fmu.sh; docs/fmu.md).

usage: python3 fmpy_check.py FMU TRACE_CSV

Checks, each printed with its figures; exits 1 on the first failure:
  1. fmpy.validation.validate_fmu finds no problem;
  2. fmpy.simulate_fmu with the input table of fmu/tests/data/compare.toml
     gives, at every trace row, exactly the values `smartpro-sim run` wrote
     (trace.csv's columns formatted as the runner formats them);
  3. the same with a communication step of 7.5 ms (not a multiple of the 1 ms
     ADC period) at the rows where a communication point falls on a whole ms;
  4. three instances in one process, stepped in turn, the first and third with
     the same parameters: those two equal bit for bit, the second differs;
  5. fmi3Reset, then initialise and run again: the same values bit for bit;
  6. bad parameters (variant 13, a missing config_file) and a parameter set
     after initialisation: fmi3Error with the cause in the log, no crash;
  7. 1,000 instantiate/initialise/step/free cycles: the resident set grows by
     less than LEAK_LIMIT_KB.
"""

import ctypes
import sys
import time

import numpy as np
import fmpy
from fmpy import fmi3
from fmpy.fmi1 import FMICallException
from fmpy.validation import validate_fmu

FMU, TRACE = sys.argv[1], sys.argv[2]
STOP_S = 180.0
LEAK_LIMIT_KB = 4096

# trace.csv's columns: the FMU output and the runner's format (runner.rs write_row).
COLUMNS = [
    ("true_current_a", "pack_current_a", "{:.4f}"),
    ("true_voltage_v", "terminal_voltage_v", "{:.4f}"),
    ("true_soc_pct", "true_soc_pct", "{:.3f}"),
    ("true_temp_c", "true_temp_c", "{:.2f}"),
    ("meas_current_a", "meas_current_a", "{:.3f}"),
    ("meas_voltage_v", "meas_voltage_v", "{:.3f}"),
    ("meas_temp_c", "meas_temp_c", "{:.1f}"),
    ("board_soc_pct", "board_soc_pct", "{:.2f}"),
    ("switch_on", "switch_on", "bool"),
    ("lvp_output", "lvp_output", "bool"),
    ("ovp_output", "ovp_output", "bool"),
    ("faults", "faults", "{:d}"),
]
OUTPUTS = sorted({c[1] for c in COLUMNS} | {"aux_on"})


def fail(message):
    print(f"fmpy_check: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def fmt(spec, value):
    if spec == "bool":
        return "1" if value else "0"
    if spec == "{:d}":
        return str(int(value))
    return spec.format(float(value))


def input_table():
    """compare.toml's segments and events as FMPy input rows (a repeated time is a step)."""
    rows = [
        (0.0, -60.0, True, False),
        (60.0, -60.0, True, False), (60.0, 0.0, True, False),
        (90.0, 0.0, True, False), (90.0, 40.0, True, False),
        (120.0, 40.0, True, False), (120.0, 40.0, False, False),
        (130.0, 40.0, False, False), (130.0, 40.0, True, False),
        (150.0, 40.0, True, False), (150.0, -20.0, True, False),
        (165.0, -20.0, True, False), (165.0, -20.0, True, True),
        (STOP_S, -20.0, True, True),
    ]
    dtype = [("time", np.float64), ("current_demand_a", np.float64), ("ovp_input", np.bool_), ("short_circuit", np.bool_),
             ("ambient_c", np.float64), ("lvp_input", np.bool_)]
    return np.array([r + (25.0, True) for r in rows], dtype=dtype)


def read_trace():
    with open(TRACE) as f:
        header = f.readline().strip().split(",")
        return header, [line.strip().split(",") for line in f if line.strip()]


def compare(result, every_s, label):
    """Rows of trace.csv at multiples of every_s against the FMU's results at those times."""
    header, rows = read_trace()
    by_time = {round(float(t) * 1000): i for i, t in enumerate(result["time"])}
    compared = values = 0
    for row in rows:
        t_ms = round(float(row[0]) * 1000)
        if t_ms % round(every_s * 1000):
            continue
        if t_ms not in by_time:
            fail(f"{label}: no FMU result at t = {row[0]} s")
        i = by_time[t_ms]
        for column, output, spec in COLUMNS:
            expected = row[header.index(column)]
            got = fmt(spec, result[output][i])
            if got != expected:
                fail(f"{label}: t = {row[0]} s, {column}: run wrote {expected}, the FMU gives {got} ({result[output][i]!r})")
            values += 1
        compared += 1
    if compared < 10:
        fail(f"{label}: only {compared} rows compared")
    print(f"fmpy_check: {label}: {compared} trace rows × {len(COLUMNS)} columns ({values} values) identical to run")


def check_validation():
    problems = validate_fmu(FMU)
    if problems:
        fail("validate_fmu: " + "; ".join(problems))
    md = fmpy.read_model_description(FMU)
    print(f"fmpy_check: validate_fmu: no problems (FMI {md.fmiVersion}, {len(md.modelVariables)} variables)")


def check_simulation():
    start = time.monotonic()
    result = fmpy.simulate_fmu(FMU, stop_time=STOP_S, output_interval=0.1, input=input_table(), output=OUTPUTS)
    print(f"fmpy_check: simulate_fmu, h = 0.1 s: {len(result)} rows in {time.monotonic() - start:.2f} s")
    compare(result, 1.0, "h = 0.1 s")
    if not (result["faults"][-1] and not result["switch_on"][-1]):
        fail("the short circuit at 165 s did not latch the switch open")
    start = time.monotonic()
    result = fmpy.simulate_fmu(FMU, stop_time=STOP_S, output_interval=0.0075, input=input_table(), output=OUTPUTS)
    print(f"fmpy_check: simulate_fmu, h = 7.5 ms: {len(result)} rows in {time.monotonic() - start:.2f} s")
    # The communication points 0.0075·n fall on whole seconds every 3 s; FMPy adds the input events' times.
    compare(result, 3.0, "h = 7.5 ms (whole ADC periods, remainder carried)")


class Instance:
    """One FMI 3.0 co-simulation instance on a shared library load."""

    def __init__(self, md, unzipped, name, logged):
        self.md = md
        self.vr = {v.name: v.valueReference for v in md.modelVariables}
        self.fmu = fmi3.FMU3Slave(guid=md.guid, unzipDirectory=unzipped, modelIdentifier=md.coSimulation.modelIdentifier, instanceName=name)
        self.logged = logged

    def log(self, env, status, category, message):
        self.logged.append((status, message.decode(errors="replace")))

    def start(self, variant=12, seed=1, config_file=""):
        self.fmu.instantiate(loggingOn=True, logMessage=self.log)
        self.init(variant, seed, config_file)

    def init(self, variant, seed, config_file):
        f = self.fmu
        self.t = 0.0
        f.setInt32([self.vr["variant"]], [variant])
        f.setUInt32([self.vr["seed"]], [seed])
        f.setString([self.vr["config_file"]], [config_file])
        f.enterInitializationMode(startTime=0.0)
        f.exitInitializationMode()

    def step(self, h, current_a):
        self.fmu.setFloat64([self.vr["current_demand_a"]], [current_a])
        self.fmu.doStep(currentCommunicationPoint=self.t, communicationStepSize=h)
        self.t += h

    def outputs(self):
        floats = [n for n in OUTPUTS if n not in ("switch_on", "lvp_output", "ovp_output", "aux_on", "faults")]
        return tuple(self.fmu.getFloat64([self.vr[n] for n in floats])) + tuple(
            self.fmu.getBoolean([self.vr[n] for n in ("switch_on", "lvp_output", "ovp_output", "aux_on")])
        ) + tuple(self.fmu.getUInt16([self.vr["faults"]]))


def run_trajectory(inst, steps=300):
    out = []
    for k in range(steps):
        inst.step(0.01, -80.0 if k < 150 else 30.0)
        out.append(inst.outputs())
    return out


def check_instances_and_reset(md, unzipped):
    logs = []
    a, b, c = (Instance(md, unzipped, n, logs) for n in ("a", "b", "c"))
    a.start(seed=1)
    b.start(seed=2)
    c.start(seed=1)
    ta, tb, tc = [], [], []
    for k in range(300):
        for inst, trace in ((a, ta), (b, tb), (c, tc)):
            inst.step(0.01, -80.0 if k < 150 else 30.0)
            trace.append(inst.outputs())
    if ta != tc:
        fail("instances a and c (same parameters, stepped in turn with b) differ")
    if ta == tb:
        fail("instances a and b (seeds 1 and 2) give the same values")
    print(f"fmpy_check: 3 instances in one process, 300 steps each: a == c bit for bit, b (another seed) differs")
    a.fmu.reset()
    a.init(12, 1, "")
    again = run_trajectory(a)
    if again != ta:
        fail("after fmi3Reset the same inputs give other values")
    print("fmpy_check: fmi3Reset, initialise again: 300 steps identical bit for bit")
    for inst in (a, b, c):
        inst.fmu.terminate()
        inst.fmu.freeInstance()


def expect_error(label, logs, needle, call):
    logs.clear()
    try:
        call()
    except FMICallException as e:
        if "error" not in str(e):
            fail(f"{label}: {e}, expected fmi3Error")
        messages = [m for s, m in logs if s == 3]
        if not any(needle in m for m in messages):
            fail(f"{label}: no error logged naming {needle!r}: {logs}")
        print(f"fmpy_check: {label}: {e} — logged: {messages[-1]}")
        return
    fail(f"{label}: accepted")


def check_bad_parameters(md, unzipped):
    logs = []
    inst = Instance(md, unzipped, "bad", logs)
    inst.fmu.instantiate(loggingOn=True, logMessage=inst.log)
    expect_error("variant = 13", logs, "variant", lambda: inst.init(13, 1, ""))
    expect_error("doStep after refused parameters", logs, "plant", lambda: inst.step(0.01, 0.0))
    inst.fmu.reset()
    expect_error("config_file missing", logs, "/nonexistent.toml", lambda: inst.init(12, 1, "/nonexistent.toml"))
    inst.fmu.reset()
    inst.init(12, 1, "")
    inst.step(0.01, -10.0)
    inst.fmu.setInt32([inst.vr["variant"]], [24])
    expect_error("variant set after initialisation", logs, "parameter changed", lambda: inst.step(0.01, -10.0))
    inst.fmu.reset()
    inst.init(12, 1, "")
    expect_error("current demand NaN", logs, "not a finite number", lambda: inst.step(0.01, float("nan")))
    inst.fmu.freeInstance()


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    fail("no VmRSS in /proc/self/status")


def check_leaks(md, unzipped):
    logs = []
    inst = Instance(md, unzipped, "leak", logs)
    free = inst.fmu.fmi3FreeInstance

    def cycle():
        inst.start()
        for _ in range(10):
            inst.step(0.01, -50.0)
        inst.fmu.terminate()
        free(inst.fmu.component)  # the instance only: the library stays loaded

    start = time.monotonic()
    for _ in range(100):
        cycle()
    base = rss_kb()
    for _ in range(900):
        cycle()
    grown = rss_kb() - base
    inst.fmu.freeLibrary()
    print(f"fmpy_check: 1000 instantiate/initialise/10 steps/free cycles in {time.monotonic() - start:.1f} s: "
          f"RSS {base} kB after 100, +{grown} kB after 900 more (limit {LEAK_LIMIT_KB} kB)")
    if grown > LEAK_LIMIT_KB:
        fail(f"RSS grew by {grown} kB over 900 instantiate/free cycles")


def main():
    print(f"fmpy_check: FMPy {fmpy.__version__}, {FMU}")
    check_validation()
    check_simulation()
    md = fmpy.read_model_description(FMU)
    unzipped = fmpy.extract(FMU)
    check_instances_and_reset(md, unzipped)
    check_bad_parameters(md, unzipped)
    check_leaks(md, unzipped)
    print("fmpy_check: 7 passed, 0 failed")


if __name__ == "__main__":
    main()
