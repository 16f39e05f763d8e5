#!/usr/bin/env python3
"""Flash, RAM and worst-case stack of a Cortex-M (Thumb-2) ELF image, with the
standard library only (no binutils needed).

    elf_report.py IMAGE.elf [--entry Reset] [--object SYMBOL_SUBSTRING ...]

Prints `key: value` lines:

* flash: every allocated section that has contents (.vector_table, .text,
  .rodata, and .data's initial values, which are copied from flash at reset).
* ram: every allocated writable section (.data, .bss, .uninit): static RAM.
* stack: the deepest call chain from the entry, found by decoding each
  function's stack adjustments (push, push.w, str sp pre-index, sub sp, vpush)
  and its calls (bl, and branches that leave the function = tail calls), plus
  one exception frame with FPU state (26 words) for an interrupt taken at the
  deepest point, plus the deepest exception handler. Conservative: every
  adjustment in a function body counts, as if all happened on one path.
  Indirect calls, recursion or dynamic stack adjustment make it `unknown`.
"""

import re
import struct
import sys

SHF_WRITE, SHF_ALLOC = 0x1, 0x2
SHT_SYMTAB, SHT_NOBITS = 2, 8
STT_FUNC = 2
# Basic exception frame (8 words) + lazy-stacked FP context (S0-S15, FPSCR, reserved: 18 words).
EXCEPTION_FRAME_FP = 26 * 4


def read_elf(path):
    data = open(path, "rb").read()
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        sys.exit(f"{path}: not a 32-bit little-endian ELF")
    e_shoff, = struct.unpack_from("<I", data, 0x20)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    secs = []
    for i in range(e_shnum):
        f = struct.unpack_from("<10I", data, e_shoff + i * e_shentsize)
        secs.append(dict(name_off=f[0], type=f[1], flags=f[2], addr=f[3], offset=f[4], size=f[5], link=f[6]))
    strtab = secs[e_shstrndx]
    for s in secs:
        s["name"] = cstr(data, strtab["offset"] + s["name_off"])
    return data, secs


def cstr(data, off):
    return data[off : data.index(b"\0", off)].decode("utf-8", "replace")


def symbols(data, secs):
    out = []
    for s in secs:
        if s["type"] != SHT_SYMTAB:
            continue
        names = secs[s["link"]]
        for off in range(s["offset"], s["offset"] + s["size"], 16):
            name, value, size, info, _other, shndx = struct.unpack_from("<IIIBBH", data, off)
            out.append(dict(name=cstr(data, names["offset"] + name), value=value, size=size, type=info & 0xF, shndx=shndx))
    return out


def demangle(name):
    """Rust symbol names to readable paths: legacy (_ZN...E) fully, v0 (_R...)
    for plain paths (enough for core's and compiler_builtins' functions);
    anything else as it is."""
    if name.startswith("_R"):
        return demangle_v0(name)
    m = re.match(r"_ZN(.*)E$", name)
    if not m:
        return name
    rest, parts = m.group(1), []
    while rest and rest[0].isdigit():
        n = int(re.match(r"\d+", rest).group())
        rest = rest[len(str(n)) :]
        parts.append(rest[:n])
        rest = rest[n:]
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()
    s = "::".join(parts)
    for a, b in [("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$RF$", "&"), ("$C$", ","), ("..", "::"), ("$u7b$", "{"), ("$u7d$", "}")]:
        s = s.replace(a, b)
    return s


def demangle_v0(name):
    m = re.match(r"_R(?:N[a-zA-Z])*C(?:s[0-9a-zA-Z]*_)?(.*)$", name)
    if not m:
        return name
    rest, parts = m.group(1), []
    while rest:
        n = re.match(r"(\d+)_?", rest)
        if not n:
            return name  # generics, impls, closures: not decoded here
        k = int(n.group(1))
        rest = rest[n.end() :]
        parts.append(rest[:k])
        rest = rest[k:]
    return "::".join(parts)


def sizes(secs):
    alloc = [s for s in secs if s["flags"] & SHF_ALLOC and s["size"]]
    flash = sum(s["size"] for s in alloc if s["type"] != SHT_NOBITS)
    ram = sum(s["size"] for s in alloc if s["flags"] & SHF_WRITE)
    return flash, ram, alloc


def thumb_expand_imm(imm12):
    if imm12 >> 10 == 0:
        b = imm12 & 0xFF
        return [b, b << 16 | b, b << 24 | b << 8, b << 24 | b << 16 | b << 8 | b][(imm12 >> 8) & 3]
    v = 0x80 | (imm12 & 0x7F)
    rot = imm12 >> 7
    return ((v >> rot) | (v << (32 - rot))) & 0xFFFFFFFF


def sign(v, bits):
    return v - (1 << bits) if v & (1 << (bits - 1)) else v


