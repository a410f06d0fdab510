"""EIE back end: an `eie`-level module to a program container.

Placement: every `eie.fc` runs on the accelerator; every other op of `@main` (but the
constants and weights they use, and the `comp.quantize` ops that only convert host
values for the accelerator) runs on the host. Host ops are grouped into segments,
maximal runs of consecutive host ops in program order, each exported as an ONNX model.
Placement, host segments, symbols, column blocks and the common header fields are
shared with the other targets (backends/program.py); this file lowers `eie.fc`.

Encoding (one column block at a time, see spec/encoding.py for the v/z format):
rows are interleaved over the PEs, and a layer whose PE share does not fit the
sparse-matrix SRAM (or whose columns need more pointers than the pointer SRAM holds) is
split into column blocks; each block is a separate weight load, and `spmv` accumulates
across blocks (`first` clears, `last` finishes). When all blocks of all layers fit the
SRAMs together, the weights are loaded once and stay resident across input vectors
(header `resident`); otherwise every vector reloads them, and the cost is counted.

The container header holds the common fields (backends/program.py) and EIE's layer
table, one `EIELayer` record per layer (spec/eie/container.py) with its column blocks,
and `resident`; the tables are in backends/eie/README.md, "Container layout".

Sections: "text" (uint64 words), "L<i>.codebook" (int16 codes), "L<i>.bias" (int64
codes at frac fa+fw), "L<i>.B<b>.ptr" (uint32 [pes, cols+1]), "L<i>.B<b>.spmat"
(uint8 entries v | z << index_bits, PE after PE), "host<s>" (an ONNX model).
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, SSAValue

from dlhwc.backends.program import ProgramBuilder, block_images, column_blocks, constant_value
from dlhwc.dialects import eie
from dlhwc.spec.container import ColumnBlock, Container
from dlhwc.spec.eie.config import EIEConfig
from dlhwc.spec.eie.container import EIELayer
from dlhwc.spec.eie.isa import EIE_ISA
from dlhwc.spec.encoding import encode_sparse
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.fixedpoint import FixedFormat, to_codes

NUM_BUFFERS = 4


def build_program(module: ModuleOp, config: EIEConfig) -> Container:
    """The container of an `eie`-level module."""
    return _ProgramBuilder(module, config).run()


class _ProgramBuilder(ProgramBuilder):
    target = "eie"
    isa = EIE_ISA
    accel_ops = (eie.FCOp,)

    def __init__(self, module: ModuleOp, config: EIEConfig):
        super().__init__(module, config)
        self.layers: list[EIELayer] = []
        self.buffers: dict[SSAValue, int] = {}
        self.accel_users: dict[SSAValue, int] = {}
        self.copied_out: set[SSAValue] = set()  # results already moved to the host

    # -- hooks of ProgramBuilder -------------------------------------------------------

    def prepare(self, steps: list) -> None:
        """For each value an accelerator op reads, the index of the last step reading it."""
        for index, step in enumerate(steps):
            if isinstance(step, eie.FCOp):
                self.accel_users[self.accel_source(step.input)] = index

    def result_format(self, value: SSAValue) -> FixedFormat:
        return value.owner.out_format.format

    def time_axis(self, value: SSAValue) -> int | None:
        """A token-wise layer's tensors [batch, tokens, ..., features] may have a dynamic
        number of tokens (a Transformer's sequence length): the first per-vector axis."""
        typ = value.type
        return 0 if getattr(typ, "get_shape", None) and len(typ.get_shape()) >= 3 else None

    def output_from_accel(self, value: SSAValue, name: str) -> None:
        sym = self.symbol(value, "output", value.owner.out_format.format, name)
        if value not in self.copied_out:  # a host segment's input too: moved already
            self.emit("dma.out", sym=sym, buf=self.buffers[value])

    def header(self) -> dict[str, list[EIELayer] | bool]:
        cfg = self.config
        per_pe_entries = sum(
            max(b.entries) for layer in self.layers for b in layer.blocks
        ) if self.layers else 0  # fmt: skip
        per_pe_ptrs = sum(b.ncols + 1 for layer in self.layers for b in layer.blocks)
        resident = per_pe_entries <= cfg.spmat_entries and per_pe_ptrs <= cfg.ptr_capacity
        return {"layers": self.layers, "resident": resident}

    # -- eie.fc ------------------------------------------------------------------------

    def lower(self, op: eie.FCOp, index: int, steps: list) -> None:
        buffers, accel_users, returned = self.buffers, self.accel_users, self.returned
        source = self.accel_source(op.input)
        if source not in buffers:
            fmt = op.in_format.format
            kind = "input" if isinstance(source.owner, Block) else "transfer"
            sym = self.symbol(source, kind, fmt)
            if self.symbols[sym].format is None:
                self.symbols[sym].format = fmt
            elif self.symbols[sym].format != fmt:
                raise DlhwcError(f"layer '{op.layer_name}': its input is used in two formats")
            buffers[source] = self._free_buffer(buffers)
            self.emit("dma.in", sym=sym, buf=buffers[source])
        src = buffers[source]
        dst = self._free_buffer(buffers, avoid=src)
        layer = self._layer(op)
        blocks = self.layers[layer].blocks
        for b in range(len(blocks)):
            self.emit("load", layer=layer, block=b)
            self.emit(
                "spmv", op.layer_name, layer=layer, block=b, src=src, dst=dst, first=int(b == 0),
                last=int(b == len(blocks) - 1), bias=int(len(op.operands) > 2),
                relu=int(op.relu.value.data), shift=op.shift,
            )  # fmt: skip
        buffers[op.output] = dst
        if any(not isinstance(u.operation, eie.FCOp) for u in op.output.uses) and not (
            op.output in returned
            and all(isinstance(u.operation, eie.FCOp | func.ReturnOp) for u in op.output.uses)
        ):
            sym = self.symbol(op.output, "transfer", op.out_format.format)
            self.emit("dma.out", sym=sym, buf=dst)
            self.copied_out.add(op.output)
        for value in [v for v, last in accel_users.items() if last == index]:
            if value in buffers and value not in returned:
                del buffers[value]
        if op.output not in accel_users and op.output not in returned:
            # Read by no later layer (only by the host, through the dma.out above): its
            # buffer is free again, or a program with many such layers runs out of them.
            del buffers[op.output]

    def _free_buffer(self, buffers: dict, avoid: int | None = None) -> int:
        used = set(buffers.values()) | ({avoid} if avoid is not None else set())
        for b in range(NUM_BUFFERS):
            if b not in used:
                return b
        raise DlhwcError(
            f"the program needs more than {NUM_BUFFERS} live on-chip activation buffers"
        )

    def _layer(self, op: eie.FCOp) -> int:
        cfg = self.config
        w = op.weight_op
        rows, cols = w.shape
        if cols > cfg.act_capacity or -(-rows // cfg.num_pes) * cfg.num_pes > cfg.act_capacity:
            raise DlhwcError(
                f"layer '{op.layer_name}': {cols} inputs and {rows} outputs; the activation "
                f"register files and SRAM hold vectors of at most {cfg.act_capacity} elements"
            )
        enc = encode_sparse(w.mask_array(), w.indices_array(), cfg.num_pes, cfg.run_bits)
        fw = w.fixed_format
        fa, fo = op.in_format.format, op.out_format.format
        index = len(self.layers)
        codebook = to_codes(w.codebook_array(), fw).astype(np.int16)
        codebook = np.concatenate(
            [codebook, np.zeros(cfg.codebook_entries - len(codebook), np.int16)]
        )
        self.container.add(f"L{index}.codebook", codebook)
        bias = None
        if op.bias is not None:
            bias_value = constant_value(op.bias).reshape(-1)
            bias = to_codes(bias_value, FixedFormat(cfg.acc_bits, fa.frac + fw.frac))
            self.container.add(f"L{index}.bias", bias.astype(np.int64))
        reach = accumulator_reach_bits(w.mask_array(), w.indices_array(), codebook, bias, fa)
        blocks = []
        spans = column_blocks(enc, cfg.spmat_capacity, cfg.ptr_capacity, op.layer_name)
        for b, (start, end) in enumerate(spans):
            ptr, spmat, entries, fillers = block_images(
                enc, start, end, enc.v, cfg.index_bits, np.uint8
            )
            self.container.add(f"L{index}.B{b}.ptr", ptr)
            self.container.add(f"L{index}.B{b}.spmat", spmat)
            blocks.append(ColumnBlock(col_start=start, col_end=end, entries=entries,
                                      fillers=fillers))  # fmt: skip
        self.layers.append(EIELayer(
            name=op.layer_name or f"fc{index}",
            rows=rows,
            cols=cols,
            in_format=fa,
            weight_format=fw,
            out_format=fo,
            shift=op.shift,
            relu=bool(op.relu.value.data),
            bias=len(op.operands) > 2,
            nonzeros=int(enc.nonzeros),
            acc_reach_bits=reach,
            blocks=blocks,
        ))  # fmt: skip
        if len(self.layers) > 1 << 12:
            raise DlhwcError("the program has more layers than the ISA's 12-bit layer field")
        return index


def accumulator_reach_bits(
    mask: np.ndarray,
    indices: np.ndarray,
    codebook: np.ndarray,
    bias: np.ndarray | None,
    in_format: FixedFormat,
) -> int:
    """The bits (sign included) a layer's accumulator needs for any input in
    ``in_format``: max over rows of sum_c |W code| * max|a code| + |bias code|, counted
    over the kept entries only. The lowering keeps layers whose reach exceeds `acc_bits`
    exact by the output bound (backends/eie/README.md, "Numerics")."""
    rows = mask.shape[0]
    magnitude = np.abs(codebook.astype(np.int64)).astype(np.float64)
    sums = np.zeros(rows, dtype=np.float64)
    step = max(1, (1 << 22) // max(mask.shape[1], 1))
    for r0 in range(0, rows, step):  # a block of rows at a time: no [rows, cols] floats
        part = np.where(mask[r0 : r0 + step], magnitude[indices[r0 : r0 + step]], 0.0)
        sums[r0 : r0 + step] = part.sum(axis=1)
    reach = sums * float(-in_format.qmin)
    if bias is not None:
        reach = reach + np.abs(bias.astype(np.float64))
    largest = float(reach.max(initial=0.0))
    return int(np.ceil(np.log2(largest + 1.0))) + 1 if largest > 0 else 1
