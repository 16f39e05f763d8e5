#!/usr/bin/env bash
# Interop: third-party Modbus masters (Debian's mbpoll, PyPI's pymodbus) read
# and write `smartpro-sim serve` over a pty (RTU) and over Modbus TCP.
# Installs the tools if missing. Fails loudly on any mismatch. Under a minute.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'interop: %s\n' "$*"; }
fail() { printf 'interop: FAILED: %s\n' "$*" >&2; exit 1; }

if ! command -v mbpoll >/dev/null; then
  say "installing mbpoll (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mbpoll >/dev/null
fi
if ! python3 -c 'import pymodbus, serial' 2>/dev/null; then
  say "installing pymodbus[serial] (PyPI)"
  python3 -m pip install --quiet --root-user-action=ignore 'pymodbus[serial]'
fi
say "mbpoll: $(mbpoll -V 2>&1 | head -1); pymodbus $(python3 -c 'import pymodbus; print(pymodbus.__version__)')"

cargo build --release --quiet --bin smartpro-sim
SIM=target/release/smartpro-sim
WORK=$(mktemp -d)
LINK="$WORK/twin"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SERVER=""
cleanup() {
  if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then kill "$SERVER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Units 1 and 2 on one pty bus and on Modbus TCP; stops by itself after 50 s at the latest.
"$SIM" serve --pty --link "$LINK" --units 1,2 --tcp "127.0.0.1:$PORT" --duration 50 \
  --log-frames "$WORK/frames.log" >"$WORK/serve.out" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do
  [ -e "$LINK" ] && grep -q "Modbus TCP on" "$WORK/serve.out" && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/serve.out"; fail "serve exited early"; }
  sleep 0.1
done
[ -e "$LINK" ] || fail "no pty link after 10 s"
say "$(head -1 "$WORK/serve.out")"

# mbpoll prints "[addr]: <tab>value"; return the value of register $1.
reg() { awk -v r="[$1]:" '$1 == r { print $2; exit }'; }
expect() { # what expected actual
  [ "$2" = "$3" ] || { sed -n '1,200p' "$WORK/frames.log" >&2; fail "$1: expected $2, got '$3'"; }
  say "ok  $1 = $3"
}
RTU=(-m rtu -b 19200 -P even -d 8 -s 1 -o 1 -0 -1 -q)
TCP=(-m tcp -p "$PORT" -o 1 -0 -1 -q)

# --- mbpoll over the pty (RTU) ---
out=$(mbpoll "${RTU[@]}" -a 1 -r 0 -c 3 "$LINK")
expect "mbpoll rtu unit 1 device_type" 209 "$(reg 0 <<<"$out")"
expect "mbpoll rtu unit 1 variant_v" 12 "$(reg 1 <<<"$out")"
mbpoll "${RTU[@]}" -a 2 -r 512 "$LINK" 2000 >/dev/null
out=$(mbpoll "${RTU[@]}" -a 2 -r 512 -c 1 "$LINK")
expect "mbpoll rtu unit 2 capacity after write" 2000 "$(reg 512 <<<"$out")"
out=$(mbpoll "${RTU[@]}" -a 1 -r 512 -c 1 "$LINK")
expect "mbpoll rtu unit 1 capacity untouched" 1000 "$(reg 512 <<<"$out")"

# --- mbpoll over Modbus TCP ---
out=$(mbpoll "${TCP[@]}" -a 2 -r 512 -c 1 127.0.0.1)
expect "mbpoll tcp unit 2 capacity (written over RTU)" 2000 "$(reg 512 <<<"$out")"
mbpoll "${TCP[@]}" -a 1 -r 512 127.0.0.1 1500 >/dev/null
out=$(mbpoll "${TCP[@]}" -a 1 -r 512 -c 1 127.0.0.1)
expect "mbpoll tcp unit 1 capacity after write" 1500 "$(reg 512 <<<"$out")"

# --- pymodbus over the pty and over TCP ---
python3 - "$LINK" "$PORT" <<'PY' || fail "pymodbus"
import inspect, sys
from pymodbus.client import ModbusSerialClient, ModbusTcpClient

link, port = sys.argv[1], int(sys.argv[2])

def unit_kw(method):
    # pymodbus 3.10 renamed slave= to device_id=.
    return "device_id" if "device_id" in inspect.signature(method).parameters else "slave"

def check(what, want, got):
    if want != got:
        print(f"interop: FAILED: pymodbus {what}: expected {want}, got {got}", file=sys.stderr)
        sys.exit(1)
    print(f"interop: ok  pymodbus {what} = {got}")

def regs(client, unit, addr, count):
    kw = {unit_kw(client.read_holding_registers): unit}
    r = client.read_holding_registers(addr, count=count, **kw)
    if r.isError():
        print(f"interop: FAILED: pymodbus read unit {unit} @{addr}: {r}", file=sys.stderr)
        sys.exit(1)
    return list(r.registers)

def write(client, unit, addr, value):
    kw = {unit_kw(client.write_register): unit}
    r = client.write_register(addr, value, **kw)
    if r.isError():
        print(f"interop: FAILED: pymodbus write unit {unit} @{addr}: {r}", file=sys.stderr)
        sys.exit(1)

# Parity "N": a Linux pty drops PARENB, and tcsetattr fails (EINVAL) when parity is asked
# with no other change but VMIN/VTIME. pymodbus configures the port twice in connect() (open,
# then inter_byte_timeout: VMIN only), and the second time fails. A pty carries no parity bit
# anyway. mbpoll (libmodbus) is accepted with even parity. (docs/serve.md, facts.)
rtu = ModbusSerialClient(link, baudrate=19200, parity="N", stopbits=1, bytesize=8, timeout=1)
tcp = ModbusTcpClient("127.0.0.1", port=port, timeout=1)
if not rtu.connect() or not tcp.connect():
    print("interop: FAILED: pymodbus cannot connect", file=sys.stderr)
    sys.exit(1)
check("rtu unit 1 device_type, variant_v", [209, 12], regs(rtu, 1, 0, 2))
check("rtu unit 1 capacity (written by mbpoll over TCP)", [1500], regs(rtu, 1, 512, 1))
write(rtu, 2, 512, 2500)
check("tcp unit 2 capacity (written over RTU)", [2500], regs(tcp, 2, 512, 1))
write(tcp, 1, 512, 1200)
check("rtu unit 1 capacity (written over TCP)", [1200], regs(rtu, 1, 512, 1))
bad = tcp.read_holding_registers(0x0050, count=1, **{unit_kw(tcp.read_holding_registers): 1})
check("tcp exception for an unmapped address", 2, getattr(bad, "exception_code", None))
# Close and reopen the pty at once: served again.
rtu.close()
if not rtu.connect():
    print("interop: FAILED: pymodbus cannot reopen the pty", file=sys.stderr)
    sys.exit(1)
check("rtu unit 2 capacity after a reopen", [2500], regs(rtu, 2, 512, 1))
rtu.close()
tcp.close()
PY

kill "$SERVER"
status=0
wait "$SERVER" || status=$?
SERVER=""
[ "$status" -eq 0 ] || { cat "$WORK/serve.out"; fail "serve exited with $status after SIGTERM"; }
grep -q "unit 2:" "$WORK/serve.out" || fail "no exit report"
say "serve stopped cleanly; $(grep -c '' "$WORK/frames.log") frame-log lines"
say "passed"
