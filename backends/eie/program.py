"""EIE back end: an `eie`-level module to a program container.

Placement: every `eie.fc` runs on the accelerator; every other op of `@main` (but the
constants and weights they use, and the `comp.quantize` ops that only convert host
values for the accelerator) runs on the host. Host ops are grouped into segments,
maximal runs of consecutive host ops in program order, each exported as an ONNX model.

Encoding (one column block at a time, see backends/encoding.py for the v/z format):
rows are interleaved over the PEs, and a layer whose PE share does not fit the
sparse-matrix SRAM (or whose columns need more pointers than the pointer SRAM holds) is
split into column blocks; each block is a separate weight load, and `spmv` accumulates
across blocks (`first` clears, `last` finishes). When all blocks of all layers fit the
SRAMs together, the weights are loaded once and stay resident across input vectors
(header `resident`); otherwise every vector reloads them, and the cost is counted.

The container header (runtime/container.py) holds:

    hw            the EIEConfig
    symbols       [{name, kind: input|output|transfer, shape (per vector), format}]
    layers        [{name, rows, cols, in_format, weight_format, out_format, shift, relu,
                    bias, nonzeros, blocks: [{col_start, col_end, entries, fillers}]}]
    host_segments [{name, inputs, outputs, ops, section}]
    resident      whether weights stay loaded across vectors
    placement     [{op, name, where}] in program order

Sections: "text" (uint64 words), "L<i>.codebook" (int16 codes), "L<i>.bias" (int64
codes at frac fa+fw), "L<i>.B<b>.ptr" (uint32 [pes, cols+1]), "L<i>.B<b>.spmat"
(uint8 entries v | z << index_bits, PE after PE), "host<s>" (an ONNX model).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, ModuleOp, StringAttr, TensorType
from xdsl.ir import Block, Operation, SSAValue

import compiler
from backends.eie.config import EIEConfig
from backends.eie.isa import EIE_ISA
from backends.encoding import SparseEncoding, encode_sparse
from backends.isa import IsaError
from compiler.errors import DlhwcError
from dialects import comp, eie
from dialects import onnx as onnx_d
from runtime.container import Container
from runtime.fixedpoint import FixedFormat, to_codes
from runtime.interpreters.interpreter import input_names, main_function, output_names

NUM_BUFFERS = 4
_DATA_OPS = (onnx_d.ConstantOp, comp.WeightOp, onnx_d.NoValueOp)


def build_program(module: ModuleOp, config: EIEConfig) -> Container:
    """The container of an `eie`-level module."""
    return _ProgramBuilder(module, config).run()


@dataclass
class _Symbol:
    name: str
    kind: str
    shape: list[int]
    format: FixedFormat | None

    def to_json(self) -> dict:
        fmt = None if self.format is None else [self.format.bits, self.format.frac]
        return {"name": self.name, "kind": self.kind, "shape": self.shape, "format": fmt}


@dataclass
class _Segment:
    ops: list[Operation] = field(default_factory=list)


class _ProgramBuilder:
    def __init__(self, module: ModuleOp, config: EIEConfig):
        self.module = module
        self.config = config
        self.fn = main_function(module)
        self.container = Container("eie")
        self.symbols: list[_Symbol] = []
        self.symbol_of: dict[SSAValue, int] = {}
        self.text: list[int] = []
        self.layers: list[dict] = []
        self.segments: list[dict] = []
        self.placement: list[dict] = []

    # -- symbols ---------------------------------------------------------------------

    def symbol(
        self, value: SSAValue, kind: str, fmt: FixedFormat | None, name: str | None = None
    ) -> int:
        if value in self.symbol_of:
            sym = self.symbols[self.symbol_of[value]]
            if kind == "output":
                sym.kind = "output"
                sym.name = name or sym.name
            return self.symbol_of[value]
        shape = _vector_shape(value)
        sym_name = name or value.name_hint or f"t{len(self.symbols)}"
        if any(s.name == sym_name for s in self.symbols):
            sym_name = f"{sym_name}.{len(self.symbols)}"
        self.symbols.append(_Symbol(sym_name, kind, shape, fmt))
        self.symbol_of[value] = len(self.symbols) - 1
        if len(self.symbols) > 256:
            raise DlhwcError("the program needs more than 256 symbols (the ISA's 8-bit field)")
        return len(self.symbols) - 1

    def emit(self, mnemonic: str, layer_name: str | None = None, **operands: int) -> None:
        try:
            self.text.append(EIE_ISA.encode(mnemonic, **operands))
        except IsaError as e:
            where = f"layer '{layer_name}': " if layer_name else ""
            raise DlhwcError(f"{where}the program cannot be encoded: {e}") from None

    # -- the program -----------------------------------------------------------------

    def run(self) -> Container:
        block = self.fn.body.block
        in_names, out_names = input_names(self.fn), output_names(self.fn)
        returned = list(block.last_op.operands)
        for arg, name in zip(block.args, in_names, strict=True):
            self.symbol(arg, "input", None, name)

        steps = self._steps(block)
        accel_users = self._accel_uses(steps)
        buffers: dict[SSAValue, int] = {}
        for index, step in enumerate(steps):
            if isinstance(step, eie.FCOp):
                self._fc(step, index, buffers, accel_users, returned)
            else:
                self._host_segment(step, returned)
        for value, name in zip(returned, out_names, strict=True):
            if isinstance(value.owner, eie.FCOp):
                sym = self.symbol(value, "output", value.owner.out_format.format, name)
                self.emit("dma.out", sym=sym, buf=buffers[value])
            else:
                self.symbol(value, "output", None, name)
        self.emit("end")
        self._write_header()
        return self.container

    def _steps(self, block: Block) -> list:
        """Accelerator ops and host segments, in program order."""
        steps: list = []
        for op in block.ops:
            if isinstance(op, func.ReturnOp) or isinstance(op, _DATA_OPS):
                continue
            if isinstance(op, eie.FCOp):
                steps.append(op)
                self.placement.append({"op": op.name, "name": op.layer_name or "", "where": "eie"})
                continue
            if isinstance(op, comp.QuantizeOp) and all(
                isinstance(u.operation, eie.FCOp) for u in op.output.uses
            ):
                continue  # converted to codes by the dma.in that feeds the accelerator
            if not steps or not isinstance(steps[-1], _Segment):
                steps.append(_Segment())
            steps[-1].ops.append(op)
            name = getattr(op, "node_name", None) or ""
            self.placement.append({"op": _op_label(op), "name": name, "where": "host"})
        return steps

    def _accel_uses(self, steps: list) -> dict[SSAValue, int]:
        """For each value an accelerator op reads, the index of the last step reading it."""
        last: dict[SSAValue, int] = {}
        for index, step in enumerate(steps):
            if isinstance(step, eie.FCOp):
                last[_accel_source(step.input)] = index
        return last

    def _fc(self, op: eie.FCOp, index: int, buffers: dict, accel_users: dict, returned) -> None:
        source = _accel_source(op.input)
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
        blocks = self.layers[layer]["blocks"]
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
        for value in [v for v, last in accel_users.items() if last == index]:
            if value in buffers and value not in returned:
                del buffers[value]

    def _free_buffer(self, buffers: dict, avoid: int | None = None) -> int:
        used = set(buffers.values()) | ({avoid} if avoid is not None else set())
        for b in range(NUM_BUFFERS):
            if b not in used:
                return b
        raise DlhwcError(
            f"the program needs more than {NUM_BUFFERS} live on-chip activation buffers"
        )

    # -- layers ----------------------------------------------------------------------

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
        if len(op.operands) > 2:
            bias_value = _constant_value(op.operands[2]).reshape(-1)
            bias = to_codes(bias_value, FixedFormat(cfg.acc_bits, fa.frac + fw.frac))
            self.container.add(f"L{index}.bias", bias.astype(np.int64))
        blocks = []
        for b, (start, end) in enumerate(_column_blocks(enc, cfg, op.layer_name)):
            ptr, spmat, entries, fillers = _block_images(enc, start, end, cfg)
            self.container.add(f"L{index}.B{b}.ptr", ptr)
            self.container.add(f"L{index}.B{b}.spmat", spmat)
            blocks.append(
                {"col_start": start, "col_end": end, "entries": entries, "fillers": fillers}
            )
        self.layers.append({
            "name": op.layer_name or f"fc{index}",
            "rows": rows,
            "cols": cols,
            "in_format": [fa.bits, fa.frac],
            "weight_format": [fw.bits, fw.frac],
            "out_format": [fo.bits, fo.frac],
            "shift": op.shift,
            "relu": bool(op.relu.value.data),
            "bias": len(op.operands) > 2,
            "nonzeros": int(enc.nonzeros),
            "blocks": blocks,
        })  # fmt: skip
        if len(self.layers) > 1 << 12:
            raise DlhwcError("the program has more layers than the ISA's 12-bit layer field")
        return index

    # -- host segments ---------------------------------------------------------------

    def _host_segment(self, segment: _Segment, returned: list[SSAValue]) -> None:
        from compiler.frontend.onnx_exporter import export_module

        ops = segment.ops
        inside = {r for op in ops for r in op.results}
        inputs: list[SSAValue] = []
        for op in ops:
            for v in op.operands:
                if v not in inside and v not in inputs and not isinstance(v.owner, _DATA_OPS):
                    inputs.append(v)
        outputs = [
            r for op in ops for r in op.results
            if r.uses and any(_outside(u.operation, ops) for u in r.uses)
        ]  # fmt: skip
        in_syms = []
        for v in inputs:
            owner = v.owner
            if isinstance(owner, eie.FCOp):
                kind, fmt = "transfer", owner.out_format.format
            elif isinstance(owner, comp.QuantizeOp):
                kind, fmt = "transfer", None
            else:
                kind, fmt = ("input" if isinstance(owner, Block) else "transfer"), None
            in_syms.append(self.symbol(v, kind, fmt))
        out_syms = [
            self.symbol(v, "output" if v in returned else "transfer", None) for v in outputs
        ]
        index = len(self.segments)
        # The float form of comp.quantize: onnxruntime rewrites Q/DQ pairs by default.
        module = self._segment_module(ops, inputs, outputs, in_syms, out_syms)
        model = export_module(module, quantize_as="float")
        self.container.add(f"host{index}", np.frombuffer(model.SerializeToString(), dtype=np.uint8))
        self.segments.append({
            "name": f"host{index}",
            "inputs": in_syms,
            "outputs": out_syms,
            "ops": [_op_label(op) for op in ops],
            "section": f"host{index}",
        })  # fmt: skip
        self.emit("host", seg=index)

    def _segment_module(self, ops, inputs, outputs, in_syms, out_syms) -> ModuleOp:
        """A module whose @main runs ``ops`` from ``inputs`` to ``outputs``."""
        mapping: dict[SSAValue, SSAValue] = {}
        fn = func.FuncOp(
            "main",
            ([v.type for v in inputs], [v.type for v in outputs]),
            arg_attrs=ArrayAttr([_name_attr(self.symbols[s].name) for s in in_syms]),
            res_attrs=ArrayAttr([_name_attr(self.symbols[s].name) for s in out_syms]),
        )
        body = fn.body.block
        for v, arg in zip(inputs, body.args, strict=True):
            mapping[v] = arg
        for op in ops:
            for v in op.operands:
                if v not in mapping and isinstance(v.owner, _DATA_OPS):
                    clone = v.owner.clone()
                    body.add_op(clone)
                    mapping[v] = clone.results[0]
            clone = op.clone(value_mapper=mapping)
            body.add_op(clone)
            for old, new in zip(op.results, clone.results, strict=True):
                mapping[old] = new
        body.add_op(func.ReturnOp(*[mapping[v] for v in outputs]))
        return ModuleOp([fn], attributes=dict(self.module.attributes))

    # -- header ----------------------------------------------------------------------

    def _write_header(self) -> None:
        cfg = self.config
        per_pe_entries = sum(
            max(b["entries"]) for layer in self.layers for b in layer["blocks"]
        ) if self.layers else 0  # fmt: skip
        per_pe_ptrs = sum(
            b["col_end"] - b["col_start"] + 1 for layer in self.layers for b in layer["blocks"]
        )
        resident = per_pe_entries <= cfg.spmat_capacity and per_pe_ptrs <= cfg.ptr_capacity
        self.container.add("text", np.array(self.text, dtype=np.uint64))
        self.container.header = {
            "producer": f"dlhwc {compiler.__version__}",
            "hw": cfg.to_dict(),
            "symbols": [s.to_json() for s in self.symbols],
            "layers": self.layers,
            "host_segments": self.segments,
            "resident": resident,
            "placement": self.placement,
        }


def _column_blocks(enc: SparseEncoding, cfg: EIEConfig, name: str | None) -> list[tuple[int, int]]:
    """Split the columns so each block's PE share fits the SRAMs (greedy, in order)."""
    blocks, start = [], 0
    max_cols = cfg.ptr_capacity - 1
    while start < enc.cols:
        base = enc.pointers[:, start : start + 1]
        # Per PE, the last column end whose entries still fit.
        fits = np.array(
            [
                np.searchsorted(enc.pointers[k], base[k, 0] + cfg.spmat_capacity, side="right") - 1
                for k in range(enc.pes)
            ]  # fmt: skip
        )
        end = min(int(fits.min()), start + max_cols, enc.cols)
        if end <= start:
            need = int((enc.pointers[:, start + 1] - enc.pointers[:, start]).max())
            raise DlhwcError(
                f"layer '{name}': column {start} alone needs {need} entries on one PE; the "
                f"sparse-matrix SRAM holds {cfg.spmat_capacity}"
            )
        blocks.append((start, end))
        start = end
    return blocks or [(0, 0)]


