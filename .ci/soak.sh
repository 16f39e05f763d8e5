#!/usr/bin/env bash
# Soak: `smartpro-sim serve` under a mix of real clients for a long time
# (docs/reliability.md, "Soak").
#
#   .ci/soak.sh DURATION     24h, 90m, 2m, 45s (a bare number is hours)
#
# Serves 4 units (12 V, a scenario that cycles the pack: 40 A discharge,
# rest, 40 A charge, rest, over and over at --speed 20) on one pty (RTU) and on
# Modbus TCP, with seeded bus faults on units 3 and 4 (drops, bad CRCs, wrong
# unit ids, busy exceptions, garbled bytes, delays) and none on units 1 and 2.
# Clients, all at once: pymodbus over TCP (reads all four units, writes and
# reads back a setting), and on the pty, one master at a time as on a real
# RS-485 bus, in turns: pymodbus RTU, mbpoll, `hil-rig poll`, `hil-rig
# record`; mbpoll over TCP as well.
#
# Every 10 minutes (every 30 s in runs under 30 minutes) and at the end it
# prints transactions, missed replies (those of the fault-free units 1 and 2,
# and, apart, those of the faulted units: injected), wrong replies (a value
# that is not what the register map and the last write say, from any unit),
# p50/p99 latency of the pymodbus transactions, and serve's RSS.
# Exit 1 if any reply was wrong, a fault-free unit missed a reply, or serve
# died; RSS is reported, not judged (judge it over hours: docs/reliability.md).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'soak: %s\n' "$*"; }
fail() { printf 'soak: FAILED: %s\n' "$*" >&2; exit 1; }

[ $# -eq 1 ] || { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
case "$1" in
  *h) SECS=$(( ${1%h} * 3600 )) ;;
  *m) SECS=$(( ${1%m} * 60 )) ;;
  *s) SECS=${1%s} ;;
  *) SECS=$(( $1 * 3600 )) ;;
esac
[ "$SECS" -ge 10 ] || fail "at least 10 s"
if [ "$SECS" -ge 1800 ]; then INTERVAL=600; else INTERVAL=30; fi

if ! command -v mbpoll >/dev/null; then
  say "installing mbpoll (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mbpoll >/dev/null
fi
if ! python3 -c 'import pymodbus, serial' 2>/dev/null; then
  say "installing pymodbus[serial] (PyPI)"
  python3 -m pip install --quiet --root-user-action=ignore 'pymodbus[serial]'
fi

