"""ISA tables: one text table declares a target's instructions; everything else derives.

Table syntax (in the spirit of riscv-opcodes), one instruction per line, 64-bit words:

    spmv  @compute 63..56=0x05 layer=55..44 block=43..28 shift=19..13:s 12..0=0
        | pseudo-code of the instruction, one or more lines starting with `|`

- `@class` is the instruction's class (one of `CLASSES`; `compute` when omitted): what
  the generic code (the simulator core, runtime/core.py) knows of the instruction, so
  that it dispatches on classes, never on a target's mnemonics;
- `hi..lo=VALUE` is a fixed range (the opcode, or reserved zeros);
- `name=hi..lo` is an operand field (`name=bit` for one bit); `:s` makes it signed
  (two's complement), otherwise it is unsigned;
- `#` starts a comment.

`IsaTable.parse` refuses a line whose ranges overlap or leave a bit uncovered, an
opcode or a mnemonic used twice, an operand named twice, and an unknown class or two classes. Mnemonics are
`[A-Za-z_][A-Za-z0-9_.]*` (e.g. `dma.in`), operand names `[A-Za-z_][A-Za-z0-9_]*`. From the table come the encoder and
decoder here, the assembler grammar and disassembler (spec/asm.py), the simulator's
dispatch and the ISA reference page (`IsaTable.markdown`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WORD_BITS = 64

CLASSES = {
    "halt": "ends the program; decoding stops at the first",
    "sync": "waits until the pipelines have drained",
    "transfer_in": "moves a symbol from host memory to an on-chip buffer (operands sym, buf)",
    "transfer_out": "moves an on-chip buffer to a symbol in host memory (operands sym, buf)",
    "load": "loads memory images (a layer's weights, tables) from DRAM into the PEs",
    "compute": "runs on the PE array or the element-wise units (operand layer)",
    "loop": "repeats the instructions that follow it (operands layer, body)",
    "host": "runs a host segment (operand seg); no accelerator cycles",
}
"""The instruction classes an ISA table declares (`@class`), and what each means."""


class IsaError(ValueError):
    """A malformed ISA table, or an instruction that cannot be encoded or decoded."""


@dataclass(frozen=True)
class Field:
    """An operand field: bits hi..lo of the word."""

    name: str
    hi: int
    lo: int
    signed: bool = False

    @property
    def width(self) -> int:
        return self.hi - self.lo + 1

    @property
    def min(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1


@dataclass(frozen=True)
class Instruction:
    """One instruction: its mnemonic, class, opcode field, operand fields and semantics."""

    mnemonic: str
    kind: str  # its class, one of CLASSES
    opcode: int
    opcode_hi: int
    opcode_lo: int
    fields: tuple[Field, ...]
    fixed: tuple[tuple[int, int, int], ...]  # (hi, lo, value) ranges, opcode first
    doc: str

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def encode(self, **operands: int) -> int:
        """The 64-bit word of this instruction with the given operand values."""
        names = {f.name for f in self.fields}
        unknown = set(operands) - names
        if unknown:
            raise IsaError(f"{self.mnemonic}: unknown operand(s) {', '.join(sorted(unknown))}")
        word = 0
        for _hi, lo, value in self.fixed:
            word |= value << lo
        for f in self.fields:
            if f.name not in operands:
                raise IsaError(f"{self.mnemonic}: missing operand {f.name}")
            value = int(operands[f.name])
            if not f.min <= value <= f.max:
                raise IsaError(f"{self.mnemonic}: {f.name}={value} outside {range_text(f)}")
            word |= (value & ((1 << f.width) - 1)) << f.lo
        return word

    def decode_fields(self, word: int) -> dict[str, int]:
        """The operand values of ``word`` (which must be this instruction)."""
        values = {}
        for f in self.fields:
            raw = (word >> f.lo) & ((1 << f.width) - 1)
            if f.signed and raw >> (f.width - 1):
                raw -= 1 << f.width
            values[f.name] = raw
        return values


def range_text(f: Field) -> str:
    """The allowed values of a field, e.g. ``-32..31 (6-bit signed)``."""
    kind = "signed" if f.signed else "unsigned"
    return f"{f.min}..{f.max} ({f.width}-bit {kind})"


_RANGE = re.compile(r"^(\d+)(?:\.\.(\d+))?$")
_MNEMONIC = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_OPERAND = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class IsaTable:
    """A parsed, checked ISA table."""

    def __init__(self, target: str, instructions: list[Instruction]):
        self.target = target
        self.instructions = instructions
        self.by_mnemonic = {i.mnemonic: i for i in instructions}
        self.by_opcode = {i.opcode: i for i in instructions}
        hi, lo = instructions[0].opcode_hi, instructions[0].opcode_lo
        self.opcode_hi, self.opcode_lo = hi, lo

    @staticmethod
    def parse(target: str, text: str) -> IsaTable:
        instructions: list[Instruction] = []
        current: dict | None = None
        for lineno, raw in enumerate(text.splitlines(), 1):
            if raw.lstrip().startswith("|"):
                line = raw.rstrip()
                if current is None:
                    raise IsaError(f"line {lineno}: semantics before any instruction")
                doc = line.lstrip()[1:]
                current["doc"].append(doc[1:] if doc.startswith(" ") else doc)
                continue
            line = raw.split("#", 1)[0].rstrip()
            if not line.strip():
                continue
            if current is not None:
                instructions.append(_build(**current))
            current = _parse_line(line, lineno)
        if current is not None:
            instructions.append(_build(**current))
        if not instructions:
            raise IsaError("empty ISA table")
        opcode_ranges = {(i.opcode_hi, i.opcode_lo) for i in instructions}
        if len(opcode_ranges) != 1:
            raise IsaError("every instruction must put its opcode in the same bits")
        seen: dict[int, str] = {}
        mnemonics: set[str] = set()
        for i in instructions:
            if i.mnemonic in mnemonics:
                raise IsaError(f"{i.mnemonic}: mnemonic declared twice")
            mnemonics.add(i.mnemonic)
            if i.opcode in seen:
                raise IsaError(
                    f"{i.mnemonic}: opcode {i.opcode:#x} (bits {i.opcode_hi}..{i.opcode_lo}) "
                    f"already used by {seen[i.opcode]}"
                )
            seen[i.opcode] = i.mnemonic
        return IsaTable(target, instructions)

    def encode(self, mnemonic: str, **operands: int) -> int:
        try:
            return self.by_mnemonic[mnemonic].encode(**operands)
        except KeyError:
            raise IsaError(f"unknown instruction '{mnemonic}'") from None

    def decode(self, word: int) -> tuple[Instruction, dict[str, int]]:
        """The instruction and operands of a 64-bit word; reserved bits must be zero."""
        opcode = (word >> self.opcode_lo) & ((1 << (self.opcode_hi - self.opcode_lo + 1)) - 1)
        instr = self.by_opcode.get(opcode)
        if instr is None:
            raise IsaError(f"unknown opcode {opcode:#x} in word {word:#018x}")
        for hi, lo, value in instr.fixed:
            if (word >> lo) & ((1 << (hi - lo + 1)) - 1) != value:
                raise IsaError(
                    f"{instr.mnemonic}: bits {hi}..{lo} of {word:#018x} must be {value:#x}"
                )
        return instr, instr.decode_fields(word)

    def markdown(self) -> str:
        """The ISA reference: a table of encodings and each instruction's semantics."""
        lines = [
            "| mnemonic | opcode | class | operands (bits) |",
            "|---|---|---|---|",
        ]
        for i in self.instructions:
            ops = ", ".join(
                f"`{f.name}` {_bit_range(f.hi, f.lo)}" + (" (signed)" if f.signed else "")
                for f in i.fields
            )
            lines.append(f"| `{i.mnemonic}` | `{i.opcode:#04x}` | {i.kind} | {ops or '-'} |")
        lines.append("")
        for i in self.instructions:
            operands = ", ".join(f.name for f in i.fields)
            lines.append(f"### `{f'{i.mnemonic} {operands}'.rstrip()}`")
            lines.append("")
            lines.append("```")
            lines.extend(i.doc.splitlines())
            lines.append("```")
            lines.append("")
        return "\n".join(lines)


