"""The ESE simulator: executes a program container bit for bit and models its cycles and energy.

The simulator reads only the container (spec/container.py): the header's hardware
config, symbol, layer and host segment tables, and the sections the compiler laid out
(backends/ese/program.py). It never sees the compiler's IR. The arithmetic of a time
step is runtime/ese/arith.py, the specification the golden model
(backends/ese/golden.py) shares; the products are the simulator's own, from the
decoded PE images.

What every sparse PE machine does the same way is the simulator core's
(runtime/core.py): decoding the instruction stream and the column blocks' images,
residency and capacity, the broadcast/FIFO channel model, cost attribution by
instruction class, the tallies, the dense baseline's frame, the stats and the tables.
This file holds what ESE's hardware does its own way:

- `Simulator(container)`: the layer table of LSTM/GRU/RNN layers (matrices W, R, Rh
  per direction), the loop structure (every `seq` and its body), the element-wise
  units' sections (biases, peepholes, activation tables), and entries of a 12-bit
  weight code and a 4-bit run.
- `Simulator.run(inputs)` runs the program on a batch of input sequences. The functional
  simulation is vectorized over the batch: a buffer is an int64 array [batch, ...] of
  codes; a `seq` runs its body once per time step for every row at once, rows past their
  length frozen. Each instruction has one small function (`_Machine.exec_<mnemonic>`)
  whose docstring repeats the ISA pseudo-code.
- The cycle and energy model (`_CostModel`) is a separate layer over the same dispatch:
  inside a `seq` body an instruction records what it costs (for `spmv`, the non-zero
  pattern of its source vector); when the `seq` ends, the time steps of every row are
  scheduled (see `_CostModel.schedule` and backends/ese/README.md).
- `Stats`: the stats JSON is the core's, plus per-step times and the overlap saving.
  Counts are totals over the batch; keys ending in `_per_vector` are per input
  sequence, in `_per_step` per time step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dlhwc.runtime import core
from dlhwc.runtime.common import align, num, pct, words
from dlhwc.runtime.ese import arith
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.ese.config import ESEConfig
from dlhwc.spec.ese.container import ESELayer
from dlhwc.spec.ese.isa import ESE_ISA, MATRICES, NUM_BUFFERS
from dlhwc.spec.ese.lut import Lut, gate_frac
from dlhwc.spec.fixedpoint import from_codes, saturate, to_codes

DENSE_LIMIT = 1 << 24
"""A decoded block with at most this many rows x columns keeps a dense copy of its weight
codes (float64: exact, 12-bit x 16-bit products over < 2^25 columns), and `spmv`
multiplies with it; larger blocks sum entry by entry."""

ENERGY_EVENTS = (
    "spmat_read",
    "ptr_read",
    "mac",
    "ew_op",
    "lut_lookup",
    "buffer_access",
    "dram_word",
    "host_word",
)
"""The counted events; each has an energy per event of the same name in `ESEEnergy`."""

BODY_OPS = ("load", "spmv", "gates", "cell")
"""The instructions a `seq` body may hold."""

LOOP_OPS = ("spmv", "gates", "cell")
"""Instructions that exist only inside a `seq` body."""

TABLES = ("Sigmoid", "Tanh")

_DIRECTION = {"forward": "fwd", "reverse": "rev", "bidirectional": "bidi"}


# -- decoded data ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Matrix:
    """A matrix of the layer table: W, R or Rh of one direction."""

    dir: int
    mat: int
    rows: int
    cols: int
    nonzeros: int
    entries: int
    fillers: int
    blocks: tuple[dict, ...]


@dataclass(frozen=True)
class _Layer:
    """A layer of the header's layer table, checked."""

    index: int
    name: str
    kind: str
    direction: str
    dirs: int
    hidden: int
    input: int
    gates: int
    layout: int
    formats: arith.CellFormats
    clip: int | None
    activations: tuple[tuple[str, ...], ...]
    input_forget: bool
    lbr: bool
    lut_segments: int
    peepholes: bool
    rb_h: bool
    nonzeros: int
    matrices: dict[tuple[int, int], _Matrix]

    @property
    def split_gru(self) -> bool:
        """A GRU whose h rows of R multiply r * h (matrix Rh)."""
        return self.kind == "GRU" and not self.lbr

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [(m.rows, m.cols) for m in self.matrices.values()]

    @property
    def entries(self) -> int:
        return sum(m.entries for m in self.matrices.values())

    @property
    def fillers(self) -> int:
        return sum(m.fillers for m in self.matrices.values())


