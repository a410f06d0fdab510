"""What every back end does the same way: placement, host segments, symbols, sparse images.

A target's back end (backends/<target>/program.py) subclasses `ProgramBuilder` and
writes only what is its own: how an accelerator op becomes instructions and sections,
and its part of the header. Everything else is here:

- placement: the target's ops run on the accelerator; every other op of `@main` (but the
  constants and weights they use, and the `comp.quantize` ops that only convert host
  values for the accelerator, which the `dma.in` feeding it does) runs on the host;
- host segments: maximal runs of consecutive host ops in program order, each exported
  as an ONNX model (section "host<s>") that reads and writes symbols;
- the symbol table: the tensors that cross between host and accelerator, with their
  per-vector shapes (the batch axis removed) and fixed-point formats;
- column blocks and the per-PE images of one matrix in the relative-index format
  (spec/encoding.py), with the entry packing a parameter (EIE: codebook index and z
  in 8 bits; ESE: 12-bit weight and z in 16 bits);
- the header fields every container has: producer, hw, symbols, host_segments,
  placement, summary.

The header is built from its typed records (spec/container.py: `Header`, `Symbol`,
`HostSegment`, `Placement`, `Summary`; the target's layer record in
spec/<target>/container.py) and written as their JSON. A symbol's `batch_axis` is not 0
when the batch is not the first axis of the host tensor (an ONNX LSTM's X [seq, batch,
input]) and null for a program input that carries no batch (a scalar, a weight fed as an
input, a tensor only the host reads whose batch axis cannot be told): it is passed to the
host as it is (see `host_batch_axis`). Kinds are input, output, transfer (host <->
accelerator within the program) and constant (a tensor of the model fed to the
accelerator, e.g. an initial state; its host values, the whole tensor with its batch
axis, are the section named by the symbol's `section`).
"""

from __future__ import annotations

import math

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Block, Operation, SSAValue

from dlhwc import compiler
from dlhwc.compiler.functions import input_names, main_function, output_names
from dlhwc.compiler.interpreters.segments import DATA_OPS, Segment, partition, segment_module
from dlhwc.dialects import comp
from dlhwc.dialects import onnx as onnx_d
from dlhwc.dialects.onnx import HOST_REASON
from dlhwc.spec.container import Container, Header, HostSegment, Layer, Placement, Summary, Symbol
from dlhwc.spec.encoding import SparseEncoding
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.fixedpoint import FixedFormat
from dlhwc.spec.isa import IsaError, IsaTable

MAX_SYMBOLS = 256
"""The ISAs' 8-bit `sym` fields."""


