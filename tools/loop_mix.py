"""The instruction mix of the innermost loops of compiled kernels, from the disassembly: how many multiply-adds (or
dot products), vector loads, broadcasts and stack accesses (spills) each iteration executes. The speed argument of
docs/ARM.md rests on it, for aarch64 objects as for x86-64 ones.

    python tools/loop_mix.py OBJDUMP OBJECT 'lstm_step_tile<6, 1, false, fastlstm::neon::F32Product>'

OBJDUMP is the binutils objdump of the object's architecture (aarch64-linux-gnu-objdump, or objdump); the pattern
selects functions by a substring of their demangled names. A loop is a backward branch within a function; innermost
loops are those holding no other loop.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess

#: Instruction classes by mnemonic prefix, aarch64 and x86-64 (AVX) alike.
CLASSES = {
    "multiply-add": ("fmla", "fmls", "vfmadd", "vfnmadd", "mla"),
    "dot": ("sdot", "udot", "usdot", "bfmlal", "bfdot", "smmla", "usmmla", "vpdpbusd", "vdpbf16ps"),
    "broadcast": ("dup", "ld1r", "vbroadcastss", "vpbroadcastd"),
    "integer multiply": ("vpmulld",),
}
BRANCH = re.compile(r"^(b\.\w+|b|cbnz|cbz|tbnz|tbz|j\w+)$")
FUNCTION = re.compile(r"^[0-9a-f]+ <(.*)>:$")
LINE = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")


def functions(objdump: str, path: str, pattern: str) -> dict[str, list[tuple[int, str, str]]]:
    text = subprocess.run([objdump, "-d", "-C", "--no-show-raw-insn", path], check=True, capture_output=True, text=True)
    found, name = {}, None
    for line in text.stdout.splitlines():
        if match := FUNCTION.match(line):
            name = match.group(1) if pattern in match.group(1) else None
            if name:
                found[name] = []
        elif name and (match := LINE.match(line)):
            found[name].append((int(match.group(1), 16), match.group(2), match.group(3)))
    return found


def classify(mnemonic: str, operands: str) -> str | None:
    for name, prefixes in CLASSES.items():
        if mnemonic.startswith(prefixes):
            return name
    stack = "sp" in re.split(r"[\s,\[\]!#]+", operands) or "rsp" in operands or "rbp" in operands
    if mnemonic.startswith(("ldr", "ldp", "ld1", "vmovups", "vmovaps", "vmovdqu")) or (
        mnemonic.startswith("v") and "PTR" in operands
    ):
        return "stack load" if stack else "vector load" if re.search(r"\b[qv]\d+|[xyz]mm", operands) else "load"
    x86_store = mnemonic.startswith("vmov") and operands.startswith(("X", "Y", "Z"))
    if mnemonic.startswith(("str", "stp", "st1")) or x86_store:
        return "stack store" if stack else "store"
    return None


def innermost_loops(body: list[tuple[int, str, str]]) -> list[tuple[int, int]]:
    loops = []
    for address, mnemonic, operands in body:
        if BRANCH.match(mnemonic) and (target := re.search(r"\b([0-9a-f]+) <", operands)):
            start = int(target.group(1), 16)
            if start <= address and start >= body[0][0]:
                loops.append((start, address))
    return [(s, e) for s, e in loops if not any((s, e) != (s2, e2) and s <= s2 and e2 <= e for s2, e2 in loops)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("objdump")
    parser.add_argument("object")
    parser.add_argument("pattern")
    arguments = parser.parse_args()
    for name, body in functions(arguments.objdump, arguments.object, arguments.pattern).items():
        print(name)
        for start, end in innermost_loops(body):
            counts = collections.Counter()
            for address, mnemonic, operands in body:
                if start <= address <= end:
                    counts["instructions"] += 1
                    if kind := classify(mnemonic, operands):
                        counts[kind] += 1
            print(f"  loop {start:#x}-{end:#x}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
