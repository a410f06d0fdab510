"""What `--ledger-after-all` and `--time-passes` hook into the pipeline.

Both write to stderr (stdout stays the command's output) and only when asked for:
without the flags nothing here runs and the outputs are byte-identical.

`LedgerAfterAll` is an after-pass callback, like `--print-ir-after-all`'s `IRDumper`
(compiler/pipeline.py): after the import and after every pass it prints the compression
ledger (compiler/compression/ledger.py, the figures `--report` prints) in short, one row
per layer,

    stage          raw, pruned, shared or huffman (the ledger's)
    weights        matrix weights
    non-zeros      weights kept (a raw weight is stored dense: all its weights count)
    bits/w P+Q     matrix bits per kept weight, pruned and quantized (indices, positions,
                   codebook, pointers)
    bits/w P+Q+H   the same after Huffman coding (with its code tables)
    dense B        the 32-bit float size of the weights and biases, in bytes
    P+Q B          stored after pruning and quantization, biases included, in bytes
    P+Q+H B        and after Huffman coding

with, when the command compiles for a target, the static estimate of one matrix x
vector product on its machine (compiler/estimate.py: est. cycles, est. nJ; "-" for a
layer the target does not run), then what
the pass changed: the totals before and after it, or "no change". Layers that changed
are marked `*`. Once the weights are lowered into the target's ops the ledger has no
onnx/comp weights left to count, and says so.

`PassTimer` measures wall time per stage (import, each pass, the program's encoding,
writing the output) and prints a table at the end, like MLIR's `-mlir-timing` and
LLVM's `-time-passes`; what no stage covers (option checks, IR dumps, ledgers) is one
row of its own, so the rows add up to the total.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TextIO

from xdsl.dialects.builtin import ModuleOp


@dataclass
class Row:
    """One layer's (or the total's) figures after a pass."""

    name: str
    stage: str
    weights: int
    kept: int
    bits_pq: float | None
    bits_pqh: float | None
    dense_bytes: int
    pq_bytes: int
    pqh_bytes: int
    cycles: int | None = None
    energy_nj: float | None = None

    def key(self) -> tuple:
        return (self.stage, self.weights, self.kept, self.pq_bytes, self.pqh_bytes,
                self.cycles, self.energy_nj)  # fmt: skip


def snapshot(module: ModuleOp, target: str | None = None, config=None) -> tuple[list[Row], Row]:
    """The ledger's rows and total as `Row`s, with the estimate of ``target`` (its name
    and hardware config) when given."""
    from dlhwc.compiler.compression.ledger import ledger

    table = ledger(module)
    estimates = {}
    if target is not None:
        from dlhwc.compiler.estimate import estimate

        estimates = estimate(module, target, config)
    rows = []
    for r in table.rows:
        e = estimates.get(r.name)
        rows.append(
            Row(
                r.name, r.stage, r.weights, r.kept, r.bits_per_weight_pq, r.bits_per_weight_pqh,
                _bytes(r.original), _bytes(r.compressed_pq), _bytes(r.compressed_pqh),
                None if e is None else e.cycles, None if e is None else e.energy_pj / 1000.0,
            )
        )  # fmt: skip
    t = table.total
    total = Row(
        "total", "", t.weights, t.kept, t.bits_per_weight_pq, t.bits_per_weight_pqh,
        _bytes(t.original), _bytes(t.compressed_pq), _bytes(t.compressed_pqh),
    )  # fmt: skip
    # A row has both estimates (cycles and energy) or neither.
    known = [
        (r.cycles, r.energy_nj) for r in rows if r.cycles is not None and r.energy_nj is not None
    ]
    if known:
        total.cycles = sum(cycles for cycles, _ in known)
        total.energy_nj = sum(energy for _, energy in known)
    return rows, total


@dataclass
class LedgerAfterAll:
    """Prints the ledger after the import and every pass, and what the pass changed."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    target: str | None = None  # with its hardware config: adds the estimate
    config: object | None = None
    _last: tuple[list[Row], Row] | None = None

    def __call__(self, after: str, module: ModuleOp) -> None:
        rows, total = snapshot(module, self.target, self.config)
        write = self.stream.write
        write(f"// -----// Ledger After {after} //----- //\n")
        last = self._last
        if not rows:
            if last is not None and last[0]:
                write("no onnx/comp weights left: they are in the target's ops now\n\n")
            else:
                write("no weights\n\n")
            return
        before = {} if last is None else {r.name: r.key() for r in last[0]}
        marks = [" *" if last is not None and before.get(r.name) != r.key() else "" for r in rows]
        write("\n".join(self._table(rows, total, marks)) + "\n")
        if last is not None:
            write(_change(last[1], total) + "\n")
        write("\n")
        self._last = (rows, total)

    def _table(self, rows: list[Row], total: Row, marks: list[str]) -> list[str]:
        head = ["layer", "stage", "weights", "non-zeros", "bits/w P+Q", "bits/w P+Q+H",
                "dense B", "P+Q B", "P+Q+H B"]  # fmt: skip
        if self.target is not None:
            head += ["est. cycles", "est. nJ"]
        body = []
        for r, mark in zip([*rows, total], [*marks, ""], strict=True):
            cells = [r.name + mark, r.stage, f"{r.weights:,}", f"{r.kept:,}", _num(r.bits_pq),
                     _num(r.bits_pqh), f"{r.dense_bytes:,}", f"{r.pq_bytes:,}",
                     f"{r.pqh_bytes:,}"]  # fmt: skip
            if self.target is not None:
                cells += [
                    "-" if r.cycles is None else f"{r.cycles:,}",
                    "-" if r.energy_nj is None else f"{r.energy_nj:.2f}",
                ]
            body.append(cells)
        return _align(head, body)