class ProgramBuilder:
    """Builds one container from a target-level module; subclasses lower the target's ops.

    Subclass hooks:
        accel_ops       the op classes that run on the accelerator
        prepare(steps)  look at the whole program first (accelerator ops and Segments)
        lower(op, index, steps)
                        emit the instructions and sections of one accelerator op
        output_from_accel(value, name)
                        a program output produced by an accelerator op (emit its dma.out)
        result_format(value)
                        the fixed-point format of an accelerator op's result on the host
        batch_axis(value), time_axis(value)
                        where a crossing tensor keeps its batch (default 0), and which of
                        its per-vector dimensions may be dynamic (default none)
        header()        the target's own header fields (layers, resident, ...) as typed
                        values (its layer records), by Header field name
        placement_name(op)
                        the name shown for an accelerator op in the placement list
    """

    target: str
    isa: IsaTable
    accel_ops: tuple[type[Operation], ...]

    def __init__(self, module: ModuleOp, config):
        self.module = module
        self.config = config
        self.fn = main_function(module)
        self.container = Container(self.target)
        self.symbols: list[Symbol] = []
        self.symbol_of: dict[SSAValue, int] = {}
        self.text: list[int] = []
        self.segments: list[HostSegment] = []
        self.placement: list[Placement] = []
        self.returned: list[SSAValue] = []

    # -- hooks -----------------------------------------------------------------------

    def prepare(self, steps: list) -> None:
        """Called once with the accelerator ops and host segments, before lowering."""

    def lower(self, op: Operation, index: int, steps: list) -> None:
        raise NotImplementedError

    def output_from_accel(self, value: SSAValue, name: str) -> None:
        raise NotImplementedError

    def result_format(self, value: SSAValue) -> FixedFormat | None:
        raise NotImplementedError

    def header(self) -> dict[str, list[Layer] | bool]:
        raise NotImplementedError

    def batch_axis(self, value: SSAValue) -> int:
        """The axis of ``value`` that holds the batch: its first dynamic dimension (the
        importer keeps a symbolic batch as `?`), else 0. Targets that know better (ESE's
        sequence-first tensors) override it."""
        if isinstance(value.type, TensorType):
            for axis, dim in enumerate(value.type.get_shape()):
                if dim < 0:
                    return axis
        return 0

    def time_axis(self, value: SSAValue) -> int | None:
        """The per-vector dimension of ``value`` that may be dynamic (a sequence's length)."""
        return None

    def touches_accel(self, value: SSAValue) -> bool:
        """Whether an accelerator op produces ``value`` or reads it (through the
        conversion its dma.in does)."""
        if isinstance(value.owner, Operation) and self.is_accel(value.owner):
            return True
        return any(self.is_accel(u.operation) or self.is_conversion(u.operation)
                   for u in value.uses)  # fmt: skip

    def host_batch_axis(self, value: SSAValue) -> int | None:
        """The batch axis of a tensor only the host reads and writes, or None: it carries
        no batch and passes as it is (program inputs are then not counted for the batch).

        A scalar is whole; in a model with a symbolic batch, so is a tensor none of whose
        dimensions is dynamic (a weight or table fed as an input); in a model with a
        static batch, a tensor whose first dimension is not that batch (read off the
        accelerator's inputs). One dynamic dimension is the batch. With several
        ([T, B, F] sequences), the batch axis is the one the accelerator's inputs of the
        same rank agree on (ESE's sequences), else the tensor is whole.
        """
        shape = list(value.type.get_shape())
        if not shape:
            return None
        dynamic = [i for i, d in enumerate(shape) if d < 0]
        if not dynamic:
            if any(_is_dynamic(a.type) for a in self.fn.body.block.args):
                return None
            batches = {s[a] for v, a, s in self._accel_inputs() if a < len(s) and s[a] >= 0}
            return None if len(batches) == 1 and shape[0] not in batches else 0
        if len(dynamic) == 1:
            return dynamic[0]
        axes = {a for v, a, s in self._accel_inputs() if len(s) == len(shape)}
        return axes.pop() if len(axes) == 1 else None

    def _accel_inputs(self) -> list[tuple[SSAValue, int, list[int]]]:
        """(value, batch axis, shape) of every tensor the host gives an accelerator op."""
        found = []
        for op in self.fn.body.block.ops:
            if not self.is_accel(op):
                continue
            for v in op.operands:
                v = self.accel_source(v)
                if isinstance(v.owner, DATA_OPS) or not isinstance(v.type, TensorType):
                    continue
                found.append((v, self.batch_axis(v), list(v.type.get_shape())))
        return found

    def placement_name(self, op: Operation) -> str:
        return getattr(op, "layer_name", None) or ""

    # -- the program -----------------------------------------------------------------

    def is_accel(self, op: Operation) -> bool:
        return isinstance(op, self.accel_ops)

    def run(self) -> Container:
        block = self.fn.body.block
        in_names, out_names = input_names(self.fn), output_names(self.fn)
        self.returned = list(block.last_op.operands)
        steps = self.steps(block)
        self.prepare(steps)
        for arg, name in zip(block.args, in_names, strict=True):
            self.symbol(arg, "input", None, name, dtype=_dtype_name(arg))
        for index, step in enumerate(steps):
            if isinstance(step, Segment):
                self.host_segment(step)
            else:
                self.lower(step, index, steps)
        for value, name in zip(self.returned, out_names, strict=True):
            if self.is_accel(value.owner):
                self.output_from_accel(value, name)
            else:
                self.symbol(value, "output", None, name)
        self.emit("end")
        self.write_header()
        return self.container

    def steps(self, block: Block) -> list:
        """Accelerator ops and host segments, in program order (records the placement)."""
        steps = partition(block, self.is_accel, skip=self.is_conversion)
        for step in steps:
            for op in step.ops if isinstance(step, Segment) else [step]:
                if op is step:
                    name = self.placement_name(op)
                    self.placement.append(Placement(op=op.name, name=name, where=self.target))
                    continue
                reason = op.attributes.get(HOST_REASON)
                self.placement.append(
                    Placement(op=op_label(op), name=getattr(op, "node_name", None) or "",
                              where="host", reason=None if reason is None else reason.data)
                )  # fmt: skip
        return steps

    def is_conversion(self, op: Operation) -> bool:
        """A comp.quantize read only by accelerator ops: its dma.in does the conversion."""
        return isinstance(op, comp.QuantizeOp) and all(
            self.is_accel(u.operation) for u in op.output.uses
        )

    def accel_source(self, value: SSAValue) -> SSAValue:
        """The value the host provides for an accelerator input (before its dma.in conversion)."""
        owner = value.owner
        if isinstance(owner, Operation) and self.is_conversion(owner):
            return owner.input
        return value

    # -- symbols ---------------------------------------------------------------------

    def symbol(
        self,
        value: SSAValue,
        kind: str,
        fmt: FixedFormat | None,
        name: str | None = None,
        dtype: str = "float32",
    ) -> int:
        """The index of ``value``'s symbol, created on first use.

        A symbol made an output later (a transfer that is also returned) takes the
        output's name. The batch axis comes from `batch_axis(value)`.
        """
        if value in self.symbol_of:
            sym = self.symbols[self.symbol_of[value]]
            if kind == "output":
                sym.kind = "output"
                if name and name != sym.name:
                    # The program's interface keeps its names: a transfer that took the
                    # output's name (a value with the same name hint) gives it up.
                    for i, other in enumerate(self.symbols):
                        if other.name == name:
                            other.name = f"{name}.{i}"
                    sym.name = name
            return self.symbol_of[value]
        if isinstance(value.type, TensorType) and not self.touches_accel(value):
            # Only the host reads and writes it: its shape may stay dynamic.
            axis = self.host_batch_axis(value)
            dims = [max(d, -1) for d in value.type.get_shape()]
            shape = dims if axis is None else dims[:axis] + dims[axis + 1 :]
        elif isinstance(value.type, TensorType):
            axis = self.batch_axis(value)
            shape = self.vector_shape(value, axis)
        elif kind == "input" or self.is_accel(value.owner):
            raise DlhwcError(
                f"value {value.name_hint or ''} is not a tensor; it cannot cross to the accelerator"
            )
        else:
            # A host value that is not a tensor (a ZipMap's sequence of maps): it only
            # passes through host memory, from a host segment to the program's outputs.
            axis, shape, dtype = 0, [], "object"
        sym_name = name or value.name_hint or f"t{len(self.symbols)}"
        if any(s.name == sym_name for s in self.symbols):
            sym_name = f"{sym_name}.{len(self.symbols)}"
        self.symbols.append(Symbol(name=sym_name, kind=kind, shape=tuple(shape), format=fmt,
                                   batch_axis=axis, dtype=dtype))  # fmt: skip
        self.symbol_of[value] = len(self.symbols) - 1
        if len(self.symbols) > MAX_SYMBOLS:
            raise DlhwcError(
                f"the program needs more than {MAX_SYMBOLS} symbols (the ISA's 8-bit field)"
            )
        return len(self.symbols) - 1

    def constant_symbol(self, value: SSAValue, fmt: FixedFormat | None) -> int:
        """The symbol of a constant operand of an accelerator op (kind "constant")."""
        if value in self.symbol_of:
            return self.symbol_of[value]
        array = (
            constant_value(value)
            if not isinstance(value.owner, onnx_d.ConstantOp)
            else (np.asarray(value.owner.to_array()))
        )
        index = self.symbol(value, "constant", fmt, dtype=str(array.dtype))
        sym = self.symbols[index]
        sym.section = f"const{index}"
        self.container.add(sym.section, array)
        return index

    def vector_shape(self, value: SSAValue, axis: int) -> list[int]:
        """The shape of one vector of ``value``: its tensor shape without the batch axis.

        Static, but for the dimension `time_axis(value)` names, which may be -1 (a
        sequence whose length is known when the program runs).
        """
        typ = value.type
        if not isinstance(typ, TensorType):
            raise DlhwcError(
                f"value {value.name_hint or ''} is not a tensor; it cannot cross to the accelerator"
            )
        shape = list(typ.get_shape())
        if not shape:
            return []
        if axis >= len(shape):
            raise DlhwcError(f"value '{value.name_hint}' has no batch axis {axis}: {typ}")
        rest = shape[:axis] + shape[axis + 1 :]
        free = self.time_axis(value)
        if any(d < 0 for i, d in enumerate(rest) if i != free):
            raise DlhwcError(
                f"value '{value.name_hint}' has a dynamic dimension past the batch: {typ}; "
                "host/accelerator transfers need static vector shapes"
            )
        return [max(d, -1) for d in rest]

    def emit(self, mnemonic: str, layer_name: str | None = None, **operands: int) -> None:
        try:
            self.text.append(self.isa.encode(mnemonic, **operands))
        except IsaError as e:
            where = f"layer '{layer_name}': " if layer_name else ""
            raise DlhwcError(f"{where}the program cannot be encoded: {e}") from None

    # -- host segments ---------------------------------------------------------------

    def host_segment(self, segment: Segment) -> None:
        """Export the segment as an ONNX model and emit its `host` instruction."""
        from dlhwc.compiler.frontend.onnx_exporter import export_module

        ops = segment.ops
        inputs, outputs = segment.boundary()
        in_syms = []
        for v in inputs:
            owner = v.owner
            if isinstance(owner, Block):
                kind, fmt = "input", None
            elif self.is_accel(owner):
                kind, fmt = "transfer", self.result_format(v)
            else:
                kind, fmt = "transfer", None
            in_syms.append(self.symbol(v, kind, fmt, dtype=_dtype_name(v)))
        out_syms = [
            self.symbol(v, "output" if v in self.returned else "transfer", None,
                        dtype=_dtype_name(v))
            for v in outputs
        ]  # fmt: skip
        index = len(self.segments)
        # The float form of comp.quantize: onnxruntime rewrites Q/DQ pairs by default.
        module = self.segment_module(ops, inputs, outputs, in_syms, out_syms)
        model = export_module(module, quantize_as="float")
        self.container.add(f"host{index}", np.frombuffer(model.SerializeToString(), dtype=np.uint8))
        self.segments.append(HostSegment(name=f"host{index}", inputs=in_syms, outputs=out_syms,
                                         ops=[op_label(op) for op in ops],
                                         section=f"host{index}"))  # fmt: skip
        self.emit("host", seg=index)

    def segment_module(self, ops, inputs, outputs, in_syms, out_syms) -> ModuleOp:
        """A module whose @main runs ``ops`` from ``inputs`` to ``outputs``."""
        module, _ = segment_module(
            ops,
            inputs,
            outputs,
            [self.symbols[s].name for s in in_syms],
            [self.symbols[s].name for s in out_syms],
            self.module.attributes,
        )
        return module

    # -- header ----------------------------------------------------------------------

    def write_header(self) -> None:
        """The "text" section and the header: the common fields and the target's own."""
        self.container.add("text", np.array(self.text, dtype=np.uint64))
        header = Header(
            producer=f"dlhwc {compiler.__version__}",
            hw=self.config.to_dict(),
            symbols=self.symbols,
            host_segments=self.segments,
            placement=self.placement,
            summary=placement_summary(self.fn, self.accel_ops),
            **self.header(),
        )
        self.container.header = header.to_json()


