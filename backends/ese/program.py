"""ESE back end: an `ese`-level module to a program container.

Placement, host segments, symbols, column blocks and the common header fields are shared
with the other targets (backends/program.py): every `ese.rnn` runs on the accelerator,
the rest of `@main` on the host. This file lowers `ese.rnn`.

One `ese.rnn` (layer i) becomes, with ISA spec/ese/isa.py:

    dma.in  x [, lens] [, h0] [, c0]            # the row's whole sequence and states
    for each direction d:
        load.cell i, d                          # biases, Rb_h, peepholes, tables
        load i, d, M, b ...                     # (resident programs) every block, once
        seq i, d, rev, fresh=(d == 0), body=n, x, y, h0, c0, lens, yh, yc
            [load i, d, W, b]  spmv i, d, W, b      # per block of W: acc_W += W x_t
            [load i, d, R, b]  spmv i, d, R, b      # per block of R: acc_R += R h
            gates i, d                              # GRU, linear_before_reset = 0 only:
            [load i, d, Rh, b] spmv i, d, Rh, b     #   acc_Rh += R_h (r * h)
            cell i, d
    dma.out y / yh / yc                          # each result that is used

The bracketed loads are in the body when the weights are not resident: every step
reloads them (and the simulator counts it).

Weights: W and R of each direction hold the codes of `layer_constants` (the IR's
`comp.weight`s at their fixed-point formats; computed here, not taken from the golden
model, so that the golden model checks them), encoded with spec/encoding.encode_sparse over
the PEs (row i on PE i mod N); a GRU with linear_before_reset = 0 has R split into its z
and r rows (matrix R) and its h rows (matrix Rh), because the h rows multiply r * h,
which exists only after the reset gate. An entry is a uint16: the weight's 12-bit two's
complement code | z << 12; fillers are 0 | 15 << 12. A matrix whose PE share does not
fit the sparse-matrix SRAM (or whose columns need more pointers than the pointer SRAM
holds) is split into column blocks, as for EIE. If every block of every matrix fits the
SRAMs together, the weights are loaded once (header `resident`); otherwise every step
reloads the blocks of the matrices it runs.

Layout and sequence lengths: the symbols of X, Y, initial and final states carry the
per-sequence shape ([T, input], [T, dirs, H], [dirs, H]) and the host tensor's batch
axis (`batch_axis`: 1 for X and the states and 2 for Y with layout=0, 0 with layout=1),
so `dma.in`/`dma.out` move one row's tensor whatever the layout. sequence_lens is an
int32 symbol (format fixed<32,0>) read by `seq`. A sequence whose length is dynamic in
the model has -1 in its symbol's shape; the loop runs over the T the data has.

The header's layer table holds one `ESELayer` record per layer (spec/ese/container.py):
its kind, directions, sizes, formats and activations, and its matrices (`ESEMatrix`)
with their column blocks; the tables are in backends/ese/README.md, "Container layout".

Sections: "text"; "L<i>.bias" (int32 [dirs, gates*H], frac fl), "L<i>.rb_h" (int32
[dirs, H], GRU lbr=1), "L<i>.peep" (int16 [dirs, 3H], frac fp), "L<i>.lut.Sigmoid" and
"L<i>.lut.Tanh" (int64 [2, segments]: slopes at frac 16, intercepts at frac 15),
"L<i>.D<d>.<M>.B<b>.ptr" (uint32 [pes, cols+1]), "L<i>.D<d>.<M>.B<b>.spmat" (uint16,
PE after PE), "host<s>" (an ONNX model), "const<k>" (a constant symbol's values).
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Block, SSAValue

from dlhwc.backends.program import (
    DATA_OPS,
    ProgramBuilder,
    block_images,
    column_blocks,
    stream_order,
)
from dlhwc.dialects import ese
from dlhwc.spec.container import ColumnBlock, Container
from dlhwc.spec.encoding import encode_sparse
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.ese.config import ESEConfig
from dlhwc.spec.ese.container import CellFormats, ESELayer, ESEMatrix
from dlhwc.spec.ese.isa import ESE_ISA, MATRICES, NUM_BUFFERS
from dlhwc.spec.ese.lut import HARDWARE_ACTIVATIONS, build_lut
from dlhwc.spec.fixedpoint import FixedFormat, frac_bits_for, to_codes

LENGTH_FORMAT = FixedFormat(32, 0)
"""Sequence lengths on chip: integers."""

_RESULTS = ("Y", "Y_h", "Y_c")


def layer_constants(op: ese.RNNOp) -> dict:
    """What the container holds of one `ese.rnn`, as codes: weights, biases, peepholes,
    clip, the fraction bits of its formats and its tables.

    W and R are the `comp.weight`s at their formats (fixed<12, fw>, fixed<12, fr>). The
    two ONNX biases are summed and quantized at frac fl (fixed<32, fl>), except GRU's
    Rb_h with linear_before_reset = 1, which stays apart (it is added inside the reset
    gate's product). Peepholes are fixed<16, fp> with fp the most fraction bits (at most
    15) that hold the largest of them. clip is a code at frac fl.
    """
    gates, hidden = op.gates, op.hidden_size.value.data
    w_op, r_op = op.operand(1).owner, op.operand(2).owner
    fw, fr = w_op.fixed_format, r_op.fixed_format
    fl = op.lut_in_frac.value.data
    dirs = op.num_directions
    bias = np.zeros((dirs, 2 * gates * hidden), dtype=np.float64)
    if op.operand(3) is not None:
        bias = _value(op.operand(3)).astype(np.float64).reshape(dirs, 2 * gates * hidden)
    wb, rb = bias[:, : gates * hidden], bias[:, gates * hidden :]
    gru_h = slice(2 * hidden, 3 * hidden)
    if op.kind.data == "GRU" and op.linear_before_reset.value.data:
        combined = wb.copy()
        combined[:, : gru_h.start] += rb[:, : gru_h.start]
        rb_h = to_codes(rb[:, gru_h], FixedFormat(32, fl))
    else:
        combined, rb_h = wb + rb, None
    peep = None
    fp = 15
    if op.kind.data == "LSTM" and op.operand(7) is not None:
        p = _value(op.operand(7)).reshape(dirs, 3 * hidden)
        fp = min(frac_bits_for(float(np.max(np.abs(p))) if p.size else 0.0, 16), 15)
        peep = to_codes(p, FixedFormat(16, fp))
    clip = op.clip.value.data if op.clip is not None else None
    formats = {
        "fx": op.x_format.format.frac, "fh": op.h_format.format.frac, "fw": fw.frac,
        "fr": fr.frac, "fl": fl, "fc": op.cell_frac.value.data, "fp": fp,
    }  # fmt: skip
    segments = op.lut_segments.value.data
    return {
        "W": to_codes(w_op.dense(), fw).reshape(dirs, gates * hidden, -1),
        "R": to_codes(r_op.dense(), fr).reshape(dirs, gates * hidden, hidden),
        "bias": to_codes(combined, FixedFormat(32, fl)),
        "rb_h": rb_h,
        "peep": peep,
        "clip": None if clip is None else int(to_codes(np.array(clip), FixedFormat(16, fl))),
        "formats": formats,
        "luts": {name: build_lut(name, fl, segments) for name in ("Sigmoid", "Tanh")},
    }


def _value(v) -> np.ndarray:
    owner = v.owner
    return owner.dense() if hasattr(owner, "dense") else np.asarray(owner.to_array())


def _operand_format(op, index: int) -> FixedFormat | None:
    """The format an ese.rnn reads operand ``index`` in (None: not an ese.rnn input)."""
    if not isinstance(op, ese.RNNOp):
        return None
    if index == 0:
        return op.x_format.format
    if index == 4:
        return LENGTH_FORMAT
    if index == 5:
        return op.h_format.format
    if index == 6:
        return FixedFormat(16, op.cell_frac.value.data)
    return None


def build_program(module: ModuleOp, config: ESEConfig) -> Container:
    """The container of an `ese`-level module."""
    return _ProgramBuilder(module, config).run()


class _ProgramBuilder(ProgramBuilder):
    target = "ese"
    isa = ESE_ISA
    accel_ops = (ese.RNNOp,)

    def __init__(self, module: ModuleOp, config: ESEConfig):
        super().__init__(module, config)
        self.layers: list[ESELayer] = []
        # (batch axis, time dim, per-row shape) of the tensors crossing to and from ese.rnn
        self.axes: dict[SSAValue, tuple[int, int | None, tuple[int, ...]]] = {}
        self.out_names: dict[SSAValue, str] = {}
        self.encoded: dict[ese.RNNOp, int] = {}  # layer indices
        self.resident: bool | None = None

    # -- hooks of ProgramBuilder -------------------------------------------------------

    def prepare(self, steps: list) -> None:
        """Where each tensor crossing to or from an ese.rnn keeps its batch axis."""
        from dlhwc.compiler.functions import output_names

        for value, name in zip(self.returned, output_names(self.fn), strict=True):
            self.out_names.setdefault(value, name)
        for op in steps:
            if not isinstance(op, ese.RNNOp):
                continue
            for value, axes in self._crossing(op):
                value = self.accel_source(value)
                if self.axes.setdefault(value, axes) != axes:
                    raise DlhwcError(
                        f"layer '{op.layer_name}': value '{value.name_hint}' crosses with two "
                        f"shapes ({self.axes[value][2]} and {axes[2]}) or batch axes"
                    )
        # Host ops that keep their operand's shape (comp.quantize, element-wise ops) keep
        # its batch axis too: the graph input behind a quantized initial state, the output
        # behind a quantized Y.
        ops = list(self.fn.body.block.ops)
        for order in (ops, ops[::-1]):
            for op in order:
                if len(op.results) != 1 or not op.operands or self.is_accel(op):
                    continue
                src, out = op.operands[0], op.results[0]
                if src.type != out.type:
                    continue
                if out in self.axes and src not in self.axes and order is not ops:
                    self.axes[src] = self.axes[out]
                elif src in self.axes and out not in self.axes and order is ops:
                    self.axes[out] = self.axes[src]

    def _crossing(self, op: ese.RNNOp) -> list:
        """(value, (batch axis, time dim, per-row shape)) of each tensor an ese.rnn moves.

        layout=0: X [T, B, in], states [dirs, B, H], Y [T, dirs, B, H]; layout=1: the
        batch first. Per row: [T, in], [dirs, H], [T, dirs, H], and [] for a length. The
        per-row shapes come from the layer (a host Reshape may leave the IR's type
        dynamic); T is -1 unless a type knows it.
        """
        layout = op.layout.value.data
        batch, y_axis = (1, 2) if layout == 0 else (0, 0)
        hidden, dirs = op.hidden_size.value.data, op.num_directions
        steps = -1  # T is axis `layout` of X and of Y
        for value in (op.operand(0), op.outputs[0]):
            dims = value.type.get_shape() if isinstance(value.type, TensorType) else ()
            if len(dims) > layout and dims[layout] >= 0:
                steps = dims[layout]
        inp = op.operand(1).type.get_shape()[-1]
        state = (batch, None, [dirs, hidden])
        wanted = [(op.operand(0), (batch, 0, [steps, inp])), (op.operand(4), (0, None, []))]
        wanted += [(op.operand(i), state) for i in (5, 6)]
        wanted += [(op.outputs[0], (y_axis, 0, [steps, dirs, hidden]))]
        wanted += [(r, state) for r in op.outputs[1:]]
        return [(v, (a, t, tuple(s))) for v, (a, t, s) in wanted if v is not None]

    def vector_shape(self, value: SSAValue, axis: int) -> list[int]:
        """A crossing tensor of an ese.rnn has the layer's per-row shape (see `_crossing`)."""
        known = self.axes.get(value)
        if known is None:
            return super().vector_shape(value, axis)
        typ, shape = value.type, list(known[2])
        dims = list(typ.get_shape()) if isinstance(typ, TensorType) else None
        if dims is None or len(dims) != len(shape) + 1 or any(
            d >= 0 and k >= 0 and d != k for d, k in zip(dims[:axis] + dims[axis + 1 :], shape,
                                                       strict=True)
        ):  # fmt: skip
            raise DlhwcError(
                f"value '{value.name_hint}' is {typ}; the recurrent layer moves it as "
                f"{shape} per batch row (batch axis {axis})"
            )
        return shape

    def is_conversion(self, op) -> bool:
        """A comp.quantize read only by ese.rnn operands in its own format.

        Its `dma.in` does the conversion then. One in another format (an initial state
        quantized apart from h_format) runs on the host, so that the accelerator reads
        the twice-rounded values the model computes.
        """
        if not super().is_conversion(op):
            return False
        return all(
            _operand_format(u.operation, u.index) == op.format.format for u in op.output.uses
        )

    def batch_axis(self, value: SSAValue) -> int:
        if value in self.axes:
            return self.axes[value][0]
        return super().batch_axis(value)

    def time_axis(self, value: SSAValue) -> int | None:
        return self.axes.get(value, (0, None, None))[1]

    def result_format(self, value: SSAValue) -> FixedFormat:
        op: ese.RNNOp = value.owner
        if value.index == 2:
            return FixedFormat(16, op.cell_frac.value.data)
        return op.h_format.format

    def output_from_accel(self, value: SSAValue, name: str) -> None:
        """Nothing left to do: `lower` moved every used result out, outputs included."""

    def header(self) -> dict[str, list[ESELayer] | bool]:
        blocks = [b for lay in self.layers for m in lay.matrices for b in m.blocks]
        per_pe_entries = sum(max(b.entries, default=0) for b in blocks)
        per_pe_ptrs = sum(b.ncols + 1 for b in blocks)
        return {"layers": self.layers, "resident": self._fits(per_pe_entries, per_pe_ptrs)}

    def _fits(self, entries: int, ptrs: int) -> bool:
        """Whether every block's share fits one PE's SRAMs together (the whole SRAM: a
        block's addressable range, spmat_capacity, bounds only the blocks)."""
        cfg = self.config
        return entries <= cfg.spmat_entries and ptrs <= cfg.ptr_capacity

    # -- ese.rnn -----------------------------------------------------------------------

    def lower(self, op: ese.RNNOp, index: int, steps: list) -> None:
        name = op.layer_name
        layer = self._layer(op)
        entry = self.layers[layer]
        buffers = iter(range(NUM_BUFFERS))
        ins = {}
        for key, i in (("x", 0), ("lens", 4), ("h0", 5), ("c0", 6)):
            value = op.operand(i)
            if value is None or (key == "c0" and entry.kind != "LSTM"):
                continue
            ins[key] = next(buffers)
            sym = self._input_symbol(op, value, _operand_format(op, i))
            self.emit("dma.in", name, sym=sym, buf=ins[key])
        outs = {key: next(buffers) for key in ("y", "yh", "yc")}
        resident = self._resident(steps)
        for d in range(entry.dirs):
            self.emit("load.cell", name, layer=layer, dir=d)
            mats = [m for m in entry.matrices if m.dir == d]
            if resident:
                for m in mats:
                    for b in range(len(m.blocks)):
                        self.emit("load", name, layer=layer, dir=d, mat=m.mat, block=b)
            body = self._body(layer, d, mats, resident, entry)
            reverse = entry.direction == "reverse" or d == 1
            self.emit(
                "seq", name, layer=layer, dir=d, rev=int(reverse), fresh=int(d == 0),
                body=len(body), x=ins["x"], y=outs["y"], h0=ins.get("h0", 0),
                c0=ins.get("c0", 0), lens=ins.get("lens", 0), yh=outs["yh"], yc=outs["yc"],
                has_h0=int("h0" in ins), has_c0=int("c0" in ins), has_lens=int("lens" in ins),
            )  # fmt: skip
            for mnemonic, operands in body:
                self.emit(mnemonic, name, **operands)
        for result, key in zip(op.outputs, ("y", "yh", "yc"), strict=False):
            if not result.uses:
                continue
            fmt = self.result_format(result)
            kind = "output" if result in self.out_names else "transfer"
            sym = self.symbol(result, kind, fmt, self.out_names.get(result))
            self.emit("dma.out", name, sym=sym, buf=outs[key])

    def _input_symbol(self, op: ese.RNNOp, value: SSAValue, fmt: FixedFormat) -> int:
        """The symbol the dma.in of an ese.rnn operand reads (format ``fmt``)."""
        source = self.accel_source(value)
        if isinstance(source.owner, DATA_OPS):
            sym = self.constant_symbol(source, fmt)
        else:
            kind = "input" if isinstance(source.owner, Block) else "transfer"
            sym = self.symbol(source, kind, fmt)
        if self.symbols[sym].format is None:
            self.symbols[sym].format = fmt
        elif self.symbols[sym].format != fmt:
            raise DlhwcError(
                f"layer '{op.layer_name}': value '{source.name_hint}' is read in two formats "
                f"({self.symbols[sym].format} and {fmt})"
            )
        return sym

    def _resident(self, steps: list) -> bool:
        """Whether the weights are resident, decided over all layers.

        The first call encodes every layer, so that the instructions of the first layer
        already know whether the loads go inside the loop bodies.
        """
        if self.resident is None:
            for op in steps:
                if isinstance(op, ese.RNNOp):
                    self._layer(op)
            self.resident = self.header()["resident"]
        return self.resident

    def _body(self, layer: int, d: int, mats: list[ESEMatrix], resident: bool, entry: ESELayer):
        """The instructions of one time step: products, GRU's reset gate, the cell."""
        body = []
        for m in mats:
            if m.mat == MATRICES.index("Rh"):
                body.append(("gates", {"layer": layer, "dir": d}))
            n = len(m.blocks)
            for b in range(n):
                where = {"layer": layer, "dir": d, "mat": m.mat, "block": b}
                if not resident:
                    body.append(("load", where))
                body.append(("spmv", {**where, "first": int(b == 0), "last": int(b == n - 1)}))
        body.append(("cell", {"layer": layer, "dir": d}))
        return body

    # -- the layer table and the weight sections ---------------------------------------

    def _layer(self, op: ese.RNNOp) -> int:
        """The layer's index in the table (encoding it and adding its sections once)."""
        if op in self.encoded:
            return self.encoded[op]
        cfg: ESEConfig = self.config
        name = op.layer_name or f"rnn{len(self.layers)}"
        kind, hidden, dirs = op.kind.data, op.hidden_size.value.data, op.num_directions
        acts = op.activation_names
        unknown = sorted(set(acts) - set(HARDWARE_ACTIVATIONS))
        if unknown:
            raise DlhwcError(
                f"layer '{name}': activation {unknown[0]} has no hardware unit "
                f"(ESE has {', '.join(HARDWARE_ACTIVATIONS)})"
            )
        k = layer_constants(op)
        f = k["formats"]
        lbr = bool(op.linear_before_reset.value.data)
        index = len(self.layers)
        if index >= 1 << 12:
            raise DlhwcError("the program has more layers than the ISA's 12-bit layer field")
        self.encoded[op] = index
        w_fmt = op.operand(1).owner.fixed_format
        r_fmt = op.operand(2).owner.fixed_format
        for label, fmt in (("W", w_fmt), ("R", r_fmt)):
            if fmt.bits > cfg.weight_bits:
                raise DlhwcError(
                    f"layer '{name}': {label} is {fmt}; ESE stores {cfg.weight_bits}-bit "
                    f"weights (quantize with weight-bits={cfg.weight_bits})"
                )
        matrices = []
        for d in range(dirs):
            parts = [("W", k["W"][d]), ("R", k["R"][d])]
            if kind == "GRU" and not lbr:
                parts = [("W", k["W"][d]), ("R", k["R"][d][: 2 * hidden]),
                         ("Rh", k["R"][d][2 * hidden :])]  # fmt: skip
            for label, codes in parts:
                matrices.append(self._matrix(index, name, d, label, codes))
        self.container.add(f"L{index}.bias", k["bias"].astype(np.int32))
        if k["rb_h"] is not None:
            self.container.add(f"L{index}.rb_h", k["rb_h"].astype(np.int32))
        if k["peep"] is not None:
            self.container.add(f"L{index}.peep", k["peep"].astype(np.int16))
        for fn in ("Sigmoid", "Tanh"):
            lut = k["luts"][fn]
            self.container.add(f"L{index}.lut.{fn}", np.stack([lut.slopes, lut.intercepts]))
        per_dir = len(acts) // dirs
        self.layers.append(ESELayer(
            name=name,
            kind=kind,
            direction=op.direction.data,
            dirs=dirs,
            hidden=hidden,
            input=int(k["W"].shape[-1]),
            gates=op.gates,
            layout=op.layout.value.data,
            formats=CellFormats(**f),
            weight_bits=(w_fmt.bits, r_fmt.bits),
            clip=k["clip"],
            activations=[list(acts[d * per_dir : (d + 1) * per_dir]) for d in range(dirs)],
            input_forget=bool(op.input_forget.value.data),
            linear_before_reset=lbr,
            lut_segments=op.lut_segments.value.data,
            peepholes=k["peep"] is not None,
            rb_h=k["rb_h"] is not None,
            nonzeros=sum(m.nonzeros for m in matrices),
            matrices=matrices,
        ))  # fmt: skip
        return index

    def _matrix(self, layer: int, name: str, d: int, label: str, codes: np.ndarray) -> ESEMatrix:
        """Encode one matrix of weight codes and add its column blocks' images."""
        cfg: ESEConfig = self.config
        codes = np.asarray(codes, dtype=np.int64)
        lo, hi = -(1 << (cfg.weight_bits - 1)), (1 << (cfg.weight_bits - 1)) - 1
        if codes.size and (codes.min() < lo or codes.max() > hi):
            raise DlhwcError(
                f"layer '{name}': a weight code of {label} exceeds {cfg.weight_bits} bits"
            )
        mask = codes != 0
        enc = encode_sparse(mask, np.zeros(mask.shape, np.uint8), cfg.num_pes, cfg.run_bits)
        values = np.zeros(enc.entries, dtype=np.int64)
        values[~enc.filler] = codes.reshape(-1)[stream_order(mask, cfg.num_pes)]
        values &= (1 << cfg.weight_bits) - 1  # two's complement in weight_bits
        mat = MATRICES.index(label)
        blocks = []
        spans = column_blocks(enc, cfg.spmat_capacity, cfg.ptr_capacity, f"{name}.{label}")
        for b, (start, end) in enumerate(spans):
            ptr, spmat, entries, fillers = block_images(
                enc, start, end, values, cfg.weight_bits, np.uint16
            )
            prefix = f"L{layer}.D{d}.{label}.B{b}"
            self.container.add(f"{prefix}.ptr", ptr)
            self.container.add(f"{prefix}.spmat", spmat)
            blocks.append(ColumnBlock(col_start=start, col_end=end, entries=entries,
                                      fillers=fillers))  # fmt: skip
        if len(blocks) > 1 << 16:
            raise DlhwcError(f"layer '{name}': {label} needs more than 65536 column blocks")
        return ESEMatrix(
            dir=d,
            mat=mat,
            name=label,
            rows=int(codes.shape[0]),
            cols=int(codes.shape[1]),
            nonzeros=int(enc.nonzeros),
            entries=int(enc.entries),
            fillers=int(enc.fillers),
            blocks=blocks,
        )