cargo build --release --quiet --bin smartpro-sim --bin hil-rig
SIM=target/release/smartpro-sim
RIG=target/release/hil-rig
WORK=$(mktemp -d)
LINK="$WORK/twin"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SERVER=""
cleanup() {
  if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then kill "$SERVER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# The pack cycles: 100 Ah at 40 A, 1.5 h each way with rests; 4200 simulated s
# a cycle, 210 s of wall time at --speed 20; enough cycles for 30 h.
{
  cat <<'TOML'
name = "soak-cycles"
description = "12 V pack cycled: 40 A discharge 1.5 h, rest 10 min, 40 A charge 1.5 h, rest 10 min, repeated"
variant = 12
seed = 20
initial_soc = 0.9
[firmware]
initial_soc_pct = 90.0
TOML
  for _ in $(seq 1 520); do
    printf '[[segment]]\nkind = "discharge"\ncurrent_a = 40.0\nduration_s = 5400\n'
    printf '[[segment]]\nkind = "rest"\nduration_s = 600\n'
    printf '[[segment]]\nkind = "charge"\ncurrent_a = 40.0\nduration_s = 5400\n'
    printf '[[segment]]\nkind = "rest"\nduration_s = 600\n'
  done
} >"$WORK/cycles.toml"
cat >"$WORK/faults.toml" <<'TOML'
[faults]
seed = 20

[[faults.unit]]
id = 3
delay_ms = 2.0
delay_jitter_ms = 2.0
drop_probability = 0.02
crc_error_probability = 0.02
wrong_unit_id = 9
wrong_unit_probability = 0.01
exception_probability = 0.02
garble_byte_rate = 0.0005

[[faults.unit]]
id = 4
drop_probability = 0.03
crc_error_probability = 0.01
exception_probability = 0.01
exception_code = 6
TOML

"$SIM" serve --pty --link "$LINK" --units 1,2,3,4 --tcp "127.0.0.1:$PORT" --scenario "$WORK/cycles.toml" \
  --speed 20 --faults "$WORK/faults.toml" --duration $(( SECS + 60 )) >"$WORK/serve.out" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do
  [ -e "$LINK" ] && grep -q "Modbus TCP on" "$WORK/serve.out" && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/serve.out"; fail "serve exited early"; }
  sleep 0.1
done
[ -e "$LINK" ] || fail "no pty link after 10 s"
say "$(head -1 "$WORK/serve.out")"
say "$SECS s, a report every $INTERVAL s; mbpoll $(mbpoll -V 2>&1 | head -1), pymodbus $(python3 -c 'import pymodbus; print(pymodbus.__version__)')"

status=0
python3 - "$LINK" "$PORT" "$SECS" "$INTERVAL" "$SERVER" "$RIG" "$WORK" <<'PY' || status=$?
import array, inspect, logging, os, re, subprocess, sys, threading, time
from pymodbus.client import ModbusSerialClient, ModbusTcpClient

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # each injected fault is counted here instead
import faulthandler, signal
faulthandler.register(signal.SIGUSR1)  # kill -USR1 PID: where every client thread is

link, port, secs, interval, server, rig, work = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
CLEAN, FAULTED = (1, 2), (3, 4)
DEVICE_TYPE, VARIANT_V = 209, 12
AUX_SOC = 0x0233  # aux_soc_centipct: a setting only the TCP client writes
t_end = time.monotonic() + secs
lock = threading.Lock()

class Stats:
    def __init__(self):
        self.tx = 0; self.ok = 0; self.missed = 0; self.late = 0; self.injected = 0; self.wrong = 0
        self.lat = array.array("d")
        self.wrong_examples = []
    def add(self, other):
        self.tx += other.tx; self.ok += other.ok; self.missed += other.missed; self.late += other.late
        self.injected += other.injected; self.wrong += other.wrong; self.lat.extend(other.lat)
        self.wrong_examples += other.wrong_examples[:5]

interval_stats, total, by_client = {}, Stats(), {}

# On the shared RTU bus a reply lost to an injected fault can take the master's next
# transaction with it (garbage left in its buffer, a late frame): a fault-free unit's
# miss right after a faulted unit's failure, on the same RTU client, counts as injected.
after_fault = {}
failed_last = {}

def record(client, unit, outcome, latency=None, why=None):
    """outcome: ok | miss | late | wrong"""
    if client.endswith("-rtu"):
        collateral = outcome == "miss" and unit in CLEAN and after_fault.get(client, False)
        after_fault[client] = outcome == "miss" and unit in FAULTED
        failed_last[client] = outcome in ("miss", "late")
        if collateral:
            unit, why = FAULTED[0], f"unit {unit} right after a fault on the bus: {why}"
    with lock:
        s = interval_stats.setdefault(client, Stats())
        s.tx += 1
        if outcome == "ok":
            s.ok += 1
        elif outcome == "wrong":
            s.wrong += 1
            s.wrong_examples.append(f"{client} unit {unit}: {why}")
        elif outcome == "late":
            # A reply after the client's timeout, taken by it for the next request's: the
            # reply is right for the request it answers (checked), only too late.
            s.late += 1
            if len(s.wrong_examples) < 5:
                s.wrong_examples.append(f"LATE {client} unit {unit}: {why}")
        elif unit in FAULTED:
            s.injected += 1
        else:
            s.missed += 1
            if len(s.wrong_examples) < 5:
                s.wrong_examples.append(f"MISSED {client} unit {unit}: {why}")
        if latency is not None and outcome == "ok":
            s.lat.append(latency)

def unit_kw(method):
    # pymodbus 3.10 renamed slave= to device_id=.
    return "device_id" if "device_id" in inspect.signature(method).parameters else "slave"

def check_block(regs):
    """Registers 0x0100..0x0106: voltage, current (2), soc, temperature, status, faults."""
    if len(regs) != 7:
        return f"{len(regs)} registers in the reply to a read of 7: {list(regs)}"
    v_mv, soc = regs[0], regs[3]
    if not 8000 <= v_mv <= 16000:
        return f"battery_voltage_mv {v_mv}"
    if soc > 10000:
        return f"soc_centipct {soc}"
    return None

def transact(client, name, unit, fn):
    t0 = time.perf_counter()
    try:
        r = fn()
    except Exception as e:  # a timeout or a broken frame: no usable reply
        record(name, unit, "miss", why=repr(e)[:120]); return None
    dt = time.perf_counter() - t0
    if r.isError():
        code = getattr(r, "exception_code", None)
        if code == 6 and unit in FAULTED:
            record(name, unit, "miss", why="exception 06 (injected)")
        elif code is None:
            record(name, unit, "miss", why=str(r)[:120])
        else:
            record(name, unit, "wrong", why=f"exception {code}")
        return None
    return r, dt

aux_written = {}

def settle(client, name):
    """After a failed transaction with a faulted unit on the bus: let the line go quiet and
    drop what is left in the input buffer, as a master does before its next request."""
    if name.endswith("-rtu") and failed_last.get(name):
        time.sleep(0.02)
        try:
            client.socket.reset_input_buffer()
        except Exception:
            pass

def poll_unit(client, name, unit, write):
    settle(client, name)
    kw = {unit_kw(client.read_holding_registers): unit}
    got = transact(client, name, unit, lambda: client.read_holding_registers(0, count=3, **kw))
    if got:
        r, dt = got
        ok = list(r.registers) == [DEVICE_TYPE, VARIANT_V, r.registers[2]] if len(r.registers) == 3 else False
        record(name, unit, "ok" if ok else "wrong", dt, None if ok else f"identity {list(r.registers)}")
    got = transact(client, name, unit, lambda: client.read_holding_registers(0x0100, count=7, **kw))
    if got:
        r, dt = got
        why = check_block(r.registers)
        # The identity read's own reply, come after its timeout: late, and right for that request.
        stale = len(r.registers) == 3 and list(r.registers[:2]) == [DEVICE_TYPE, VARIANT_V]
        record(name, unit, "late" if stale else "wrong" if why else "ok", dt, why)
    if write:
        value = int(time.monotonic() * 10) % 10000
        wkw = {unit_kw(client.write_register): unit}
        got = transact(client, name, unit, lambda: client.write_register(AUX_SOC, value, **wkw))
        if got:
            record(name, unit, "ok", got[1])
            aux_written[unit] = value
        elif unit in FAULTED:
            aux_written.pop(unit, None)  # a dropped reply: executed or not, unknown
        if unit in aux_written:
            got = transact(client, name, unit, lambda: client.read_holding_registers(AUX_SOC, count=1, **kw))
            if got:
                r, dt = got
                ok = list(r.registers) == [aux_written[unit]]
                record(name, unit, "ok" if ok else "wrong", dt, None if ok else f"aux_soc {list(r.registers)} after writing {aux_written[unit]}")

def tcp_loop():
    c = ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    c.connect()
    while time.monotonic() < t_end:
        for unit in CLEAN + FAULTED:
            if not c.connected:
                c.connect()
            poll_unit(c, "pymodbus-tcp", unit, write=True)
    c.close()

def mbpoll(name, args, unit):
    t0 = time.perf_counter()
    p = subprocess.run(["mbpoll", *args], capture_output=True, text=True, timeout=30)
    vals = re.findall(r"^\[(\d+)\]:\s+(-?\d+)", p.stdout, re.M)
    if p.returncode != 0 or not vals:
        record(name, unit, "miss", why=(p.stdout + p.stderr).strip()[-120:]); return
    got = [int(v) for _, v in vals[:2]]
    record(name, unit, "ok" if got == [DEVICE_TYPE, VARIANT_V] else "wrong", None, f"identity {got}")

def mbpoll_tcp_loop():
    while time.monotonic() < t_end:
        for unit in CLEAN + FAULTED:
            mbpoll("mbpoll-tcp", ["-m", "tcp", "-p", str(port), "-a", str(unit), "-r", "0", "-c", "2", "-0", "-1", "-q", "-o", "1", "127.0.0.1"], unit)
        time.sleep(1)

RIG_SUMMARY = re.compile(r"requests (\d+)\s+replies (\d+)\s+timeouts (\d+)\s+bad crc (\d+)\s+wrong unit (\d+)\s+wrong function (\d+)\s+short frames (\d+)\s+bad replies (\d+)\s+busy (\d+)\s+exceptions (\d+)\s+io errors (\d+)")

def hil_rig(name, args, unit):
    p = subprocess.run([rig, *args, "--port", link, "--unit", str(unit), "--timeout-ms", "1000", "--retries", "0"], capture_output=True, text=True, timeout=120)
    m = RIG_SUMMARY.search(p.stdout + p.stderr)
    if not m:
        record(name, unit, "miss", why=f"exit {p.returncode}: " + (p.stdout + p.stderr).strip()[-160:]); return
    req, rep, timeouts, crc, wrong_unit, wrong_fc, short, bad, busy, exc, io = map(int, m.groups())
    for _ in range(rep):
        record(name, unit, "ok")
    for _ in range(exc):  # 06 injected on units 3 and 4; none is due from units 1 and 2
        record(name, unit, "wrong" if unit in CLEAN else "miss", why=m.group(0))
    for _ in range(timeouts + crc + wrong_unit + short + busy + io):
        record(name, unit, "miss", why=m.group(0))
    # A frame with good framing but not the answer to the request (a reply that came after its
    # timeout, to the one before): hil-rig refuses it and tries again (late, never taken).
    for _ in range(bad + wrong_fc):
        record(name, unit, "late", why=m.group(0))

def rtu_loop():
    """One master at a time on the bus, in turns."""
    # Parity N: a Linux pty carries no parity bit, and pymodbus's second tcsetattr fails with it (docs/serve.md).
    turn = 0
    while time.monotonic() < t_end:
        c = ModbusSerialClient(link, baudrate=19200, parity="N", stopbits=1, bytesize=8, timeout=1, retries=0)
        c.connect()
        t_turn = time.monotonic() + 20
        while time.monotonic() < min(t_turn, t_end):
            for unit in CLEAN + FAULTED:
                poll_unit(c, "pymodbus-rtu", unit, write=False)
        c.close()
        after_fault.pop("pymodbus-rtu", None)
        if time.monotonic() >= t_end:
            break
        for unit in CLEAN + FAULTED:
            mbpoll("mbpoll-rtu", ["-m", "rtu", "-b", "19200", "-P", "even", "-d", "8", "-s", "1", "-a", str(unit), "-r", "0", "-c", "2", "-0", "-1", "-q", "-o", "1", link], unit)
        unit = (CLEAN + FAULTED)[turn % 4]
        if turn % 2 == 0:
            hil_rig("hil-rig-poll", ["poll", "--count", "30", "--interval-ms", "100"], unit)
        else:
            hil_rig("hil-rig-record", ["record", "--out", os.path.join(work, "rec.csv"), "--duration", "3", "--interval-ms", "100"], unit)
        turn += 1

def rss_kb():
    try:
        with open(f"/proc/{server}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None

def pct(a, q):
    if not a:
        return float("nan")
    s = sorted(a)
    return s[min(len(s) - 1, int(q * len(s)))] * 1e3

def line(label, s, rss):
    top = max(s.lat) * 1e3 if s.lat else float("nan")
    return (f"soak: {label:>9}  transactions {s.tx:8d}  missed {s.missed:4d}  late {s.late:3d}  injected {s.injected:6d}  "
            f"wrong {s.wrong:3d}  p50 {pct(s.lat, 0.5):6.2f} ms  p99 {pct(s.lat, 0.99):6.2f} ms  max {top:7.1f} ms  "
            f"rss {rss if rss is not None else '?'} kB")

def guarded(loop):
    def run():
        while time.monotonic() < t_end:
            try:
                loop()
            except Exception as e:  # a client's own failure: counted, reported, and the client goes on
                record(loop.__name__, 0, "wrong", why=f"client failure: {e!r}"[:200])
                time.sleep(1)
    return run

threads = [threading.Thread(target=guarded(f), daemon=True) for f in (tcp_loop, rtu_loop, mbpoll_tcp_loop)]
t0 = time.monotonic()
for t in threads:
    t.start()
rss_first, rss_max, rss_last = None, 0, None
next_report = t0 + interval
examples = []
while True:
    now = time.monotonic()
    time.sleep(max(0.0, min(next_report, t_end + 5) - now))
    done = time.monotonic() >= t_end
    if done:
        for t in threads:
            t.join(timeout=60)
    with lock:
        snap = dict(interval_stats); interval_stats.clear()
    s = Stats()
    for k, v in snap.items():
        s.add(v)
        by_client.setdefault(k, Stats()).add(v)
    total.add(s)
    examples += s.wrong_examples
    rss = rss_kb()
    if rss is not None:
        rss_first = rss_first or rss; rss_max = max(rss_max, rss); rss_last = rss
    print(line(f"{time.monotonic() - t0:7.0f} s", s, rss), flush=True)
    for e in s.wrong_examples[:5]:
        print("soak:   " + e, flush=True)
    if rss is None and not done:
        print("soak: FAILED: serve is gone", file=sys.stderr); sys.exit(1)
    if done:
        break
    next_report += interval

print("soak: summary by client:")
for k in sorted(by_client):
    c = by_client[k]
    print(f"soak:   {k:<15} transactions {c.tx:8d}  missed {c.missed:4d}  late {c.late:3d}  injected {c.injected:6d}  wrong {c.wrong:3d}")
print(line("total", total, rss_last))
print(f"soak: rss first {rss_first} kB, max {rss_max} kB, last {rss_last} kB")
if total.wrong or total.missed:
    print(f"soak: FAILED: {total.wrong} wrong replies, {total.missed} missed replies of fault-free units", file=sys.stderr)
    sys.exit(1)
PY

kill "$SERVER" 2>/dev/null || true
wait "$SERVER" || true
SERVER=""
sed 's/^/soak: serve: /' "$WORK/serve.out" | tail -15
[ "$status" -eq 0 ] || fail "see above"
say "passed"