def analyse_function(code, base, start, end, data_ranges):
    """Stack bytes this function adjusts, (site, target) of branches leaving it, and problems."""
    frame, calls, problems = 0, [], []
    pc = start
    while pc < end:
        if any(a <= pc < b for a, b in data_ranges):
            pc += 2
            continue
        off = pc - base
        if off + 2 > len(code):
            break
        h1, = struct.unpack_from("<H", code, off)
        if h1 >> 11 in (0b11101, 0b11110, 0b11111):  # 32-bit instruction
            if off + 4 > len(code):
                break
            h2, = struct.unpack_from("<H", code, off + 2)
            if h1 == 0xE92D:  # push.w / stmdb sp!, {...}
                frame += 4 * bin(h2 & 0x5FFF).count("1")
            elif h1 == 0xF84D and h2 & 0x0FFF == 0x0D04:  # str.w rt, [sp, #-4]!
                frame += 4
            elif h1 & 0xFBEF == 0xF1AD and (h2 >> 8) & 0xF == 0xD:  # sub.w sp, sp, #const (S=0/1)
                frame += thumb_expand_imm((h1 >> 10 & 1) << 11 | (h2 >> 12 & 7) << 8 | (h2 & 0xFF))
            elif h1 & 0xFBFF == 0xF2AD and (h2 >> 8) & 0xF == 0xD:  # subw sp, sp, #imm12
                frame += (h1 >> 10 & 1) << 11 | (h2 >> 12 & 7) << 8 | (h2 & 0xFF)
            elif h1 & 0xFFBF == 0xED2D and (h2 >> 9) & 7 == 0b101:  # vpush {s../d..}
                frame += 4 * (h2 & 0xFF)
            elif h1 & 0xFFEF == 0xEBAD and (h2 >> 8) & 0xF == 0xD:  # sub.w sp, sp, rm
                problems.append(f"dynamic stack adjustment at {pc:#x}")
            elif h1 >> 11 == 0b11110 and h2 >> 14 == 0b11:  # bl / blx imm
                calls.append((pc, bl_target(pc, h1, h2, h2 >> 12 & 1 == 0)))
            elif h1 >> 11 == 0b11110 and h2 >> 14 == 0b10 and h2 & 0x1000:  # b.w (T4)
                t = bl_target(pc, h1, h2, False)
                if not start <= t < end:
                    calls.append((pc, t))
            elif h1 >> 11 == 0b11110 and h2 >> 14 == 0b10 and not h2 & 0x1000 and (h1 >> 6) & 0xE != 0xE:  # b<c>.w (T3)
                s_, j1, j2 = h1 >> 10 & 1, h2 >> 13 & 1, h2 >> 11 & 1
                imm = sign(s_ << 20 | j2 << 19 | j1 << 18 | (h1 & 0x3F) << 12 | (h2 & 0x7FF) << 1, 21)
                t = pc + 4 + imm
                if not start <= t < end:
                    calls.append((pc, t))
            pc += 4
            continue
        if h1 & 0xFE00 == 0xB400:  # push {..., lr}
            frame += 4 * (bin(h1 & 0xFF).count("1") + (h1 >> 8 & 1))
        elif h1 & 0xFF80 == 0xB080:  # sub sp, #imm7*4
            frame += 4 * (h1 & 0x7F)
        elif h1 & 0xFF87 == 0x4780:  # blx rm
            problems.append(f"indirect call at {pc:#x}")
        elif h1 & 0xFF87 == 0x4700 and (h1 >> 3) & 0xF != 14:  # bx rm, rm != lr
            problems.append(f"indirect branch at {pc:#x}")
        elif h1 & 0xF800 == 0xE000:  # b (T2)
            t = pc + 4 + sign((h1 & 0x7FF) << 1, 12)
            if not start <= t < end:
                calls.append((pc, t))
        elif h1 & 0xF000 == 0xD000 and (h1 >> 8) & 0xF < 0xE:  # b<c> (T1)
            t = pc + 4 + sign((h1 & 0xFF) << 1, 9)
            if not start <= t < end:
                calls.append((pc, t))
        pc += 2
    return frame, calls, problems


def bl_target(pc, h1, h2, to_arm):
    s_, j1, j2 = h1 >> 10 & 1, h2 >> 13 & 1, h2 >> 11 & 1
    i1, i2 = 1 ^ j1 ^ s_, 1 ^ j2 ^ s_
    imm = sign(s_ << 24 | i1 << 23 | i2 << 22 | (h1 & 0x3FF) << 12 | (h2 & 0x7FF) << 1, 25)
    t = pc + 4 + imm
    return t & ~3 if to_arm else t


