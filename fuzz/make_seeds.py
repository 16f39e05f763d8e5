#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz/corpus/TARGET/ (docs/reliability.md).

The seeds are readable: each file's name says what it is. Inputs the fuzzer
found and that were worth keeping sit beside them under their SHA-1 names.
Run from the repository root: python3 fuzz/make_seeds.py
"""
import glob
import os
import struct


def crc16(b):
    c = 0xFFFF
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
    return c


def adu(unit, pdu):
    b = bytes([unit]) + pdu
    return b + struct.pack("<H", crc16(b))


def mbap(tid, unit, pdu):
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def put(target, name, data):
    os.makedirs(f"fuzz/corpus/{target}", exist_ok=True)
    with open(f"fuzz/corpus/{target}/{name}", "wb") as f:
        f.write(data)


PDUS = [
    ("read-ids", bytes([3, 0, 0, 0, 3])),
    ("read-measurements", bytes([3, 1, 0, 0, 7])),
    ("read-input-settings", bytes([4, 2, 0, 0, 0x34])),
    ("write-capacity", bytes([6, 2, 0, 0x07, 0xD0])),
    ("write-lvp-pair", bytes([0x10, 2, 0x10, 0, 2, 4, 0x2C, 0xEC, 0x32, 0xC8])),
    ("read-write", bytes([0x17, 0, 0, 0, 2, 2, 0x33, 0, 1, 2, 0, 50])),
    ("echo", bytes([8, 0, 0, 1, 2, 3, 4])),
    ("bus-messages", bytes([8, 0, 0x0B, 0, 0])),
    ("listen-only", bytes([8, 0, 4, 0, 0])),
    ("restart", bytes([8, 0, 1, 0, 0])),
    ("device-id", bytes([0x2B, 0x0E, 1, 0])),
    ("unmapped", bytes([3, 0, 0x50, 0, 1])),
    ("cal-unlock", bytes([0x10, 4, 3, 0, 1, 2, 0xCA, 0x1B])),
    ("unknown-function", bytes([0x41])),
]

# rtu: setup byte (bit 0 Burst, bits 2-3 baud, bits 4- variant), unit byte, then chunks gap_us:u16 len:u8 bytes.
for name, p in PDUS:
    for setup, how in ((0x04, "paced"), (0x05, "burst")):
        a = adu(1, p)
        put("rtu", f"{name}-{how}", bytes([setup, 0]) + struct.pack(">H", 3000) + bytes([len(a)]) + a
            + struct.pack(">H", 5000) + bytes([0]))
a, b, c = adu(0, PDUS[3][1]), adu(2, PDUS[0][1]), adu(1, PDUS[1][1])
put("rtu", "broadcast-other-unit-split-frame", bytes([0x04, 0]) + struct.pack(">H", 3000) + bytes([len(a)]) + a
    + struct.pack(">H", 3000) + bytes([len(b)]) + b + struct.pack(">H", 3000) + bytes([4]) + c[:4]
    + struct.pack(">H", 100) + bytes([len(c) - 4]) + c[4:])

# pdu: variant byte, then operations (see fuzz_targets/pdu.rs: op % 8, 0xF0.. = a raw address).
OPS = {
    "read-measurements": bytes([0, 1, 0xF0, 0x01, 0x00, 7]),
    "write-capacity": bytes([1, 3, 0xF0, 0x02, 0x00, 0x07, 0xD0]),
    "write-lvp-pair": bytes([2, 4, 4, 0xF0, 0x02, 0x10, 0x2C, 0xEC, 0x32, 0xC8, 0, 0, 0, 0]),
    "read-write": bytes([0, 5, 2, 0xF0, 0x02, 0x00, 2, 0xF0, 0x02, 0x33, 0, 50]),
    "diagnostics": bytes([1, 6, 0, 4, 0, 0x0B, 0, 0]),
    "device-id": bytes([2, 6, 1, 4, 0x0E, 1, 0, 0]),
    "sample-then-read": bytes([0, 7, 10, 0, 0, 0x40, 0, 0x40, 0, 1, 0xF0, 0x01, 0x00, 20]),
    "unlock-then-calibrate": bytes([1, 4, 2, 0xF0, 0x04, 0x03, 0xCA, 0x1B, 4, 2, 0xF0, 0x03, 0x02, 0x03, 0x8D, 0x7E, 0xA4]),
    "raw-unmapped-read": bytes([0, 0, 5, 3, 0, 0x50, 0, 1]),
    "set-clock": bytes([2, 3, 0xF0, 0x01, 0x0D, 0x12, 0x34, 4, 2, 0xF0, 0x01, 0x0D, 0, 1, 0x51, 0x80]),
    "write-across-gap": bytes([0, 4, 18, 0xF0, 0x02, 0x18]) + bytes(36),
}
for name, o in OPS.items():
    put("pdu", name, o)

# nvm: variant, cut, changes, (register, value)*, then the image.
for v in range(3):
    for cut in (0, 3, 40, 255):
        put("nvm", f"erased-v{v}-cut{cut}", bytes([v, cut, 2, 0, 0x00, 0x64, 5, 0x2C, 0xEC]))
put("nvm", "zeros", bytes([0, 10, 1, 0, 0, 50]) + bytes(256))

# tcp: two bytes seeding the read sizes, then the stream.
for i, (name, p) in enumerate(PDUS[:6]):
    put("tcp", name, bytes([0, i + 1]) + mbap(i, 1, p))
put("tcp", "five-in-one-read", bytes([0x12, 0x34]) + b"".join(mbap(t, 1, PDUS[0][1]) for t in range(5)))
put("tcp", "bad-protocol", bytes([0, 7]) + struct.pack(">HHHB", 1, 1, 6, 1) + PDUS[0][1])
put("tcp", "huge-length", bytes([0, 7]) + struct.pack(">HHHB", 1, 0, 0xFFFF, 1) + PDUS[0][1])
put("tcp", "truncated", bytes([0, 9]) + mbap(3, 1, PDUS[0][1])[:-2])

# hil_reply: op, unit-1, retries, read size, address, count-1, then segments (length, bytes).
def seg(b):
    return bytes([len(b)]) + b
put("hil_reply", "read-ok", bytes([0, 0, 1, 8, 0, 0, 2]) + seg(adu(1, bytes([3, 6, 0, 209, 0, 12, 1, 0]))))
put("hil_reply", "read-exception", bytes([0, 0, 0, 64, 0, 0x50, 0]) + seg(adu(1, bytes([0x83, 2]))))
put("hil_reply", "write-echo", bytes([1, 0, 0, 3, 0x02, 0x00, 0]) + seg(adu(1, bytes([6, 2, 0, 0x10, 0x00]))))
put("hil_reply", "other-unit-then-ok", bytes([0, 0, 1, 5, 0, 0, 0]) + seg(adu(2, bytes([3, 2, 0, 1])))
    + seg(adu(1, bytes([3, 2, 0, 209]))))
put("hil_reply", "noise", bytes([2, 0, 2, 1, 0, 0, 1, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9]))

# files: kind byte (0 scenario, 1 study, 2 fault set, 3 ECM TOML, 4 ECM JSON, 5 test plan, 7 tolerances), text.
def text(path):
    with open(path, "rb") as f:
        return f.read()
for path in sorted(glob.glob("scenarios/*.toml"))[::3]:
    put("files", "scenario-" + os.path.basename(path), b"\x00" + text(path))
for path in sorted(glob.glob("scenarios/whatif/*.toml"))[:3]:
    put("files", "study-" + os.path.basename(path), b"\x01" + text(path))
put("files", "faults.toml", b"\x02" + b"""[faults]
seed = 42
[[faults.unit]]
delay_ms = 5.0
delay_jitter_ms = 2.0
[[faults.unit]]
id = 2
drop_probability = 0.1
crc_error_probability = 0.05
wrong_unit_probability = 0.05
wrong_unit_id = 9
exception_probability = 0.1
exception_code = 6
garble_byte_rate = 0.001
offline = [{ from_s = 10.0, to_s = 20.0 }]
""")
put("files", "ecm-lfp-100ah.toml", b"\x03" + text("scenarios/data/lfp-100ah-ecm.toml"))
put("files", "plan-acceptance.toml", b"\x05" + text("hil-rig/plans/acceptance.toml"))
put("files", "tolerances.toml", b"\x07" + b"[current]\nabs_a = 0.5\n[voltage]\nrel = 0.01\n")
put("files", "scenario-duration-1e300.toml", b"\x00" + b'name = "x"\nvariant = 12\ninitial_soc = 0.5\n'
    b'[[segment]]\nkind = "rest"\nduration_s = 1e300\n')

# csv: kind byte (0 recording, 1 profile hold, 2 profile linear), text.
drive = text("scenarios/data/drive-cycle.csv")
put("csv", "profile-drive-cycle-hold.csv", b"\x01" + drive)
put("csv", "profile-drive-cycle-linear.csv", b"\x02" + drive)
put("csv", "profile-small.csv", b"\x02time_s,current_A\n0,0\n10,-50\n10,50\n20,0\n")
put("csv", "recording.csv", b"\x00time_s,current_A,voltage_V,temp_C,soc_pct\n0,1.5,13.2,25.0,60.0\n1,1.5,13.21,25.0,60.01\n")
