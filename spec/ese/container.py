"""ESE's part of the container header: its layer record (see spec/container.py).

One `ese.rnn` layer: an LSTM, GRU or RNN over one or two directions, whose gate matrices
W, R (and Rh, a GRU's h rows with linear_before_reset = 0) are split into column blocks
that each fit the PE SRAMs (backends/ese/program.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from dlhwc.spec.container import ColumnBlock, Layer, check_tiling, register_layer_record
from dlhwc.spec.ese.isa import HARDWARE_ACTIVATIONS, MATRICES
from dlhwc.spec.schema import Record, field, invalid

KINDS = {"LSTM": (4, 3), "GRU": (3, 2), "RNN": (1, 1)}
"""Gates and activation functions per direction of each layer kind."""


@dataclass(kw_only=True)
class CellFormats(Record):
    """The fraction bits of a recurrent layer's fixed-point values (runtime/ese/arith.py)."""

    fx: int = field("input x")
    fh: int = field("hidden state h")
    fw: int = field("input weights W")
    fr: int = field("recurrent weights R")
    fl: int = field("gate pre-activations (the tables' input)")
    fc: int = field("LSTM cell state")
    fp: int = field("LSTM peepholes")


@dataclass(kw_only=True)
class ESEMatrix(Record):
    """One gate matrix of one direction, encoded over the PEs."""

    dir: int = field("the direction", ge=0, le=1)
    mat: int = field("which matrix: 0 W, 1 R, 2 Rh (the ISA's `mat` operand)", ge=0,
                     le=len(MATRICES) - 1)  # fmt: skip
    name: str = field("the matrix's name", choices=MATRICES)
    rows: int = field("its rows (gate rows), interleaved over the PEs", ge=1)
    cols: int = field("its columns", ge=1)
    nonzeros: int = field("non-zero weights", ge=0)
    entries: int = field("entries over all PEs and blocks, fillers included", ge=0)
    fillers: int = field("filler entries over all PEs and blocks", ge=0)
    blocks: list[ColumnBlock] = field("the column blocks, in column order")

    def check(self, path: str, context: dict) -> None:
        if self.name != MATRICES[self.mat]:
            raise invalid(f"{path}.name", f"matrix {self.mat} is '{MATRICES[self.mat]}'")
        check_tiling(self.blocks, self.cols, f"{path}.blocks")
        for key in ("entries", "fillers"):
            total = sum(sum(getattr(b, key)) for b in self.blocks)
            if total != getattr(self, key):
                raise invalid(f"{path}.{key}", f"the blocks hold {total}, not {getattr(self, key)}")


@register_layer_record("ese")
@dataclass(kw_only=True)
class ESELayer(Layer):
    """A recurrent layer on ESE."""

    DOC_NAME = "ESELayer"

    kind: str = field("the layer's kind", choices=tuple(KINDS))
    direction: str = field("ONNX's direction", choices=("forward", "reverse", "bidirectional"))
    dirs: int = field("directions: 2 when bidirectional", ge=1, le=2)
    hidden: int = field("hidden size H", ge=1)
    input: int = field("input size", ge=1)
    gates: int = field("gates per direction (LSTM 4, GRU 3, RNN 1)", ge=1, le=4)
    layout: int = field("ONNX's layout: 0 sequence first, 1 batch first", ge=0, le=1)
    formats: CellFormats = field("the fraction bits of the layer's values")
    weight_bits: tuple[int, int] = field("bits of the W and R weight codes", ge=2, le=32)
    clip: int | None = field("ONNX's clip as a code at frac fl, or null", ge=0)
    activations: list[list[str]] = field(
        "per direction, ONNX's activation functions (LSTM f, g, h; GRU f, g; RNN f)",
        choices=HARDWARE_ACTIVATIONS,
    )
    input_forget: bool = field("LSTM: the forget gate is 1 - i")
    linear_before_reset: bool = field("GRU: R_h h is computed before the reset gate")
    lut_segments: int = field("segments of each activation table (a power of two)", ge=1,
                              le=1 << 16)  # fmt: skip
    peepholes: bool = field('LSTM: the layer has peepholes (section "L<i>.peep")')
    rb_h: bool = field('GRU with linear_before_reset: Rb_h is apart (section "L<i>.rb_h")')
    matrices: list[ESEMatrix] = field("the gate matrices of every direction")

    @property
    def split_gru(self) -> bool:
        """A GRU whose h rows of R multiply r * h (matrix Rh)."""
        return self.kind == "GRU" and not self.linear_before_reset

    def expected_shape(self, mat: int) -> tuple[int, int]:
        """(rows, cols) of matrix ``mat`` (0 W, 1 R, 2 Rh)."""
        h, g = self.hidden, self.gates
        if mat == 0:
            return g * h, self.input
        if mat == 1:
            return (2 * h if self.split_gru else g * h), h
        return h, h

    def check(self, path: str, context: dict) -> None:
        gates, acts = KINDS[self.kind]
        if self.gates != gates:
            raise invalid(f"{path}.gates", f"a {self.kind} has {gates} gates, not {self.gates}")
        if (self.dirs == 2) != (self.direction == "bidirectional"):
            raise invalid(f"{path}.dirs", f"{self.dirs} directions for '{self.direction}'")
        if len(self.activations) != self.dirs or any(len(a) != acts for a in self.activations):
            raise invalid(
                f"{path}.activations",
                f"expected {self.dirs} lists of {acts} functions, got {self.activations}",
            )
        if self.lut_segments & (self.lut_segments - 1):
            raise invalid(f"{path}.lut_segments", f"{self.lut_segments} is not a power of two")
        seen = set()
        for m, matrix in enumerate(self.matrices):
            key = (matrix.dir, matrix.mat)
            if key in seen or matrix.dir >= self.dirs:
                raise invalid(f"{path}.matrices[{m}]", f"a second or stray matrix {key}")
            seen.add(key)
        needed = [0, 1] + ([2] if self.split_gru else [])
        for d in range(self.dirs):
            for mat in needed:
                found = next((m for m in self.matrices if (m.dir, m.mat) == (d, mat)), None)
                if found is None or (found.rows, found.cols) != self.expected_shape(mat):
                    raise invalid(
                        f"{path}.matrices",
                        f"matrix {MATRICES[mat]} of direction {d} is missing or not "
                        f"{self.expected_shape(mat)}",
                    )

    @property
    def entries(self) -> int:
        return sum(m.entries for m in self.matrices)

    @property
    def fillers(self) -> int:
        return sum(m.fillers for m in self.matrices)
