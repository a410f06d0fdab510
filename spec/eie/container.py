"""EIE's part of the container header: its layer record (see spec/container.py).

One `eie.fc` layer: y = f(W·a + b) with W split into column blocks that each fit the PE
SRAMs; the sections of layer i are "L<i>.codebook", "L<i>.bias" and per block b
"L<i>.B<b>.ptr" and "L<i>.B<b>.spmat" (backends/eie/program.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from dlhwc.spec.container import ColumnBlock, Layer, check_tiling, register_layer_record
from dlhwc.spec.eie.isa import EIE_ISA
from dlhwc.spec.fixedpoint import FixedFormat
from dlhwc.spec.schema import field

_SHIFT = next(f for f in EIE_ISA.by_mnemonic["spmv"].fields if f.name == "shift")


@register_layer_record("eie")
@dataclass(kw_only=True)
class EIELayer(Layer):
    """A fully connected layer on EIE."""

    DOC_NAME = "EIELayer"

    rows: int = field("outputs: rows of W, interleaved over the PEs (row i on PE i mod N)", ge=1)
    cols: int = field("inputs: columns of W", ge=1)
    in_format: FixedFormat = field("the input activations' format (fa)")
    weight_format: FixedFormat = field("the codebook's format (fw)")
    out_format: FixedFormat = field("the output activations' format (fo = fa + fw - shift)")
    shift: int = field(
        "right shift of a finished sum to the output format", ge=_SHIFT.min, le=_SHIFT.max
    )
    relu: bool = field("whether the layer applies ReLU")
    bias: bool = field('whether the layer has a bias (section "L<i>.bias")')
    acc_reach_bits: int | None = field(
        "the bits (sign included) the accumulator needs for any input in in_format: the "
        "static reach (backends/eie/README.md, Numerics)",
        default=None,
        ge=1,
        omit_default=True,
    )
    blocks: list[ColumnBlock] = field("the column blocks, in column order")

    def check(self, path: str, context: dict) -> None:
        check_tiling(self.blocks, self.cols, f"{path}.blocks")

    @property
    def entries(self) -> int:
        return sum(sum(b.entries) for b in self.blocks)

    @property
    def fillers(self) -> int:
        return sum(sum(b.fillers) for b in self.blocks)