def _block_images(enc: SparseEncoding, start: int, end: int, cfg: EIEConfig):
    """Pointer and sparse-matrix SRAM images of columns start..end-1, PE after PE."""
    ptr = enc.pointers[:, start : end + 1] - enc.pointers[:, start : start + 1]
    counts = ptr[:, -1]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    first = enc.pe_offsets[:-1] + enc.pointers[:, start]  # each PE's block start in v/z
    idx = np.repeat(first - offsets[:-1], counts) + np.arange(offsets[-1])
    spmat = (enc.v[idx] | (enc.z[idx] << cfg.index_bits)).astype(np.uint8)
    pe = np.repeat(np.arange(enc.pes), counts)
    fillers = np.bincount(pe, weights=enc.filler[idx], minlength=enc.pes).astype(int)
    return ptr.astype(np.uint32), spmat, counts.astype(int).tolist(), fillers.tolist()


def _accel_source(value: SSAValue) -> SSAValue:
    """The value the host provides for an accelerator input (before its dma.in conversion)."""
    owner = value.owner
    if isinstance(owner, comp.QuantizeOp) and all(
        isinstance(u.operation, eie.FCOp) for u in owner.output.uses
    ):
        return owner.input
    return value


def _outside(op: Operation, ops: list[Operation]) -> bool:
    return op not in ops


def _vector_shape(value: SSAValue) -> list[int]:
    typ = value.type
    if not isinstance(typ, TensorType):
        raise DlhwcError(
            f"value {value.name_hint or ''} is not a tensor; it cannot cross to the accelerator"
        )
    shape = list(typ.get_shape())
    if not shape:
        return []
    rest = shape[1:]
    if any(d < 0 for d in rest):
        raise DlhwcError(
            f"value '{value.name_hint}' has a dynamic dimension past the batch: {typ}; "
            "host/accelerator transfers need static vector shapes"
        )
    return rest


def _constant_value(value: SSAValue) -> np.ndarray:
    owner = value.owner
    if isinstance(owner, comp.WeightOp):
        return owner.dense()
    return np.asarray(owner.to_array(), dtype=np.float32)


def _name_attr(name: str) -> DictionaryAttr:
    return DictionaryAttr({"onnx.name": StringAttr(name)})


def _op_label(op: Operation) -> str:
    if isinstance(op, onnx_d.OnnxOp):
        domain = op.onnx_domain
        return f"{domain}:{op.onnx_type}" if domain else op.onnx_type
    return op.name
