"""The dense back end: a `dense`-level module to a program container.

Placement, host segments, symbols and the common header fields are dlhwc's
(dlhwc.backends.program.ProgramBuilder); this file lowers `dense.fc`:

    [dma.in]  load L  (wtile L t, mmtile L t)  for t in 0..KT*NT-1  act L  [dma.out]

Tiles go output tile by output tile (t = n * KT + k): each output tile's partial sums
finish before the next starts, and `first` clears them at k = 0.

Header (besides producer, hw, symbols, host_segments, placement, summary):

    layers  [{name, rows, cols, in_format, weight_format, out_format, bias}]

Sections: "text" (uint64 words), "L<i>.weights" (int16 or int32 weight codes
[KT * NT, R, C], the tiles as the weight SRAM holds them), "L<i>.bias" (int64 codes at
frac fa+fw), "host<s>" (an ONNX model).
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, SSAValue

from dlhwc.backends.program import ProgramBuilder, constant_value
from dlhwc.spec.container import Container
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.fixedpoint import FixedFormat, to_codes
from dlhwc_dense.config import Config
from dlhwc_dense.dialect import FCOp
from dlhwc_dense.isa import ISA

NUM_BUFFERS = 4


def build_program(module: ModuleOp, config: Config) -> Container:
    """The container of a `dense`-level module."""
    return _Builder(module, config).run()


def tile_images(codes: np.ndarray, config: Config) -> np.ndarray:
    """Weight codes [rows, cols] as the tiles [KT * NT, R, C] the weight SRAM holds:
    tile n * KT + k holds tile[r][c] = W[n*C + c][k*R + r], zeros past the edges."""
    R, C = config.array_rows, config.array_cols
    rows, cols = codes.shape
    kt, nt = -(-cols // R), -(-rows // C)
    padded = np.zeros((kt * R, nt * C), dtype=np.int32 if config.weight_bits > 16 else np.int16)
    padded[:cols, :rows] = codes.T
    return padded.reshape(kt, R, nt, C).transpose(2, 0, 1, 3).reshape(nt * kt, R, C)


class _Builder(ProgramBuilder):
    target = "dense"
    isa = ISA
    accel_ops = (FCOp,)

    def __init__(self, module: ModuleOp, config: Config):
        super().__init__(module, config)
        self.layers: list[dict] = []
        self.buffers: dict[SSAValue, int] = {}
        self.last_reader: dict[SSAValue, int] = {}
        self.copied_out: set[SSAValue] = set()

    def prepare(self, steps: list) -> None:
        for index, step in enumerate(steps):
            if isinstance(step, FCOp):
                self.last_reader[self.accel_source(step.input)] = index

    def result_format(self, value: SSAValue) -> FixedFormat:
        return value.owner.out_format.format

    def output_from_accel(self, value: SSAValue, name: str) -> None:
        sym = self.symbol(value, "output", value.owner.out_format.format, name)
        if value not in self.copied_out:
            self.emit("dma.out", sym=sym, buf=self.buffers[value])

    def header(self) -> dict:
        return {"layers": self.layers}

    def lower(self, op: FCOp, index: int, steps: list) -> None:
        source = self.accel_source(op.input)
        if source not in self.buffers:
            kind = "input" if isinstance(source.owner, Block) else "transfer"
            sym = self.symbol(source, kind, op.in_format.format)
            if self.symbols[sym].format is None:
                self.symbols[sym].format = op.in_format.format
            elif self.symbols[sym].format != op.in_format.format:
                raise DlhwcError(f"layer '{op.layer_name}': its input is used in two formats")
            self.buffers[source] = self._free_buffer()
            self.emit("dma.in", sym=sym, buf=self.buffers[source])
        src = self.buffers[source]
        dst = self._free_buffer(avoid=src)
        layer, tiles_k, tiles_n = self._layer(op)
        self.emit("load", layer=layer)
        for t in range(tiles_k * tiles_n):
            self.emit("wtile", op.layer_name, layer=layer, tile=t)
            first = int(t % tiles_k == 0)  # t = n * KT + k: an output tile starts
            self.emit("mmtile", op.layer_name, layer=layer, tile=t, src=src, first=first)
        self.emit("act", op.layer_name, layer=layer, dst=dst, bias=int(op.bias is not None),
                  relu=int(op.relu.value.data), shift=op.shift)  # fmt: skip
        self.buffers[op.output] = dst
        uses = [u.operation for u in op.output.uses]
        # The host reads it (a returned value only read by layers moves out at the end).
        if any(not isinstance(u, FCOp) for u in uses) and not (
            op.output in self.returned and all(isinstance(u, FCOp | func.ReturnOp) for u in uses)
        ):
            self.emit("dma.out", sym=self.symbol(op.output, "transfer", op.out_format.format),
                      buf=dst)  # fmt: skip
            self.copied_out.add(op.output)
        for value in [v for v, last in self.last_reader.items() if last == index]:
            if value in self.buffers and value not in self.returned:
                del self.buffers[value]
        if op.output not in self.last_reader and op.output not in self.returned:
            del self.buffers[op.output]  # read by the host only: moved out above

    def _free_buffer(self, avoid: int | None = None) -> int:
        used = set(self.buffers.values()) | {avoid}
        for b in range(NUM_BUFFERS):
            if b not in used:
                return b
        raise DlhwcError(f"the program needs more than {NUM_BUFFERS} live activation buffers")

    def _layer(self, op: FCOp) -> tuple[int, int, int]:
        """Add the layer's table entry and sections; (its index, KT, NT)."""
        cfg, name = self.config, op.layer_name or f"fc{len(self.layers)}"
        w = op.weight.owner
        rows, cols = w.shape
        if max(rows, cols) > cfg.act_buffer_entries:
            raise DlhwcError(
                f"layer '{name}': {cols} inputs and {rows} outputs; an activation buffer "
                f"holds vectors of at most {cfg.act_buffer_entries} elements"
            )
        fa, fo, fw = op.in_format.format, op.out_format.format, w.fixed_format
        tiles = tile_images(to_codes(w.dense(), fw), cfg)
        size = tiles.size * cfg.weight_bits // 8
        if size > cfg.weight_sram_bytes:
            raise DlhwcError(
                f"layer '{name}': its {len(tiles)} weight tiles take {size:,} bytes; the weight "
                f"SRAM holds {cfg.weight_sram_bytes:,} (weight_sram_bytes in --hw)"
            )
        index = len(self.layers)
        if index >= 1 << 12 or len(tiles) > 1 << 20:
            raise DlhwcError(f"layer '{name}': beyond the ISA's 12-bit layer or 20-bit tile field")
        self.container.add(f"L{index}.weights", tiles)
        if op.bias is not None:
            bias = constant_value(op.bias).reshape(-1)
            bias = to_codes(bias, FixedFormat(cfg.acc_bits, fa.frac + fw.frac))
            self.container.add(f"L{index}.bias", bias.astype(np.int64))
        self.layers.append({
            "name": name, "rows": rows, "cols": cols, "bias": op.bias is not None,
            "nonzeros": int(np.count_nonzero(tiles)),
            "in_format": [fa.bits, fa.frac], "weight_format": [fw.bits, fw.frac],
            "out_format": [fo.bits, fo.frac],
        })  # fmt: skip
        return index, -(-cols // cfg.array_rows), -(-rows // cfg.array_cols)