def _parse_line(line: str, lineno: int) -> dict:
    parts = line.split()
    mnemonic, specs = parts[0], parts[1:]
    if not _MNEMONIC.match(mnemonic):
        raise IsaError(f"line {lineno}: bad mnemonic '{mnemonic}'")
    fixed: list[tuple[int, int, int]] = []
    fields: list[Field] = []
    kinds = [spec[1:] for spec in specs if spec.startswith("@")] or ["compute"]
    if len(kinds) != 1 or kinds[0] not in CLASSES:
        raise IsaError(f"line {lineno}: {mnemonic}: one class of {', '.join(CLASSES)} expected")
    for spec in specs:
        if spec.startswith("@"):
            continue
        left, _, right = spec.partition("=")
        if not right:
            raise IsaError(f"line {lineno}: '{spec}' is neither NAME=BITS nor BITS=VALUE")
        if _RANGE.match(left):
            hi, lo = _bits(left, lineno)
            try:
                value = int(right, 0)
            except ValueError:
                raise IsaError(f"line {lineno}: bad value '{right}' for bits {left}") from None
            if not 0 <= value < 1 << (hi - lo + 1):
                raise IsaError(f"line {lineno}: value {right} does not fit bits {left}")
            fixed.append((hi, lo, value))
        else:
            signed = right.endswith(":s")
            hi, lo = _bits(right.removesuffix(":s"), lineno)
            if not _OPERAND.match(left):
                raise IsaError(f"line {lineno}: bad operand name '{left}'")
            for f in fields:
                if f.name == left:
                    raise IsaError(
                        f"line {lineno}: {mnemonic}: operand '{left}' named twice "
                        f"(bits {f.hi}..{f.lo} and {hi}..{lo})"
                    )
            fields.append(Field(left, hi, lo, signed))
    covered = [0] * WORD_BITS
    for hi, lo in [(h, lo) for h, lo, _ in fixed] + [(f.hi, f.lo) for f in fields]:
        for b in range(lo, hi + 1):
            covered[b] += 1
    overlap = [b for b in range(WORD_BITS) if covered[b] > 1]
    if overlap:
        raise IsaError(f"line {lineno}: {mnemonic}: bits {_spans(overlap)} are claimed twice")
    gaps = [b for b in range(WORD_BITS) if covered[b] == 0]
    if gaps:
        raise IsaError(f"line {lineno}: {mnemonic}: bits {_spans(gaps)} are not covered")
    if not fixed:
        raise IsaError(f"line {lineno}: {mnemonic} has no opcode range")
    return {"mnemonic": mnemonic, "kind": kinds[0], "fixed": fixed, "fields": fields, "doc": []}