# -- sparse matrices: column blocks and PE images -----------------------------------------


def column_blocks(
    enc: SparseEncoding, spmat_capacity: int, ptr_capacity: int, name: str | None
) -> list[tuple[int, int]]:
    """Split the columns so each block's PE share fits the SRAMs (greedy, in order).

    A block holds at most ``spmat_capacity`` entries on every PE and ``ptr_capacity - 1``
    columns (one pointer more than columns).
    """
    blocks, start = [], 0
    max_cols = ptr_capacity - 1
    while start < enc.cols:
        base = enc.pointers[:, start : start + 1]
        # Per PE, the last column end whose entries still fit.
        fits = np.array(
            [
                np.searchsorted(enc.pointers[k], base[k, 0] + spmat_capacity, side="right") - 1
                for k in range(enc.pes)
            ]  # fmt: skip
        )
        end = min(int(fits.min()), start + max_cols, enc.cols)
        if end <= start:
            need = int((enc.pointers[:, start + 1] - enc.pointers[:, start]).max())
            raise DlhwcError(
                f"layer '{name}': column {start} alone needs {need} entries on one PE; the "
                f"sparse-matrix SRAM holds {spmat_capacity}"
            )
        blocks.append((start, end))
        start = end
    return blocks or [(0, 0)]