@dataclass(frozen=True)
class _CellCounts:
    """Element-wise results and activation evaluations of one phase of one step."""

    ew: int  # element-wise results (pre-activation sums, products, state updates)
    tables: int  # sigmoid/tanh table evaluations
    relus: int  # Relu evaluations (element-wise units)

    def cycles(self, cfg: ESEConfig) -> int:
        """ceil(ew / ew_lanes) + ceil(activations / lut_lanes) + ew_latency."""
        acts = self.tables + self.relus
        return -(-self.ew // cfg.ew_lanes) + -(-acts // cfg.lut_lanes) + cfg.ew_latency


def cell_counts(lay: _Layer, d: int) -> tuple[_CellCounts | None, _CellCounts]:
    """(gates phase or None, cell phase) of one step of direction d.

    LSTM: 4H pre-activations, H cell states, H outputs (+3H peephole products, +H for
    1 - i with input_forget); activations i, f (not with input_forget), g, o, f3(c).
    GRU: 3H pre-activations, H reset products, H outputs; activations z, r, n. With
    linear_before_reset = 0 the reset gate (H pre-activations, r, H products r * h) is
    the `gates` phase and the rest the `cell` phase. RNN: H pre-activations, f1.
    """
    h = lay.hidden
    acts = lay.activations[d]

    def split(names: list[str], ew: int) -> _CellCounts:
        relus = sum(h for a in names if a == "Relu")
        return _CellCounts(ew, sum(h for a in names if a != "Relu"), relus)

    if lay.kind == "LSTM":
        names = [acts[0], acts[1], acts[0], acts[2]] + ([] if lay.input_forget else [acts[0]])
        ew = 6 * h + (3 * h if lay.peepholes else 0) + (h if lay.input_forget else 0)
        return None, split(names, ew)
    if lay.kind == "GRU":
        if lay.split_gru:
            return split([acts[0]], 2 * h), split([acts[0], acts[1]], 3 * h)
        return None, split([acts[0], acts[0], acts[1]], 5 * h)
    return None, split([acts[0]], h)


# -- the simulator ---------------------------------------------------------------------


class Simulator(core.SparseSimulator):
    """Loads a program container and runs it: `run(inputs) -> (outputs, Stats)`."""

    target = "ese"
    isa = ESE_ISA
    config_class = ESEConfig
    machine_fields = ("num_pes", "clock_mhz", "fifo_depth", "ew_lanes", "lut_lanes")
    prefer_dense = True
    evict_blocks = False

    def __init__(self, container, source: str = "<container>"):
        self._cells: dict[int, dict] = {}
        super().__init__(container, source)

    def microseconds(self, cycles):
        return cycles * (self.config.cycle_ns / 1000.0)

    # -- loading ----------------------------------------------------------------------

    def parse_layer(self, i: int, e: ESELayer) -> _Layer:
        """Layer ``i`` of the layer table (checked by its record, spec/ese/container.py),
        with each block in the JSON form the cost model reads."""
        matrices = {
            (m.dir, m.mat): _Matrix(m.dir, m.mat, m.rows, m.cols, m.nonzeros, m.entries,
                                    m.fillers, tuple(b.to_json() for b in m.blocks))
            for m in e.matrices
        }  # fmt: skip
        return _Layer(
            index=i,
            name=e.name,
            kind=e.kind,
            direction=e.direction,
            dirs=e.dirs,
            hidden=e.hidden,
            input=e.input,
            gates=e.gates,
            layout=e.layout,
            formats=arith.CellFormats(**e.formats.to_json()),
            clip=e.clip,
            activations=tuple(tuple(a) for a in e.activations),
            input_forget=e.input_forget,
            lbr=e.linear_before_reset,
            lut_segments=e.lut_segments,
            peepholes=e.peepholes,
            rb_h=e.rb_h,
            nonzeros=e.nonzeros,
            matrices=matrices,
        )

    def check_operands(self, index: int, mnemonic: str, ops: dict[str, int]) -> None:
        """What the core checks, and the layer's direction, matrix and block."""
        super().check_operands(index, mnemonic, ops)
        where = f"instruction {index} ({mnemonic})"
        if "layer" in ops:
            lay = self.layers[ops["layer"]]
            if ops["dir"] >= lay.dirs:
                raise self.error(f"{where}: layer '{lay.name}' has no direction {ops['dir']}")
            if "mat" in ops:
                m = lay.matrices.get((ops["dir"], ops["mat"]))
                if m is None:
                    raise self.error(f"{where}: layer '{lay.name}' has no matrix mat={ops['mat']}")
                if ops["block"] >= len(m.blocks):
                    raise self.error(
                        f"{where}: layer '{lay.name}' {MATRICES[ops['mat']]} has no block "
                        f"{ops['block']} ({len(m.blocks)} blocks)"
                    )
            if mnemonic == "gates" and not lay.split_gru:
                raise self.error(
                    f"{where}: layer '{lay.name}' is no GRU with linear_before_reset = 0"
                )

    def check_program(self) -> None:
        """The `seq` loops: position of each seq -> its body length, checked.

        A body holds only load, spmv, gates and cell of the seq's layer and direction, ends
        with its one `cell`, and runs `gates` (GRU with linear_before_reset = 0) before
        the products of Rh. spmv, gates and cell exist only inside a body.
        """
        loops, pos = {}, 0
        program = self.program
        while pos < len(program):
            index, mnemonic, ops = program[pos]
            if mnemonic in LOOP_OPS:
                raise self.error(f"instruction {index} ({mnemonic}): outside a seq loop")
            if mnemonic != "seq":
                pos += 1
                continue
            n = ops["body"]
            body = program[pos + 1 : pos + 1 + n]
            where = f"instruction {index} (seq)"
            if n == 0 or len(body) < n:
                raise self.error(f"{where}: a body of {n} instructions does not fit the program")
            names = [m for _, m, _ in body]
            bad = [m for m in names if m not in BODY_OPS]
            if bad:
                raise self.error(f"{where}: its body holds '{bad[0]}'")
            if names.count("cell") != 1 or names[-1] != "cell":
                raise self.error(f"{where}: its body must end with its one 'cell'")
            for i, m, o in body:
                if (o["layer"], o["dir"]) != (ops["layer"], ops["dir"]):
                    raise self.error(
                        f"instruction {i} ({m}): not of the seq's layer {ops['layer']} "
                        f"direction {ops['dir']}"
                    )
            lay = self.layers[ops["layer"]]
            gates = names.index("gates") if "gates" in names else None
            if lay.split_gru and (gates is None or names.count("gates") != 1):
                raise self.error(f"{where}: a GRU with linear_before_reset = 0 needs one 'gates'")
            for j, (i, m, o) in enumerate(body):
                if m == "spmv" and o["mat"] == 2 and (gates is None or j < gates):
                    raise self.error(f"instruction {i} (spmv): mat=Rh before 'gates'")
            loops[pos] = n
            pos += 1 + n
        self.loops = loops

    def image_keys(self) -> list[tuple[int, int, int, int]]:
        return [
            (lay.index, d, mat, b)
            for lay in self.layers
            for (d, mat), m in lay.matrices.items()
            for b in range(len(m.blocks))
        ]

    def image(self, key: tuple[int, int, int, int]) -> core.Image:
        """Block b of matrix M of direction d of layer i: sections L{i}.D{d}.{M}.B{b}."""
        layer, d, mat, block = key
        lay = self.layers[layer]
        m = lay.matrices[(d, mat)]
        bits = 15 + self.config.weight_bits - 1  # 16-bit activations x weight codes
        return core.Image(
            lay.name, f"L{layer}.D{d}.{MATRICES[mat]}.B{block}", m.blocks[block], m.rows, bits
        )

    def split_entry(self, key, spmat: np.ndarray) -> tuple[np.ndarray, ...]:
        """An entry is a uint16: the low weight_bits a two's complement weight code, the
        high run_bits the relative row index z. Fillers are entries of weight 0."""
        wb = self.config.weight_bits
        codes = spmat & ((1 << wb) - 1)
        codes = np.where(codes >> (wb - 1), codes - (1 << wb), codes)
        return codes, spmat >> wb, codes == 0

    def dense_limits(self) -> tuple[int, int]:
        return DENSE_LIMIT, DENSE_LIMIT

    def check_sections(self) -> None:
        """The element-wise units' sections of every layer: biases, Rb_h, peepholes,
        the activation tables."""
        for lay in self.layers:
            g, h, d = lay.gates * lay.hidden, lay.hidden, lay.dirs
            self.section(f"L{lay.index}.bias", "iu", (d, g))
            if lay.rb_h:
                self.section(f"L{lay.index}.rb_h", "iu", (d, h))
            if lay.peepholes:
                self.section(f"L{lay.index}.peep", "iu", (d, 3 * h))
            for fn in TABLES:
                self.section(f"L{lay.index}.lut.{fn}", "iu", (2, lay.lut_segments))

    def cell_constants(self, layer: int) -> dict:
        """The element-wise units' contents for a layer: biases, Rb_h, peepholes, tables."""
        if layer not in self._cells:
            lay = self.layers[layer]
            sections = self.container.sections
            i, fl = lay.index, lay.formats.fl
            luts = {}
            for fn in TABLES:
                table = sections[f"L{i}.lut.{fn}"].astype(np.int64)
                luts[fn] = Lut(fn, fl, lay.lut_segments, table[0], table[1])
            self._cells[layer] = {
                "bias": sections[f"L{i}.bias"].astype(np.int64),
                "rb_h": sections[f"L{i}.rb_h"].astype(np.int64) if lay.rb_h else None,
                "peep": sections[f"L{i}.peep"].astype(np.int64) if lay.peepholes else None,
                "luts": luts,
            }
        return self._cells[layer]


# -- functional semantics --------------------------------------------------------------


@dataclass
class _Loop:
    """The state of the running `seq`: its operands, the step, and h, c, accumulators."""

    ops: dict[str, int]
    layer: _Layer
    d: int
    steps: int  # T
    lens: np.ndarray  # int64 [batch]
    h: np.ndarray  # [batch, H] codes at frac fh
    c: np.ndarray  # [batch, H] codes at frac fc
    s: int = -1
    t: np.ndarray | None = None  # [batch] time index of the step
    active: np.ndarray | None = None  # [batch] s < L
    x_t: np.ndarray | None = None  # [batch, input]
    acc: dict[int, np.ndarray] = field(default_factory=dict)  # mat -> [batch, rows]
    rh: np.ndarray | None = None  # GRU: rnd(r * h) [batch, H]


class _Machine(core.Machine):
    """The machine state of one run, and one function per instruction."""

    num_buffers = NUM_BUFFERS

    def __init__(self, sim: Simulator, batch: int):
        super().__init__(sim, batch)
        self.cell_loaded: tuple[int, int] | None = None
        self.loop: _Loop | None = None

    def exec_end(self, ops: dict[str, int]) -> None:
        """halt: the program is done with this input sequence"""
        self.halted = True

    def exec_barrier(self, ops: dict[str, int]) -> None:
        """wait until the PE channels and the element-wise units have drained

        Functionally a no-op: the simulation finishes every instruction before the next.
        """

    def exec_dma_in(self, ops: dict[str, int]) -> None:
        """buf[buf] = symbol[sym]        # this row's whole tensor: a sequence [T, n], states
                                      # [dirs, n], a length [] or a vector [n], as codes

        Host values become codes in the symbol's format (spec/fixedpoint.to_codes:
        round half to even, saturate); the host tensor's batch axis moves first.
        """
        sym = self.sim.symbols[ops["sym"]]
        if sym.name not in self.memory:
            raise DlhwcError(f"symbol '{sym.name}' has no value in host memory yet")
        rows = sym.rows(np.asarray(self.memory[sym.name]))
        if rows.shape[0] != self.batch or any(
            w >= 0 and g != w for g, w in zip(rows.shape[1:], sym.shape, strict=False)
        ) or rows.ndim != len(sym.shape) + 1:  # fmt: skip
            raise DlhwcError(
                f"symbol '{sym.name}' holds {list(np.shape(self.memory[sym.name]))}, "
                f"expected {sym.describe()} with batch {self.batch}"
            )
        self.buf[ops["buf"]] = to_codes(rows, sym.format)

    def exec_dma_out(self, ops: dict[str, int]) -> None:
        """symbol[sym] = buf[buf]        # this row's tensor, codes to host values

        Codes become float32 host values in the symbol's format (from_codes), in the
        host tensor's layout.
        """
        sym = self.sim.symbols[ops["sym"]]
        codes = self.buffer(ops["buf"])
        if any(w >= 0 and g != w for g, w in zip(codes.shape[1:], sym.shape, strict=False)):
            raise DlhwcError(
                f"buf[{ops['buf']}] holds {list(codes.shape[1:])}, symbol '{sym.name}' "
                f"{list(sym.shape)}"
            )
        self.memory[sym.name] = sym.host(from_codes(codes, sym.format))

    def exec_load(self, ops: dict[str, int]) -> None:
        """M = (W, R, Rh)[mat] of direction dir of layer
        for each PE k:
            ptr_sram[k][M]   = pointers of (M, block) for PE k        # cols+1 entries
            spmat_sram[k][M] = (w, z) entries of (M, block) for PE k  # 16 bits each

        The SRAM contents are the block's decoded triples (cached). Resident programs
        keep every loaded block; otherwise a load replaces the matrix's previous block.
        """
        key = (ops["layer"], ops["dir"], ops["mat"], ops["block"])
        self.sim.block(*key)
        if not self.sim.resident:
            self.loaded = {k for k in self.loaded if k[:3] != key[:3]}
        self.loaded.add(key)

    def exec_load_cell(self, ops: dict[str, int]) -> None:
        """element-wise units = direction dir of layer: biases b [gates*H] (frac fl),
        GRU's Rb_h [H] (linear_before_reset = 1), LSTM's peepholes P [3H],
        the sigmoid and tanh tables (slopes, intercepts) and the layer's formats
        """
        self.sim.cell_constants(ops["layer"])
        self.cell_loaded = (ops["layer"], ops["dir"])

    def exec_seq(self, ops: dict[str, int]) -> None:
        """T = steps of buf[x]                    # [T, input]
        L = buf[lens] if has_lens else T       # this row's sequence length
        if fresh:                              # the layer's first direction
            buf[y] = 0 [T, dirs, H];  buf[yh] = 0 [dirs, H];  buf[yc] = 0 [dirs, H]
        h = buf[h0][dir] if has_h0 else 0;  c = buf[c0][dir] if has_c0 else 0
        for s in 0..T-1:
            t = (L-1-s if rev else s)          # the step's time index
            x_t = buf[x][t]
            run the next `body` instructions   # spmv, gates, cell, load; they see s, t, x_t
                                               # (rows with s >= L keep h, c: see cell)
        buf[yh][dir] = h if L > 0 else 0       # a zero-length sequence leaves zero states
        if kind == LSTM: buf[yc][dir] = c if L > 0 else 0
        continue after the body

        This starts the loop (`begin_step` and `end_loop` do the rest): every row runs
        all T steps at once, the rows with s >= L frozen.
        """
        lay = self.sim.layers[ops["layer"]]
        d, hidden = ops["dir"], lay.hidden
        if self.cell_loaded != (lay.index, d):
            raise DlhwcError(f"layer '{lay.name}' direction {d}: no load.cell before the loop")
        x = self.buffer(ops["x"])
        if x.ndim != 3 or x.shape[2] != lay.input:
            raise DlhwcError(f"buf[{ops['x']}] is not a sequence [T, {lay.input}]")
        steps = x.shape[1]
        lens = np.full(self.batch, steps, dtype=np.int64)
        if ops["has_lens"]:
            lens = self.buffer(ops["lens"]).reshape(self.batch).astype(np.int64)
            if np.any((lens < 0) | (lens > steps)):
                bad = int(lens[(lens < 0) | (lens > steps)][0])
                raise DlhwcError(f"sequence length {bad} outside 0..{steps}")
        shapes = {
            "y": (steps, lay.dirs, hidden),
            "yh": (lay.dirs, hidden),
            "yc": (lay.dirs, hidden),
        }
        for key, shape in shapes.items():
            if ops["fresh"]:
                self.buf[ops[key]] = np.zeros((self.batch, *shape), dtype=np.int64)
            elif self.buffer(ops[key]).shape[1:] != shape:
                raise DlhwcError(f"buf[{ops[key]}] is not {list(shape)} (seq without fresh)")
        zeros = np.zeros((self.batch, hidden), dtype=np.int64)
        h = self._state(ops, "h0", lay, d) if ops["has_h0"] else zeros
        c = self._state(ops, "c0", lay, d) if ops["has_c0"] else zeros.copy()
        self.loop = _Loop(ops, lay, d, steps, lens, h.copy(), c.copy())

    def loop_steps(self) -> int:
        """Time steps of the running seq (T)."""
        return self.loop.steps

    def begin_step(self, s: int) -> None:
        """Step s of the running seq: each row's time index t and x_t."""
        loop = self.loop
        rows = np.arange(self.batch)
        t = loop.lens - 1 - s if loop.ops["rev"] else np.full(self.batch, s)
        loop.s, loop.t = s, np.clip(t, 0, loop.steps - 1)
        loop.active = s < loop.lens
        loop.x_t = self.buf[loop.ops["x"]][rows, loop.t]
        loop.acc, loop.rh = {}, None

    def end_loop(self) -> None:
        """The final states of the direction (a zero-length sequence leaves zeros)."""
        loop = self.loop
        ops, d = loop.ops, loop.d
        ended = (loop.lens > 0)[:, None]
        self.buf[ops["yh"]][:, d] = np.where(ended, loop.h, 0)
        if loop.layer.kind == "LSTM":
            self.buf[ops["yc"]][:, d] = np.where(ended, loop.c, 0)
        self.loop = None

    def exec_spmv(self, ops: dict[str, int]) -> None:
        """M, acc, a = [(W, acc_W, x_t), (R, acc_R, h), (Rh, acc_Rh, rh)][mat]
        if first: acc[row] = 0 for every row of M
        for j in columns of block, in order, where a[j] != 0:   # LNZD + broadcast
            for each PE k (in parallel):
                row = k                                  # PE-local rows k, k+N, ...
                for e in ptr_sram[k][M][j - col0] .. ptr_sram[k][M][j - col0 + 1] - 1:
                    (w, z) = spmat_sram[k][M][e]         # w = 0: a filler
                    row += z * N
                    acc[row] += w * a[j]                 # exact: no rounding, no saturation
                    row += N
        (last marks the last block of M: the sum is complete)

        Exact int64 sums (zero activations add nothing, so every column is summed).
        """
        key = (ops["layer"], ops["dir"], ops["mat"], ops["block"])
        if key not in self.loaded:
            raise DlhwcError(f"{MATRICES[ops['mat']]} block {ops['block']} is not loaded")
        loop = self.loop
        m = loop.layer.matrices[(ops["dir"], ops["mat"])]
        a = self.source(ops["mat"])
        blk = self.sim.block(*key)
        if ops["first"]:
            loop.acc[ops["mat"]] = np.zeros((self.batch, m.rows), dtype=np.int64)
        elif ops["mat"] not in loop.acc:
            raise DlhwcError(f"{MATRICES[ops['mat']]} accumulates without a first block")
        loop.acc[ops["mat"]] += core.block_product(blk, a[:, blk.col_start : blk.col_end], m.rows)

    def source(self, mat: int) -> np.ndarray:
        """The vector a product of matrix ``mat`` reads: x_t, h_{t-1} or r * h_{t-1}."""
        loop = self.loop
        if mat == 2:
            if loop.rh is None:
                raise DlhwcError("spmv mat=Rh before gates")
            return loop.rh
        return loop.x_t if mat == 0 else loop.h

    def exec_gates(self, ops: dict[str, int]) -> None:
        """# GRU with linear_before_reset = 0: the reset gate, before R's h rows run
        p_r = sat16(rnd(acc_W[r] >> (fx+fw-fl)) + rnd(acc_R[r] >> (fh+fr-fl)) + b[r]),
              clamped to +-clip
        r   = f1(p_r)                          # table, frac 15 (fl for Relu)
        rh  = sat16(rnd(r * h))                # frac fh: the vector of spmv mat=Rh
        """
        loop, lay, d = self.loop, self.loop.layer, ops["dir"]
        f, hh = lay.formats, lay.hidden
        wx, rh = self._acc(0), self._acc(1)
        bias = self.sim.cell_constants(lay.index)["bias"][d]
        luts = self.sim.cell_constants(lay.index)["luts"]
        rows = slice(hh, 2 * hh)
        p = arith.pre_activation(wx[:, rows], rh[:, rows], bias[rows], f, lay.clip)
        name = lay.activations[d][0]
        frac = gate_frac(name, f.fl)
        r = arith.activation(name, p, luts, f.fl, frac)
        loop.rh = saturate(arith.mul(r, frac, loop.h, f.fh, f.fh), 16)

    def exec_cell(self, ops: dict[str, int]) -> None:
        """one step of arith.lstm_step / gru_step / rnn_step on acc_W, acc_R (frac fx+fw,
        fh+fr), b, the peepholes and tables, h and c:
          LSTM: (h', c') = lstm_step(acc_W, acc_R, b, c, P, acts, tables, clip, input_forget)
          GRU:  h' = gru_step(acc_W, acc_R[z, r], term, b, h, ...) with the h gate's term
                lbr=0: rnd(acc_Rh >> (fh+fr-fl))        lbr=1: rnd(r * (rnd(acc_R[h] >>
                (fh+fr-fl)) + Rb_h))
          RNN:  h' = rnn_step(acc_W, acc_R, b, acts, tables, clip)
        if s < L:                              # rows past their length are frozen
            h, c = h', c'
            buf[y][t][dir] = h
        """
        loop, lay, d = self.loop, self.loop.layer, ops["dir"]
        k = self.sim.cell_constants(lay.index)
        f, luts, acts, hh = lay.formats, k["luts"], list(lay.activations[d]), lay.hidden
        wx, rh = self._acc(0), self._acc(1)
        c_new = loop.c
        if lay.kind == "LSTM":
            peep = None if k["peep"] is None else k["peep"][d]
            h_new, c_new = arith.lstm_step(
                wx, rh, k["bias"][d], loop.c, peep, acts, luts, f, lay.clip, lay.input_forget
            )
        elif lay.kind == "GRU":
            if lay.lbr:
                inner = arith.align(rh[:, 2 * hh :], f.fh + f.fr, f.fl) + k["rb_h"][d]

                def term(r, r_frac):
                    return arith.mul(r, r_frac, inner, f.fl, f.fl)
            else:
                rh_h = arith.align(self._acc(2), f.fh + f.fr, f.fl)

                def term(r, r_frac):
                    return rh_h

            h_new = arith.gru_step(
                wx, rh[:, : 2 * hh], term, k["bias"][d], loop.h, acts, luts, f, lay.clip, 0
            )
        else:
            h_new = arith.rnn_step(wx, rh, k["bias"][d], acts, luts, f, lay.clip)
        rows = np.flatnonzero(loop.active)
        # A 16-bit state at its bound counts as saturated (the step functions saturate
        # h and c last, so a state can only get there by saturation or by landing on it).
        numerics = self.numerics[lay.index]
        numerics.record(h_new[rows], _at_bound(h_new[rows]))
        if lay.kind == "LSTM":
            numerics.results += c_new[rows].size
            numerics.saturated += int(np.count_nonzero(_at_bound(c_new[rows])))
        active = loop.active[:, None]
        loop.h = np.where(active, h_new, loop.h)
        loop.c = np.where(active, c_new, loop.c)
        self.buf[loop.ops["y"]][rows, loop.t[rows], d] = loop.h[rows]

    def _acc(self, mat: int) -> np.ndarray:
        acc = self.loop.acc.get(mat)
        if acc is None:
            raise DlhwcError(f"acc_{MATRICES[mat]} is read before a product wrote it")
        return acc

    def _state(self, ops: dict[str, int], key: str, lay: _Layer, d: int) -> np.ndarray:
        state = self.buffer(ops[key])
        if state.shape[1:] != (lay.dirs, lay.hidden):
            raise DlhwcError(f"buf[{ops[key]}] is not a state [{lay.dirs}, {lay.hidden}]")
        return state[:, d]


def _at_bound(codes: np.ndarray) -> np.ndarray:
    return (codes >= (1 << 15) - 1) | (codes <= -(1 << 15))


# -- cycles and energy -----------------------------------------------------------------


@dataclass
class _Tally(core.SparseTally):
    """Counts of one layer (or of the whole run), totals over the batch."""

    EVENTS = ENERGY_EVENTS

    spmv_cycles: int = 0  # PE-array cycles of products (with fill, drain and reloads)
    cell_cycles: int = 0  # element-wise/table cycles (gates and cell phases)
    serial_cycles: int = 0  # the time steps' cycles without overlap
    steps: int = 0  # time steps run (rows x directions x active steps)
    runs: int = 0  # (row, direction) loops of at least one step
    step_cycles: list[int] = field(default_factory=list)  # by step index: summed cycles
    step_count: list[int] = field(default_factory=list)  # by step index: rows x dirs

    @property
    def pe_cycles(self) -> int:
        return self.spmv_cycles

    def cycle_fields(self, sim, n: int) -> dict:
        """The core's cycle fields, with the steps and the overlap's saving."""
        serial, compute = self.serial_cycles, self.cycles["compute"]
        return {
            "steps": self.steps,
            **super().cycle_fields(sim, n),
            "spmv_cycles": self.spmv_cycles,
            "cell_cycles": self.cell_cycles,
            "cycles_without_overlap": serial,
            "overlap_saving_cycles": serial - compute,
            "overlap_saving": (serial - compute) / serial if serial else 0.0,
        }

    def add_steps(self, cycles: np.ndarray, counts: np.ndarray) -> None:
        n = len(cycles)
        for name, values in (("step_cycles", cycles), ("step_count", counts)):
            series = getattr(self, name)
            series.extend([0] * (n - len(series)))
            for s in range(n):
                series[s] += int(values[s])


@dataclass
class _Record:
    """What the body instructions of the running seq did, per step (for the schedule)."""

    phase: list[str]  # per body position: "W", "R", "G", "Rh", "C" or "" (load only)
    nz: dict[int, list[np.ndarray]]  # body position -> per step [batch, ncols] bool
    load_words: dict[int, int]  # body position -> words of an in-loop load


class _CostModel(core.SparseCostModel):
    """Cycles and event counts of each executed instruction (see backends/ese/README.md).

    Outside loops an instruction is charged before it executes. Inside a `seq` the body
    instructions record what they read; `end_loop` then costs every product, phase and
    step, and schedules the steps of each row:

    The PE array runs one product at a time; the element-wise units run the gates and
    cell phases. For row b, step s (active steps only, s < L_b), with W(s), R(s), Rh(s)
    the product times (LNZD/FIFO recurrence + pipeline fill/drain + in-loop reloads),
    G(s) and C(s) the gates and cell phases:

        W(s)  starts when the PE array is free: ws = pe_free      (x_t is known up front)
        R(s)  starts after W(s) and after cell(s-1):  rs = max(ws + W(s), e(s-1))
        GRU lbr=0: G(s) after R(s); Rh(s) after G(s)   (r * h needs the reset gate)
        C(s)  after the last product of the step;  e(s) = its end
        pe_free = the end of the step's last product  (so W(s+1) overlaps C(s))

    i.e. a step takes max(W(s+1), C(s)) + R(s+1) between the ends of R(s) and R(s+1):
    accumulators are double-buffered, so W x_{t+1} accumulates while cell(t) reads the
    sums of step t. Without overlap a step takes W + R (+ G + Rh) + C. Directions and
    layers run one after the other; each row (input sequence) runs alone.
    """

    tally_class = _Tally

    def __init__(self, sim: Simulator, batch: int):
        super().__init__(sim, batch)
        self.record: _Record | None = None
        self.seq_pos = 0

    def charge(self, pos: int, mnemonic: str, ops: dict[str, int], machine: _Machine) -> None:
        loop = machine.loop
        if loop is not None and loop.s >= 0:  # inside a body
            self.executed[mnemonic] += int(loop.active.sum())
            self._record(pos, mnemonic, ops, machine)
            return
        if self.sim.kind(mnemonic) == "loop":
            self.seq_pos = pos
        super().charge(pos, mnemonic, ops, machine)

    # -- outside loops ------------------------------------------------------------------

    def transfer_size(self, kind: str, ops, machine, tally):
        """ceil(bits / 32) words per row; one buffer access per element."""
        sym = self.sim.symbols[ops["sym"]]
        if kind == "transfer_in":
            size = np.asarray(machine.memory.get(sym.name, np.zeros(0))).size // self.batch
        else:
            size = int(np.prod(machine.buffer(ops["buf"]).shape[1:]))
        tally.events["buffer_access"] += size * self.batch
        return size, self.batch, sym.format.bits

    def load_size(self, ops) -> tuple[tuple, int]:
        """A block's ptr (ptr_bits each) and spmat (spmat_entry_bits each) images, or the
        element-wise units' contents of one direction (load.cell): biases (32 bits each),
        Rb_h (32), peepholes (16) and the two tables (64 bits a segment)."""
        if "mat" in ops:
            return super().load_size(ops)
        lay = self.sim.layers[ops["layer"]]
        h = lay.hidden
        bits = (
            lay.gates * h * 32 + (h * 32 if lay.rb_h else 0) + (3 * h * 16 if lay.peepholes else 0)
        )
        bits += len(TABLES) * lay.lut_segments * 64
        return ("cell", ops["layer"], ops["dir"]), words(bits)

    def cost_compute(self, ops, machine, tally) -> None:
        """Never outside a loop body (`check_program`); recorded there (`_record`)."""

    def cost_loop(self, ops, machine, tally) -> None:
        """Starts recording the loop's body; the loop is costed by `end_loop`."""
        pos, n = self.seq_pos, ops["body"]
        phase = []
        for _, m, o in self.sim.program[pos + 1 : pos + 1 + n]:
            if m == "spmv":
                phase.append(("W", "R", "Rh")[o["mat"]])
            else:
                phase.append({"gates": "G", "cell": "C"}.get(m, ""))
        self.record = _Record(phase, {}, {})

    # -- inside loops -------------------------------------------------------------------

    def _record(self, pos: int, mnemonic: str, ops, machine: _Machine) -> None:
        j = pos - self.seq_pos - 1
        if mnemonic == "spmv":
            blk = self.sim.block(ops["layer"], ops["dir"], ops["mat"], ops["block"])
            a = machine.source(ops["mat"])[:, blk.col_start : blk.col_end]
            self.record.nz.setdefault(j, []).append(a != 0)
        elif mnemonic == "load":
            key = (ops["layer"], ops["dir"], ops["mat"], ops["block"])
            self.record.load_words[j] = self.sim.block(*key).load_words

    def end_loop(self, machine: _Machine) -> None:
        """Cost the finished loop: every product and phase of every active step, then the
        schedule of each row's steps."""
        loop, rec, cfg = machine.loop, self.record, self.cfg
        lay, d = loop.layer, loop.d
        self.record = None
        if loop.steps == 0:  # sequences of no steps: nothing ran
            return
        tally = self.layers[lay.index]
        body = self.sim.program[self.seq_pos + 1 : self.seq_pos + 1 + len(rec.phase)]
        steps, batch = loop.steps, self.batch
        active = np.arange(steps)[:, None] < loop.lens[None, :]  # [T, batch]
        act = active.astype(np.int64)
        phases = {p: np.zeros((steps, batch), dtype=np.int64) for p in ("W", "R", "G", "Rh", "C")}
        pending_load = 0
        for j, (_, mnemonic, ops) in enumerate(body):
            if mnemonic == "load":
                pending_load += rec.load_words[j]
                continue
            if mnemonic != "spmv":
                continue
            blk = self.sim.block(ops["layer"], ops["dir"], ops["mat"], ops["block"])
            nz = np.stack(rec.nz[j])  # [T, batch, ncols]
            flat = nz.reshape(steps * batch, -1) & active.reshape(-1, 1)
            items = flat.sum(axis=1)
            ends = core.fifo_recurrence(flat, items, blk.work_t, cfg.fifo_depth).reshape(
                steps, batch
            )
            reload = -(-pending_load // cfg.dma_words_per_cycle)
            cycles = (ends + cfg.pipeline_stages + reload) * act
            phases[rec.phase[j]] += cycles
            tally.add_product(flat.astype(np.int64), items, blk, cfg)
            tally.activations += blk.ncols * int(act.sum())
            ev = tally.events
            ev["buffer_access"] += blk.ncols * int(act.sum())  # the LNZD scans the vector
            if pending_load:
                n = pending_load * int(act.sum())
                ev["dram_word"] += n
                tally.load_words += n
                pending_load = 0
        gates, cell = cell_counts(lay, d)
        for phase, counts in (("G", gates), ("C", cell)):
            if counts is None:
                continue
            phases[phase] += counts.cycles(cfg) * act
            n = int(act.sum())
            tally.events["ew_op"] += (counts.ew + counts.relus) * n
            tally.events["lut_lookup"] += counts.tables * n
        tally.events["buffer_access"] += lay.hidden * int(act.sum())  # Y writes
        step, serial = self.schedule(phases, active)
        tally.cycles["compute"] += int(step.sum())
        tally.spmv_cycles += int(sum(phases[p].sum() for p in ("W", "R", "Rh")))
        tally.cell_cycles += int(phases["G"].sum() + phases["C"].sum())
        tally.serial_cycles += int(serial.sum())
        tally.steps += int(act.sum())
        tally.runs += int((loop.lens > 0).sum())
        tally.add_steps(step.sum(axis=1), act.sum(axis=1))

    @staticmethod
    def schedule(phases: dict[str, np.ndarray], active: np.ndarray):
        """(step times [T, batch], step times without overlap [T, batch]).

        The recurrence of the class docstring, vectorized over rows: a step's time is
        e(s) - e(s-1), the end of its cell phase minus the previous one's.
        """
        steps, batch = active.shape
        pe_free = np.zeros(batch, dtype=np.int64)
        e_prev = np.zeros(batch, dtype=np.int64)
        out = np.zeros((steps, batch), dtype=np.int64)
        for s in range(steps):
            on = active[s]
            w_end = pe_free + phases["W"][s]
            r_end = np.maximum(w_end, e_prev) + phases["R"][s]
            last = r_end + phases["G"][s] + phases["Rh"][s]  # the step's last product
            e = last + phases["C"][s]
            out[s] = np.where(on, e - e_prev, 0)
            pe_free = np.where(on, last, pe_free)
            e_prev = np.where(on, e, e_prev)
        serial = sum(phases[p] for p in ("W", "R", "G", "Rh", "C")) * active
        return out, serial

    # -- results ----------------------------------------------------------------------

    def describe(self, lay: _Layer) -> dict:
        return {
            "name": lay.name,
            "kind": lay.kind.lower(),
            "out_format": f"fixed<16,{lay.formats.fh}>",
            "direction": lay.direction,
            "dirs": lay.dirs,
            "hidden": lay.hidden,
            "input": lay.input,
            "gates": lay.gates,
            "matrices": [_matrix_json(m) for m in lay.matrices.values()],
        }

    def layer_extra(self, tally: _Tally) -> dict:
        return {
            "step_cycles": [
                c / k if k else 0.0
                for c, k in zip(tally.step_cycles, tally.step_count, strict=True)
            ]
        }

    def dense_cost(self, lay: _Layer, tally: _Tally, n: int, resident: bool):
        """The same layer, uncompressed, on the same machine (computed, not executed).

        Every weight is a weight_bits value without an index, every element of x_t and h is
        broadcast, and each PE does ceil(rows / N) MACs per column: a product of a matrix
        takes cols * ceil(rows / N) + pipeline_stages cycles (plus, when the dense weights
        of all layers do not fit the SRAMs, their reload every step). The gates and cell
        phases and the schedule are the compressed layer's, so each direction of a row takes
        W + R + G + Rh + C for its first step and max(W, C) + R + G + Rh for every other.
        Transfers and the loads outside the loops are the compressed layer's too.
        """
        cfg = self.cfg
        pes = cfg.num_pes
        times = {}
        reads = macs = load_words = 0
        for (d, mat), m in lay.matrices.items():
            if d:
                continue
            rows_pe = core.rows_per_pe(m.rows, pes)
            w = words(m.rows * m.cols * cfg.weight_bits)
            reload = 0 if resident else -(-w // cfg.dma_words_per_cycle)
            times[MATRICES[mat]] = m.cols * int(rows_pe.max()) + cfg.pipeline_stages + reload
            reads += m.cols * int(np.sum(-(-(rows_pe * cfg.weight_bits) // cfg.spmat_read_bits)))
            macs += m.rows * m.cols
            load_words += w
        gates, cell = cell_counts(lay, 0)
        g = gates.cycles(cfg) if gates else 0
        c = cell.cycles(cfg)
        wt, rt, rht = times["W"], times["R"], times.get("Rh", 0)
        first, rest = wt + rt + g + rht + c, max(wt, c) + rt + g + rht
        compute = tally.runs * first + (tally.steps - tally.runs) * rest
        events = self.dense_events(tally)
        events["spmat_read"] = reads * tally.steps
        events["mac"] = macs * tally.steps
        for k in ("ew_op", "lut_lookup", "buffer_access", "host_word"):
            events[k] = tally.events[k]
        all_words = load_words * lay.dirs
        events["dram_word"] = all_words if resident else load_words * tally.steps
        load = -(-all_words // cfg.dma_words_per_cycle) if resident else 0
        return compute, load, events


def _matrix_json(m: _Matrix) -> dict:
    return {
        "dir": m.dir,
        "mat": MATRICES[m.mat],
        "rows": m.rows,
        "cols": m.cols,
        "blocks": len(m.blocks),
        "nonzeros": m.nonzeros,
        "entries": m.entries,
        "fillers": m.fillers,
        "density": m.nonzeros / max(1, m.rows * m.cols),
    }


# -- stats -----------------------------------------------------------------------------


@dataclass
class Stats(core.SparseStats):
    """What a run cost, per layer, per host segment and in total.

    Counts (cycles, events, energy, time) are totals over the batch of `total.vectors`
    input sequences; keys ending in `_per_vector` are per-sequence averages, in
    `_per_step` per time step (of one direction of one sequence). The schema is EIE's
    (runtime/eie/sim.py) plus the recurrent fields; it is listed in backends/ese/README.md.
    """

    TARGET = "ese"
    UNIT, PER = "sequence", "step"

    def table_lines(self, n: int) -> list[str]:
        t = self.total
        lines = self.title(n, f", {t['steps']} steps", "reloaded every step")
        head = [
            "layer", "kind", "density", "act.dens", "cycles/step", "µs/step", "overlap",
            "load eff", "padding", "nJ/step", "cycles/seq", "dense cyc", "speedup",
            "energy saving",
        ]  # fmt: skip
        rows = [head]
        for e in self.layers:
            rows.append([
                e["name"], f"{e['kind']} {_DIRECTION.get(e['direction'], '')}",
                pct(e["density"]), pct(e["activation_density"]), num(e["cycles_per_step"]),
                f"{e['time_us_per_step']:.3f}", pct(e["overlap_saving"]),
                pct(e["load_efficiency"]), pct(e["padding_overhead"]),
                f"{e['energy_pj_per_step'] / 1000:.2f}", num(e["cycles_per_vector"]),
                num(e["dense"]["cycles_per_vector"]), f"{e['speedup']:.2f}×",
                f"{e['energy_saving']:.2f}×",
            ])  # fmt: skip
        rows.append([
            "total", "", "", "", num(t["cycles_per_step"]), f"{t['time_us_per_step']:.3f}",
            pct(t["overlap_saving"]), pct(t["load_efficiency"]), "",
            f"{t['energy_pj_per_step'] / 1000:.2f}", num(t["cycles_per_vector"]),
            num(t["dense"]["cycles_per_vector"]), f"{t['speedup']:.2f}×",
            f"{t['energy_saving']:.2f}×",
        ])  # fmt: skip
        lines += align(rows, left=2)
        lines.append("")
        b = t["cycles_breakdown"]
        lines.append(
            "cycles/sequence: "
            + ", ".join(f"{k} {num(b[k] / n)}" for k in core.CYCLE_KINDS)
            + f"; products {num(t['spmv_cycles'] / n)}, element-wise "
            f"{num(t['cell_cycles'] / n)}, saved by overlap "
            f"{num(t['overlap_saving_cycles'] / n)}; MAC utilization "
            f"{pct(t.get('mac_utilization', 0.0))}"
        )
        return lines


def static_report(sim: Simulator) -> str:
    """The per-layer table of a container, without running it: shapes, density, blocks,
    entries and fillers, SRAM use per PE against capacity, residency, host segments and
    placement."""
    cfg = sim.config
    lines = [
        f"ESE program: {len(sim.program)} instructions, {len(sim.layers)} layers, "
        f"{len(sim.segments)} host segment{'' if len(sim.segments) == 1 else 's'}; "
        f"{cfg.num_pes} PEs at {cfg.clock_mhz} MHz",
        "",
    ]
    head = [
        "layer", "matrix", "rows×cols", "density", "blocks", "entries", "fillers", "padding",
        "entries/PE", "ptrs/PE",
    ]  # fmt: skip
    rows = [head]
    for lay in sim.layers:
        for (d, mat), m in lay.matrices.items():
            entries_pe = max((max(b["entries"], default=0) for b in m.blocks), default=0)
            ptrs = max((b["col_end"] - b["col_start"] + 1 for b in m.blocks), default=0)
            rows.append([
                f"{lay.name} ({lay.kind.lower()})", f"D{d}.{MATRICES[mat]}",
                f"{m.rows}×{m.cols}", pct(m.nonzeros / max(1, m.rows * m.cols)),
                str(len(m.blocks)), str(m.entries), str(m.fillers),
                pct(m.fillers / m.entries if m.entries else 0.0),
                f"{entries_pe}/{cfg.spmat_capacity}", f"{ptrs}/{cfg.ptr_capacity}",
            ])  # fmt: skip
    lines += align(rows, left=2)
    lines += sim.report_tail(
        "loaded once, kept across steps and sequences", "reloaded every time step"
    )
    for lay in sim.layers:
        acts = " / ".join(", ".join(a) for a in lay.activations)
        extras = [
            f"clip {lay.clip}" if lay.clip is not None else "",
            "peepholes" if lay.peepholes else "",
            "input_forget" if lay.input_forget else "",
            f"linear_before_reset={int(lay.lbr)}" if lay.kind == "GRU" else "",
            f"layout={lay.layout}",
        ]
        lines.append(
            f"layer {lay.name}: {lay.kind} {lay.direction}, hidden {lay.hidden}, input "
            f"{lay.input}, activations {acts}; " + ", ".join(x for x in extras if x)
        )
    lines += sim.report_end()
    return "\n".join(lines) + "\n"


def summary_line(stats: Stats) -> str:
    """One line of the run's totals, per sequence and per step."""
    return stats.summary_line(f", overlap saves {pct(stats.total['overlap_saving'])}")


# The simulator's parts, defined after it (they name it in their annotations).
Simulator.machine_class, Simulator.cost_model_class = _Machine, _CostModel
Simulator.stats_class = Stats