def _build(mnemonic: str, kind: str, fixed: list, fields: list, doc: list) -> Instruction:
    opcode_hi, opcode_lo, opcode = fixed[0]
    fields = sorted(fields, key=lambda f: -f.hi)
    return Instruction(mnemonic, kind, opcode, opcode_hi, opcode_lo, tuple(fields),
                       tuple(fixed), "\n".join(doc))  # fmt: skip


def _bits(text: str, lineno: int) -> tuple[int, int]:
    m = _RANGE.match(text)
    if not m:
        raise IsaError(f"line {lineno}: bad bit range '{text}'")
    hi = int(m.group(1))
    lo = int(m.group(2)) if m.group(2) is not None else hi
    if not WORD_BITS > hi >= lo >= 0:
        raise IsaError(f"line {lineno}: bit range '{text}' outside {WORD_BITS - 1}..0")
    return hi, lo


def _bit_range(hi: int, lo: int) -> str:
    return f"{hi}..{lo}" if hi != lo else str(hi)


def _spans(bits: list[int]) -> str:
    spans, start = [], bits[0]
    for a, b in zip(bits, bits[1:] + [None], strict=True):
        if b != a + 1:
            spans.append(f"{a}..{start}" if a != start else str(a))
            if b is not None:
                start = b
    return ", ".join(spans)