def block_images(
    enc: SparseEncoding, start: int, end: int, values: np.ndarray, value_bits: int, dtype
):
    """Pointer and sparse-matrix SRAM images of columns start..end-1, PE after PE.

    ``values`` holds one unsigned field per entry of the encoding (EIE: the codebook
    index v; ESE: the weight code in two's complement); an entry is packed as
    ``values | z << value_bits`` in ``dtype``. Returns (ptr uint32 [pes, cols+1],
    spmat, entries per PE, fillers per PE).
    """
    ptr = enc.pointers[:, start : end + 1] - enc.pointers[:, start : start + 1]
    counts = ptr[:, -1]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    first = enc.pe_offsets[:-1] + enc.pointers[:, start]  # each PE's block start in v/z
    idx = np.repeat(first - offsets[:-1], counts) + np.arange(offsets[-1])
    # Packed in the entry's own width: value_bits + run_bits fit ``dtype`` by the config.
    spmat = values[idx].astype(dtype) | (
        enc.z[idx].astype(dtype) << np.dtype(dtype).type(value_bits)
    )
    pe = np.repeat(np.arange(enc.pes), counts)
    fillers = np.bincount(pe, weights=enc.filler[idx], minlength=enc.pes).astype(int)
    return ptr.astype(np.uint32), spmat, counts.astype(int).tolist(), fillers.tolist()