def _change(old: Row, new: Row) -> str:
    """``change: what old -> new (percent), ...`` over the totals, or ``no change``."""
    parts = []
    for label, a, b, fmt in (
        ("non-zeros", old.kept, new.kept, "{:,}"),
        ("bits/w P+Q", old.bits_pq, new.bits_pq, "{:.2f}"),
        ("bits/w P+Q+H", old.bits_pqh, new.bits_pqh, "{:.2f}"),
        ("P+Q B", old.pq_bytes, new.pq_bytes, "{:,}"),
        ("P+Q+H B", old.pqh_bytes, new.pqh_bytes, "{:,}"),
        ("est. cycles", old.cycles, new.cycles, "{:,}"),
        ("est. nJ", old.energy_nj, new.energy_nj, "{:.2f}"),
    ):
        if a is None and b is None:
            continue
        if a is not None and b is not None and fmt.format(a) == fmt.format(b):
            continue
        text = f"{label} {'-' if a is None else fmt.format(a)} -> "
        text += "-" if b is None else fmt.format(b)
        if a and b is not None:
            text += f" ({100 * (b - a) / a:+.1f}%)"
        parts.append(text)
    return "change: " + ("; ".join(parts) if parts else "none")


def _bytes(bits: int) -> int:
    return -(-int(bits) // 8)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _align(head: list[str], body: list[list[str]]) -> list[str]:
    """Columns: the first two left-aligned, the rest right-aligned; a rule under the head
    and above the last row (the total)."""
    table = [head, *body]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    rule = "  ".join("-" * w for w in widths)
    lines = []
    for n, row in enumerate(table):
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in pairs]
        if n == len(table) - 1 and n > 1:
            lines.append(rule)
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append(rule)
    return lines


def after_each(*callbacks: Callable[[str, ModuleOp], None] | None):
    """One after-pass callback calling each given one in order (None: none given)."""
    given = [c for c in callbacks if c is not None]
    if not given:
        return None

    def call(after: str, module: ModuleOp) -> None:
        for c in given:
            c(after, module)

    return call


class PassTimer:
    """Wall time of each stage of a command, in the order they ran."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.stages: list[tuple[str, float]] = []
        self.grouped: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, group: bool = False) -> Iterator[None]:
        """Time the block as a row ``name``; with ``group`` the times of every block of
        that name add up in one row, listed after the stages (e.g. the IR dumps)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            if group:
                self.grouped[name] = self.grouped.get(name, 0.0) + seconds
            else:
                self.stages.append((name, seconds))

    def format(self) -> str:
        """The table, MLIR's `-mlir-timing` layout: seconds, share of the total, name."""
        total = time.perf_counter() - self.started
        rows = [*self.stages, *self.grouped.items()]
        rows.append(("(rest: option checks, messages)", total - sum(t for _, t in rows)))
        rule = "===" + "-" * 73 + "==="
        lines = [
            rule,
            "... Execution time report ...".center(len(rule)).rstrip(),
            rule,
            f"  Total Execution Time: {total:.4f} seconds",
            "",
            "  ----Wall Time----  ----Name----",
        ]
        for name, seconds in [*rows, ("Total", total)]:
            share = 100.0 * seconds / total if total > 0 else 0.0
            lines.append(f"  {seconds:10.4f} ({share:5.1f}%)  {name}")
        return "\n".join(lines) + "\n"


AFTER_PASS = "after-pass output (--print-ir-after-all, --ledger-after-all)"
"""The grouped row of the after-pass hooks' time."""


def timed(timer: PassTimer | None, name: str, group: bool = False):
    """``timer.stage(name, group)``, or a context that does nothing without a timer."""
    return nullcontext() if timer is None else timer.stage(name, group)