class Program:
    """Functions of .text with their stack frames and call edges."""

    def __init__(self, data, secs, syms):
        text = next((s for s in secs if s["name"] == ".text"), None)
        if text is None:
            sys.exit("no .text section")
        code = data[text["offset"] : text["offset"] + text["size"]]
        base, tend = text["addr"], text["addr"] + text["size"]
        tidx = secs.index(text)
        funcs = {}
        for s in sorted(syms, key=lambda s: -s["size"]):  # aliases: keep the sized one
            if s["type"] == STT_FUNC and s["shndx"] == tidx:
                funcs.setdefault(s["value"] & ~1, s)
        self.starts = sorted(funcs)
        self.bounds = {}
        for i, a in enumerate(self.starts):
            nxt = self.starts[i + 1] if i + 1 < len(self.starts) else tend
            size = funcs[a]["size"]
            self.bounds[a] = (a, min(a + size, tend) if size else nxt)
        # Mapping symbols: $d starts data (literal pools, jump tables), $t code.
        marks = sorted((s["value"], s["name"][:2]) for s in syms if s["shndx"] == tidx and s["name"][:2] in ("$d", "$t"))
        data_ranges = []
        for i, (a, kind) in enumerate(marks):
            if kind == "$d":
                b = marks[i + 1][0] if i + 1 < len(marks) else tend
                data_ranges.append((a, b))
        self.name = {a: demangle(funcs[a]["name"]) for a in funcs}
        self.by_symbol = {}
        for sym in syms:
            if sym["type"] == STT_FUNC and (sym["value"] & ~1) in funcs:
                self.by_symbol[sym["name"]] = sym["value"] & ~1
        # a -> (frame bytes, [(site, callee start)], problems)
        self.info = {}
        for a, (s, e) in self.bounds.items():
            ranges = [r for r in data_ranges if r[1] > s and r[0] < e]
            frame, branches, problems = analyse_function(code, base, s, e, ranges)
            calls = []
            for site, t in branches:
                o = self.owner(t)
                if o is None:
                    problems.append(f"branch at {site:#x} to {t:#x} outside any function")
                elif o != a:
                    calls.append((site, o))
            self.info[a] = (frame, calls, problems)

    def owner(self, addr):
        lo, hi, best = 0, len(self.starts) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            if self.starts[mid] <= addr:
                best, lo = self.starts[mid], mid + 1
            else:
                hi = mid - 1
        if best is not None and self.bounds[best][0] <= addr < self.bounds[best][1]:
            return best
        return None

    def stack(self, entry):
        """(worst-case bytes or None, problems, chain description)."""
        memo, problems = {}, []

        def depth(a, path):
            if a in memo:
                return memo[a]
            if a in path:
                problems.append("recursion: " + " -> ".join(self.name[p] for p in path + [a]))
                return 0, [a]
            frame, calls, probs = self.info[a]
            problems.extend(f"{self.name[a]}: {p}" for p in probs)
            best, chain = 0, []
            for _site, c in calls:
                d, ch = depth(c, path + [a])
                if d > best:
                    best, chain = d, ch
            memo[a] = (frame + best, [a] + chain)
            return memo[a]

        if entry not in self.by_symbol:
            return None, [f"entry symbol {entry} not found"], []
        main_depth, chain = depth(self.by_symbol[entry], [])
        # Exception handlers share the main stack (MSP); assume one level of nesting.
        handlers = [self.by_symbol[n] for n in ("DefaultHandler_", "HardFault_") if n in self.by_symbol]
        h_depth = max((depth(h, [])[0] for h in handlers), default=0)
        total = main_depth + EXCEPTION_FRAME_FP + h_depth
        detail = [f"{self.name[a]} ({self.info[a][0]} B)" for a in chain]
        detail.append(f"+ exception frame with FP state ({EXCEPTION_FRAME_FP} B) + deepest handler ({h_depth} B)")
        return (None if problems else total), problems, detail

    def panic_sites(self):
        """(site, caller, callee) for every call into a panic function from outside them."""
        panicky = {a for a, n in self.name.items() if PANIC_FN.search(n)}
        out = []
        for a, (_f, calls, _p) in self.info.items():
            if a in panicky:
                continue
            for site, c in calls:
                if c in panicky:
                    out.append((site, self.name[a], self.name[c]))
        return sorted(out)


PANIC_FN = re.compile(
    r"panicking|rust_begin_unwind|unwrap_failed|expect_failed|core::slice::index::|"
    r"slice_error_fail|panic_const|panic_bounds_check|panic_fmt|assert_failed|core::cell::panic"
)


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    path, entry, objects = args[0], "Reset", []
    i = 1
    while i < len(args):
        if args[i] == "--entry":
            entry = args[i + 1]
            i += 2
        elif args[i] == "--object":
            objects.append(args[i + 1])
            i += 2
        else:
            sys.exit(f"unknown argument {args[i]}")
    data, secs = read_elf(path)
    syms = symbols(data, secs)
    flash, ram, alloc = sizes(secs)
    for s in alloc:
        kind = ("flash+ram" if s["flags"] & SHF_WRITE else "flash") if s["type"] != SHT_NOBITS else "ram"
        print(f"section {s['name']}: {s['size']} ({kind})")
    for sub in objects:
        for s in syms:
            if sub in s["name"] and s["size"] and s["type"] != STT_FUNC:
                print(f"object {demangle(s['name'])}: {s['size']}")
    print(f"flash: {flash}")
    print(f"ram: {ram}")
    prog = Program(data, secs, syms)
    for site, caller, callee in prog.panic_sites():
        print(f"panic_site: {site:#x} in {caller} calls {callee}")
    stack, problems, detail = prog.stack(entry)
    for d in detail:
        print(f"stack_chain: {d}")
    for p in problems:
        print(f"stack_problem: {p}")
    print(f"stack: {stack if stack is not None else 'unknown'}")


if __name__ == "__main__":
    main()