def stream_order(mask: np.ndarray, pes: int) -> np.ndarray:
    """The flat [rows * cols] positions of the kept weights in the order `encode_sparse`
    writes them: by PE, then column, then PE-local row (fillers not included).

    For formats that store a value wider than `encode_sparse`'s 8-bit index (ESE's
    12-bit weights): the i-th non-filler entry of the encoding is the weight at
    position ``stream_order(mask, pes)[i]``.
    """
    rows, cols = mask.shape
    local_rows = max(-(-rows // pes), 1)
    flat = np.flatnonzero(mask)
    r, c = np.divmod(flat, cols)
    loc, pe = np.divmod(r, pes)
    return flat[np.argsort((pe * cols + c) * local_rows + loc, kind="stable")]


# -- small helpers ----------------------------------------------------------------------


def placement_summary(fn: func.FuncOp, accel_ops: tuple[type[Operation], ...]) -> Summary:
    """Weights and multiply-accumulates on the accelerator and on the host.

    Weights are the elements of the layers' weight matrices (dense, before pruning); MACs
    are per row of the program's inputs, dense: a matrix's elements times how often one
    input row uses it (a token-wise layer's tokens, a convolution's output pixels, a
    recurrent layer's time steps; per step when the sequence length is dynamic). Host
    ops that are no layer (pooling, Softmax, the patch extraction) count no MACs."""
    from dlhwc.compiler.passes.weights import find_weights, is_conv

    totals = {"weights_accel": 0, "weights_host": 0, "macs_accel": 0, "macs_host": 0}
    for op in fn.body.block.ops:
        if isinstance(op, accel_ops):
            weights = sum(
                _elements(v)
                for v in op.operands
                if isinstance(v.owner, comp.WeightOp) and len(v.type.get_shape()) >= 2
            )
            totals["weights_accel"] += weights
            totals["macs_accel"] += weights * _reuse(op)
    for slot in find_weights(fn.parent_op(), "matrix"):
        if slot.consumer.parent_block() is not fn.body.block:
            continue
        weights = _elements(slot.consumer.operands[slot.operand])
        reuse = _reuse(slot.consumer)
        if is_conv(slot.consumer):
            out = slot.consumer.results[0].type.get_shape()
            reuse = math.prod(max(d, 1) for d in out[2:])
        totals["weights_host"] += weights
        totals["macs_host"] += weights * reuse
    totals["host_ops"] = sum(
        1
        for op in fn.body.block.ops
        if not isinstance(op, (*accel_ops, *DATA_OPS, func.ReturnOp, comp.QuantizeOp))
    )
    return Summary(**totals)


def _elements(value: SSAValue) -> int:
    shape = value.type.get_shape() if isinstance(value.type, TensorType) else []
    return math.prod(max(d, 1) for d in shape)


def _reuse(op: Operation) -> int:
    """How often one input row uses each weight: the static dimensions of the first
    operand between its batch axis and its features (tokens, time steps)."""
    x = op.operands[0]
    shape = x.type.get_shape() if isinstance(x.type, TensorType) else []
    return math.prod(d for d in shape[1:-1] if d > 0) if len(shape) > 2 else 1


def constant_value(value: SSAValue) -> np.ndarray:
    """The float values of a constant or weight operand."""
    owner = value.owner
    if isinstance(owner, comp.WeightOp):
        return owner.dense()
    return np.asarray(owner.to_array(), dtype=np.float32)


def op_label(op: Operation) -> str:
    """`Softmax`, `com.microsoft:Foo`, or the op's dialect name."""
    if isinstance(op, onnx_d.OnnxOp):
        domain = op.onnx_domain
        return f"{domain}:{op.onnx_type}" if domain else op.onnx_type
    return op.name


def _is_dynamic(typ) -> bool:
    return isinstance(typ, TensorType) and any(d < 0 for d in typ.get_shape())


def _dtype_name(value: SSAValue) -> str:
    typ = value.type
    if isinstance(typ, TensorType):
        try:
            return str(onnx_d.numpy_dtype(typ.element_type))
        except (KeyError, ValueError, TypeError):
            return "float32"
    return "float32"
