"""huffman: optimal prefix codes for the index and relative-position streams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, cast

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import DenseArrayBase, IntegerAttr, ModuleOp, i64
from xdsl.passes import ModulePass

from dlhwc.compiler.compression.huffman import code_lengths
from dlhwc.compiler.passes.weights import WeightSlot, find_weights
from dlhwc.dialects import comp
from dlhwc.spec.encoding import StreamStats, stream_stats
from dlhwc.spec.errors import DlhwcError


def index_bits_of(weight: comp.WeightOp) -> int:
    """The width of a shared weight's codebook indices (its `index_bits`, else from k)."""
    if weight.index_bits is not None:
        return weight.index_bits.value.data
    k = len(weight.codebook) if weight.codebook is not None else 1
    return max(1, (k - 1).bit_length())


def weight_streams(slot: WeightSlot, pes: int, run_bits: int) -> StreamStats:
    """Encode a matrix slot's comp.weight (every matrix of its stack) and count its streams.

    For a weight that is pruned but not shared the index stream is all zeros (only the
    entry count and the position stream are meaningful).
    """
    weight = slot.source
    if not isinstance(weight, comp.WeightOp):
        raise TypeError("weight_streams needs a slot fed by a comp.weight")
    mask = slot.to_rows(weight.mask_array())
    if weight.is_shared:
        # A verified comp.weight with a codebook has indices.
        indices = slot.to_rows(cast(np.ndarray, weight.indices_array()))
        symbols = 1 << index_bits_of(weight)
    else:
        indices, symbols = None, 1
    return stream_stats(mask, indices, pes, run_bits, symbols)


def shared_matrix_slots(module: ModuleOp) -> list[WeightSlot]:
    """Matrix slots fed by a shared comp.weight, one per weight (first use wins)."""
    slots, seen = [], set()
    for slot in find_weights(module, role="matrix"):
        src = slot.source
        if isinstance(src, comp.WeightOp) and src.is_shared and id(src) not in seen:
            seen.add(id(src))
            slots.append(slot)
    return slots


@dataclass(frozen=True)
class HuffmanPass(ModulePass):
    """Huffman-code the two symbol streams of every shared weight (Deep Compression's H).

    Every matrix of a weight that share-weights turned into codebook indices is encoded
    in the EIE relative-index format (spec/encoding.py): rows interleaved over `pes`
    PEs, each PE's rows stored column by column as entries (v, z) with v the codebook
    index and z the zeros before it (at most 2^run-bits - 1; longer gaps insert filler
    entries with v = 0). The pass counts the symbols of the index stream (v, fillers
    included) and of the relative-position stream (z) over all matrices of the weight
    (e.g. both LSTM directions), computes optimal prefix-code lengths, and stores them
    on the comp.weight:

        index_code  code length of each index symbol 0 .. 2^index_bits - 1 (0: unused)
        run_code    code length of each run length 0 .. 2^run-bits - 1 (so run-bits is
                    log2 of its size)
        pes         the row interleaving the runs were counted for

    The codes are canonical, so the lengths determine them. The weights' values are not
    changed. The model must have shared weights (run share-weights first); weights that
    are not shared are left as they are.
    """

    name: ClassVar[str] = "huffman"

    pes: int = 1
    run_bits: int = 4

    def __post_init__(self):
        if self.pes < 1:
            raise ValueError(f"pes must be at least 1, not {self.pes}")
        if not 1 <= self.run_bits <= 8:
            raise ValueError(f"run-bits must be within 1..8, not {self.run_bits}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        slots = shared_matrix_slots(op)
        if not slots:
            raise DlhwcError("huffman needs share-weights first")
        for slot in slots:
            weight = slot.source
            stats = weight_streams(slot, self.pes, self.run_bits)
            props = dict(weight.properties)
            props["index_code"] = _lengths_attr(code_lengths(stats.index_counts))
            props["run_code"] = _lengths_attr(code_lengths(stats.run_counts))
            props["pes"] = IntegerAttr(self.pes, i64)
            # sorted by name, as comp.WeightOp builds them, so printing is canonical
            weight.properties.clear()
            weight.properties.update(sorted(props.items()))


def _lengths_attr(lengths: np.ndarray) -> DenseArrayBase:
    return DenseArrayBase.from_list(i64, [int(n) for n in lengths])


def stored_code(weight: comp.WeightOp) -> tuple[np.ndarray, np.ndarray, int] | None:
    """A weight's stored Huffman code: (index lengths, run lengths, pes), if it has one."""
    if weight.index_code is None or weight.run_code is None:
        return None
    pes = weight.pes.value.data if weight.pes is not None else 1
    return (
        np.array(weight.index_code.get_values(), dtype=np.int64),
        np.array(weight.run_code.get_values(), dtype=np.int64),
        pes,
    )
