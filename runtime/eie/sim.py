"""The EIE simulator: executes a program container bit for bit and models its cycles and energy.

The simulator reads only the container (spec/container.py): the header's hardware
config, symbol table, layer table and host segments, and the sections the compiler laid
out (backends/eie/program.py). It never sees the compiler's IR; every number it reports
comes from the instructions it executed on the data it was given.

What every sparse PE machine does the same way is the simulator core's
(runtime/core.py): decoding the instruction stream and the column blocks' images,
residency and capacity, the broadcast/FIFO channel model, cost attribution by
instruction class, the tallies, the dense baseline's frame, the stats and the tables.
This file holds what EIE's hardware does its own way:

- the layer table of FC layers y = f(W a + b), its codebook and bias sections, and
  entries of a 4-bit codebook index and a 4-bit run (`Simulator`);
- one small function per instruction (`_Machine.exec_<mnemonic>`) whose docstring
  repeats the ISA pseudo-code; activation buffers are int64 arrays [vectors, n] of
  fixed-point codes, vectorized over the batch, and a run streams long batches through
  the program in chunks (`Simulator.run`);
- the cost of `spmv` (activation register files, codebook lookups, LNZD broadcasts) and
  of the dense baseline (`_CostModel`); the equations are in backends/eie/README.md;
- the columns of the stats table and the static report (`Stats`, `static_report`).
Counts are totals over the batch; the keys ending in `_per_vector` are the averages per
input vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlhwc.runtime.common import (
    align,
    num,
    pct,
    words,
)
from dlhwc.runtime.core import (
    CYCLE_KINDS,
    Image,
    Machine,
    SparseCostModel,
    SparseSimulator,
    SparseStats,
    SparseTally,
    block_product,
    fifo_recurrence,
    rows_per_pe,
)
from dlhwc.runtime.eie.arith import finish_counted
from dlhwc.spec.eie.config import EIEConfig
from dlhwc.spec.eie.container import EIELayer
from dlhwc.spec.eie.isa import EIE_ISA
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.fixedpoint import FixedFormat, from_codes, to_codes

NUM_BUFFERS = 4
"""On-chip activation buffers buf[0..3] (the ISA's 2-bit buffer fields)."""

DENSE_LIMIT = 1 << 20
"""A decoded block with at most this many rows x columns also keeps a dense copy of its
weight codes, which `spmv` uses when a batch of vectors makes that cheaper than gathering
the entries of their non-zero activations' columns."""

DENSE_LIMIT_FILLED = 1 << 23
"""The same bound for a block at least 1/16 full (64 MB of float64 codes): a matrix
product beats gathering its entries vector by vector."""

ENERGY_EVENTS = (
    "spmat_read",
    "ptr_read",
    "codebook_lookup",
    "mac",
    "act_regfile",
    "act_sram",
    "lnzd",
    "dram_word",
    "host_word",
)
"""The counted events; each has an energy per event of the same name in `EIEEnergy`."""


@dataclass(frozen=True)
class _Layer:
    """A layer of the header's layer table, checked."""

    index: int
    name: str
    rows: int
    cols: int
    in_format: FixedFormat
    weight_format: FixedFormat
    out_format: FixedFormat
    has_bias: bool
    nonzeros: int
    blocks: tuple[dict, ...]

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [(self.rows, self.cols)]

    @property
    def entries(self) -> int:
        return sum(sum(b["entries"]) for b in self.blocks)

    @property
    def fillers(self) -> int:
        return sum(sum(b["fillers"]) for b in self.blocks)


# -- the simulator ---------------------------------------------------------------------


class Simulator(SparseSimulator):
    """Loads a program container and runs it: `run(inputs) -> (outputs, Stats)`."""

    target = "eie"
    isa = EIE_ISA
    config_class = EIEConfig
    reads, writes = "src", "dst"

    # -- loading ----------------------------------------------------------------------

    def parse_layer(self, i: int, e: EIELayer) -> _Layer:
        """Layer ``i`` of the layer table (checked by its record, spec/eie/container.py),
        with each block in the JSON form the cost model reads."""
        return _Layer(
            i, e.name, e.rows, e.cols, e.in_format, e.weight_format, e.out_format, e.bias,
            e.nonzeros, tuple(b.to_json() for b in e.blocks),
        )  # fmt: skip

    def check_operands(self, index: int, mnemonic: str, ops: dict[str, int]) -> None:
        """What the core checks, and the layer's block and bias."""
        super().check_operands(index, mnemonic, ops)
        where = f"instruction {index} ({mnemonic})"
        if "layer" in ops:
            layer = self.layers[ops["layer"]]
            if ops["block"] >= len(layer.blocks):
                raise self.error(
                    f"{where}: layer '{layer.name}' has no block {ops['block']} "
                    f"({len(layer.blocks)} blocks)"
                )
            if ops.get("bias") and not layer.has_bias:
                raise self.error(f"{where}: bias=1 but layer '{layer.name}' has no bias")

    def image_keys(self) -> list[tuple[int, int]]:
        return [(lay.index, b) for lay in self.layers for b in range(len(lay.blocks))]

    def image(self, key: tuple[int, int]) -> Image:
        """Block b of layer i: sections L{i}.B{b}.ptr and .spmat; its load also brings
        the codebook (once, broadcast to the PEs) and the biases (acc_bits each). A source
        vector longer than the register files (regfile_capacity) is processed in batches
        of regfile_capacity columns, each batch after the first refilled from the
        activation SRAM."""
        cfg, (layer, block) = self.config, key
        lay = self.layers[layer]
        b = lay.blocks[block]
        extra = words(cfg.codebook_entries * cfg.weight_bits)
        if lay.has_bias:
            extra += words(lay.rows * cfg.acc_bits)
        cap = cfg.regfile_capacity
        refills = sum(
            1 for k in range(1, -(-lay.cols // cap)) if b["col_start"] <= k * cap < b["col_end"]
        )
        bits = lay.in_format.bits - 1 + lay.weight_format.bits - 1
        return Image(lay.name, f"L{layer}.B{block}", b, lay.rows, bits, extra, refills)

    def split_entry(self, key, spmat: np.ndarray) -> tuple[np.ndarray, ...]:
        """An entry is (v, z): codebook index v in the low index_bits, run z above; v = 0
        is a filler (codebook[0] = 0)."""
        cfg = self.config
        v = spmat & (cfg.codebook_entries - 1)
        codebook = self.container.sections[f"L{key[0]}.codebook"].astype(np.int64)
        return codebook[v], spmat >> cfg.index_bits, v == 0

    def dense_limits(self) -> tuple[int, int]:
        return DENSE_LIMIT, DENSE_LIMIT_FILLED

    def check_sections(self) -> None:
        """Each layer's codebook (index 0, the filler, is 0) and biases."""
        cfg = self.config
        for lay in self.layers:
            codebook = self.section(f"L{lay.index}.codebook", "iu", (cfg.codebook_entries,))
            if int(codebook[0]) != 0:
                raise self.error(
                    f"section 'L{lay.index}.codebook': codebook[0] is {int(codebook[0])}; "
                    "index 0 is the filler code and must be 0"
                )
            if lay.has_bias:
                self.section(f"L{lay.index}.bias", "iu", (lay.rows,))


# -- functional semantics --------------------------------------------------------------


class _Machine(Machine):
    """The machine state of one run, and one function per instruction."""

    num_buffers = NUM_BUFFERS

    def __init__(self, sim: Simulator, batch: int):
        super().__init__(sim, batch)
        self.lead: list[tuple[int, ...]] = [()] * NUM_BUFFERS  # the buffers' leading shape
        self.acc: dict[int, np.ndarray] = {}  # layer -> int64 [vectors, rows]

    def exec_end(self, ops: dict[str, int]) -> None:
        """halt: the program is done with this input vector"""
        self.halted = True

    def exec_barrier(self, ops: dict[str, int]) -> None:
        """wait until every PE's activation FIFO and pipeline have drained

        Functionally a no-op: the simulation finishes every instruction before the next.
        """

    def exec_dma_in(self, ops: dict[str, int]) -> None:
        """n = len(symbol[sym])
        for j in 0..n-1: buf[buf][j] = symbol[sym][j]          # element j to PE j mod N

        Host float values become codes in the symbol's format (round half to even,
        saturate: spec/fixedpoint.to_codes). The buffer holds the whole host tensor
        as vectors of its last dimension (every leading index a vector: the batch rows,
        a Transformer's tokens, a convolution's patches), and remembers its leading
        shape for the dma.out of the result.
        """
        sym = self.sim.symbols[ops["sym"]]
        if sym.name not in self.memory:
            raise DlhwcError(f"symbol '{sym.name}' has no value in host memory yet")
        values = np.asarray(self.memory[sym.name])
        self._check_host_shape(sym, values)
        width = values.shape[-1] if values.ndim else 1
        self.buf[ops["buf"]] = to_codes(values.reshape(-1, width), sym.format)
        self.lead[ops["buf"]] = values.shape[:-1]

    def exec_dma_out(self, ops: dict[str, int]) -> None:
        """n = len(symbol[sym])
        for j in 0..n-1: symbol[sym][j] = buf[buf][j]

        Codes become host float values in the symbol's format (from_codes), in the
        leading shape of the tensor the layer read.
        """
        sym = self.sim.symbols[ops["sym"]]
        codes = self.buffer(ops["buf"])
        values = from_codes(codes, sym.format).reshape(*self.lead[ops["buf"]], codes.shape[1])
        self._check_host_shape(sym, values)
        self.memory[sym.name] = values

    def _check_host_shape(self, sym, values: np.ndarray) -> None:
        """The host tensor must have the symbol's rank and static dimensions."""
        expected = list(sym.shape)
        if sym.batch_axis is not None:
            expected.insert(sym.batch_axis, -1)
        if values.ndim != len(expected) or any(
            e >= 0 and v != e for v, e in zip(values.shape, expected, strict=True)
        ):
            shown = ["?" if d < 0 else d for d in expected]
            raise DlhwcError(
                f"symbol '{sym.name}' holds {list(values.shape)} in host memory, expected {shown}"
            )

    def exec_load(self, ops: dict[str, int]) -> None:
        """for each PE k:
            ptr_sram[k]   = pointers of (layer, block) for PE k     # cols+1 entries
            spmat_sram[k] = (v, z) entries of (layer, block) for PE k
            codebook[k]   = codebook of layer                       # 2^index_bits codes
            bias[k]       = biases of the rows of layer on PE k     # frac fa+fw

        The SRAM contents are the block's decoded (row, column, code) triples (cached).
        Resident programs keep every loaded block; otherwise a load replaces the last.
        """
        key = (ops["layer"], ops["block"])
        self.sim.block(*key)
        if not self.sim.resident:
            self.loaded.clear()
        self.loaded.add(key)

    def exec_spmv(self, ops: dict[str, int]) -> None:
        """if first: acc[row] = 0 for every row of layer
        for j in columns of block, in order, where a = buf[src][j] != 0:   # LNZD + broadcast
            for each PE k (in parallel):
                row = k                                  # PE-local rows k, k+N, ...
                for e in ptr_sram[k][j - col0] .. ptr_sram[k][j - col0 + 1] - 1:
                    (v, z) = spmat_sram[k][e]
                    row += z * N
                    acc[row] += codebook[k][v] * a       # v = 0 is a filler: codebook[0] = 0
                    row += N
        if last:
            for every row r of layer:
                s = sat(acc[r] + (bias[r] if bias else 0), acc_bits)
                y = sat(round_half_even(s * 2^-shift), act_bits)
                buf[dst][r] = max(y, 0) if relu else y

        The sums are exact integers (zero activations add nothing, so every column is
        summed); `last` finishes with runtime/eie/arith.finish, counts the results that
        saturation changed and the all-zero output vectors (NumericsTally), and keeps the
        layer's inputs and outputs when the simulator records them (`record_layers`).
        """
        layer, block = ops["layer"], ops["block"]
        lay = self.sim.layers[layer]
        if (layer, block) not in self.loaded:
            raise DlhwcError(f"layer '{lay.name}' block {block} is not loaded")
        blk = self.sim.block(layer, block)
        source = self.vectors(ops["src"], lay.cols)
        a = source[:, blk.col_start : blk.col_end]
        lead = self.lead[ops["src"]]
        if ops["first"]:
            self.acc[layer] = np.zeros((source.shape[0], lay.rows), dtype=np.int64)
            if self.sim.record_layers:
                values = from_codes(source, lay.in_format)
                self.layer_inputs[lay.name] = values.reshape(*lead, lay.cols)
        elif layer not in self.acc:
            raise DlhwcError(f"layer '{lay.name}' accumulates without a first block")
        self.acc[layer] += block_product(blk, a, lay.rows)
        if ops["last"]:
            bias = None
            if ops["bias"]:
                bias = self.sim.container.sections[f"L{layer}.bias"].astype(np.int64)
            y, saturated = finish_counted(
                self.acc.pop(layer),
                bias,
                ops["shift"],
                bool(ops["relu"]),
                lay.out_format.bits,
                self.cfg.acc_bits,
            )
            self.numerics[layer].record(y, saturated)
            if self.sim.record_layers:
                values = from_codes(y, lay.out_format)
                self.layer_outputs[lay.name] = values.reshape(*lead, lay.rows)
            self.buf[ops["dst"]] = y
            self.lead[ops["dst"]] = lead

    def vectors(self, b: int, n: int) -> np.ndarray:
        """buf[b]'s n-element activation vectors [vectors, n]."""
        codes = self.buffer(b)
        if codes.shape[1] != n:
            raise DlhwcError(f"buf[{b}] holds vectors of {codes.shape[1]} elements, {n} expected")
        return codes


# -- cycles and energy -----------------------------------------------------------------


@dataclass
class _Tally(SparseTally):
    """Counts of one layer (or of the whole run), totals over the batch."""

    EVENTS = ENERGY_EVENTS


class _CostModel(SparseCostModel):
    """Cycles and event counts of each executed instruction (see backends/eie/README.md);
    the classes every target shares are runtime/common.CostModel's."""

    tally_class = _Tally

    def _act_events(self, first: int, n: int) -> tuple[int, int]:
        """(register-file, SRAM) accesses of elements first..first+n-1 of a vector."""
        cap = self.cfg.regfile_capacity
        in_rf = max(0, min(first + n, cap) - first)
        return in_rf, n - in_rf

    def transfer_size(self, kind: str, ops, machine, tally):
        """ceil(n * act_bits / 32) words per input row (n: the row's elements; the whole
        tensor when it does not split into rows); one activation-buffer access per
        element, each vector streaming into the register files (or SRAM). dma.in moves
        what the symbol holds, dma.out what the buffer holds."""
        if kind == "transfer_in":
            value = np.asarray(machine.memory.get(self.sim.symbols[ops["sym"]].name, 0.0))
            total, width = value.size, value.shape[-1] if value.ndim else 1
        else:
            codes = machine.buf[ops["buf"]]
            if codes is None:
                return None
            total, width = codes.size, codes.shape[1]
        rf, sram = self._act_events(0, width)
        tally.events["act_regfile"] += rf * (total // max(width, 1))
        tally.events["act_sram"] += sram * (total // max(width, 1))
        rows = self.batch if total % self.batch == 0 else 1
        return total // rows, rows, self.cfg.act_bits

    def cost_compute(self, ops, machine, tally) -> None:
        """The block's cycles per vector, from the FIFO recurrence over broadcast items.

        Items t = 0, 1, ... are the non-zero activations of the block's columns in
        column order (the LNZD unit broadcasts one per cycle). PE k's work on item t
        (column j) is w_k(t) = max(1, entries of column j on PE k) cycles: the pointer
        read overlaps the entries, and a column with no entries still costs its read.
        With FIFO depth D:

            b_t    = max(b_{t-1} + 1, max_k s_k(t - D))     broadcast (stalls on a full FIFO)
            s_k(t) = max(b_t + 1, e_k(t - 1))               PE k starts item t
            e_k(t) = s_k(t) + w_k(t)                        and ends it

        with b_{-1} = -1, e_k(-1) = 0, and s_k(t - D) absent for t < D. The block takes
        max_k e_k(last) + pipeline_stages cycles (fill and drain), plus regfile_entries
        cycles for each register-file refill inside it: a source vector longer than the
        register files (regfile_capacity) is processed in batches of regfile_capacity
        columns, and each batch after the first is refilled from the activation SRAM
        while the broadcast waits.
        """
        cfg = self.cfg
        layer, block = ops["layer"], ops["block"]
        blk = self.sim.block(layer, block)
        lay = self.sim.layers[layer]
        a = machine.vectors(ops["src"], lay.cols)[:, blk.col_start : blk.col_end]
        vectors = a.shape[0]
        nz = a != 0
        items = nz.sum(axis=1)
        ends = fifo_recurrence(nz, items, blk.work_t, cfg.fifo_depth)
        cycles = ends + cfg.pipeline_stages + blk.refills * cfg.regfile_entries
        tally.cycles["compute"] += int(cycles.sum())
        tally.activations += blk.ncols * vectors
        entries = tally.add_product(nz.astype(np.int64), items, blk, cfg)
        broadcasts = int(items.sum())
        ev = tally.events
        ev["codebook_lookup"] += entries
        ev["lnzd"] += broadcasts
        # Source: one register-file read per broadcast; the elements beyond the register
        # files are read once from the activation SRAM by the refill that brings them in.
        ev["act_regfile"] += broadcasts
        ev["act_sram"] += self._act_events(blk.col_start, blk.ncols)[1] * vectors
        if ops["last"]:  # destination: one write per output element
            rf, sram = self._act_events(0, lay.rows)
            ev["act_regfile"] += rf * vectors
            ev["act_sram"] += sram * vectors

    # -- results ----------------------------------------------------------------------

    def describe(self, lay: _Layer) -> dict:
        return {
            "name": lay.name,
            "kind": "fc",
            "out_format": str(lay.out_format),
            "rows": lay.rows,
            "cols": lay.cols,
            "blocks": len(lay.blocks),
        }

    def dense_cost(self, lay: _Layer, tally: _Tally, n: int, resident: bool):
        """The same layer, uncompressed: every weight is a weight_bits value without an
        index; every activation is broadcast; each PE does ceil(rows / N) MACs per column:
        cols * ceil(rows/N) + pipeline_stages cycles per vector, plus the same
        register-file refills. The weights load like the compressed program's: once per
        run when the dense weights of all layers fit the sparse-matrix SRAMs (`resident`),
        else for every vector. They are read from the SRAM in spmat_read_bits rows either
        way (as if staged there)."""
        cfg = self.cfg
        rows_pe = rows_per_pe(lay.rows, cfg.num_pes)
        refills = max(0, -(-lay.cols // cfg.regfile_capacity) - 1)
        compute = lay.cols * int(rows_pe.max()) + cfg.pipeline_stages
        compute += refills * cfg.regfile_entries
        load_words = words(lay.rows * lay.cols * cfg.weight_bits)
        if lay.has_bias:
            load_words += words(lay.rows * cfg.acc_bits)
        load_times = 1 if resident else n
        load = -(-load_words // cfg.dma_words_per_cycle) * load_times
        events = self.dense_events(tally)
        reads = lay.cols * int(np.sum(-(-(rows_pe * cfg.weight_bits) // cfg.spmat_read_bits)))
        events["spmat_read"] = reads * n
        events["mac"] = lay.rows * lay.cols * n
        src_rf = max(0, min(lay.cols, cfg.regfile_capacity))
        dst_rf = max(0, min(lay.rows, cfg.regfile_capacity))
        events["act_regfile"] = (lay.cols + dst_rf) * n
        events["act_sram"] = (lay.cols - src_rf + lay.rows - dst_rf) * n
        events["lnzd"] = lay.cols * n
        events["dram_word"] = load_words * load_times
        events["host_word"] = tally.events["host_word"]
        return compute * n, load, events


# -- stats -----------------------------------------------------------------------------


@dataclass
class Stats(SparseStats):
    """What a run cost, per layer, per host segment and in total.

    Counts (cycles, events, energy, time) are totals over the batch of `total.vectors`
    input vectors; keys ending in `_per_vector` are per-vector averages. Ratios
    (efficiencies, densities, speedups) are over the whole batch. The schema is in
    backends/eie/README.md.
    """

    TARGET = "eie"

    def table_lines(self, n: int) -> list[str]:
        t = self.total
        lines = self.title(n, "", "reloaded for every vector")
        head = [
            "layer", "rows×cols", "density", "act.dens", "cycles/vec", "µs/vec",
            "load eff", "padding", "nJ/vec", "dense cyc", "speedup", "energy saving",
        ]  # fmt: skip
        rows = [head]
        for e in self.layers:
            rows.append([
                e["name"], f"{e['rows']}×{e['cols']}", pct(e["density"]),
                pct(e["activation_density"]), num(e["cycles_per_vector"]),
                f"{e['time_us_per_vector']:.3f}", pct(e["load_efficiency"]),
                pct(e["padding_overhead"]), f"{e['energy_pj_per_vector'] / 1000:.2f}",
                num(e["dense"]["cycles_per_vector"]), f"{e['speedup']:.2f}×",
                f"{e['energy_saving']:.2f}×",
            ])  # fmt: skip
        rows.append([
            "total", "", "", "", num(t["cycles_per_vector"]),
            f"{t['time_us_per_vector']:.3f}", pct(t["load_efficiency"]), "",
            f"{t['energy_pj_per_vector'] / 1000:.2f}", num(t["dense"]["cycles_per_vector"]),
            f"{t['speedup']:.2f}×", f"{t['energy_saving']:.2f}×",
        ])  # fmt: skip
        b = t["cycles_breakdown"]
        return [
            *lines,
            *align(rows, left=2),
            "",
            "cycles/vector: "
            + ", ".join(f"{k} {num(b[k] / n)}" for k in CYCLE_KINDS)
            + f"; MAC utilization {pct(t.get('mac_utilization', 0.0))}",
        ]


def static_report(sim: Simulator) -> str:
    """The per-layer table of a container, without running it: shapes, density, blocks,
    entries and fillers, SRAM use per PE against capacity, residency, host segments and
    placement."""
    cfg = sim.config
    spmat_cap = cfg.spmat_capacity
    lines = [
        f"EIE program: {len(sim.program)} instructions, {len(sim.layers)} layers, "
        f"{len(sim.segments)} host segment{'' if len(sim.segments) == 1 else 's'}; "
        f"{cfg.num_pes} PEs at {cfg.clock_mhz} MHz",
        "",
    ]
    head = [
        "layer", "rows×cols", "density", "blocks", "entries", "fillers", "padding",
        "entries/PE", "ptrs/PE", "relu", "bias", "acc reach",
    ]  # fmt: skip
    rows = [head]
    reach = [e.acc_reach_bits for e in sim.header.layers]
    for lay in sim.layers:
        entries_pe = max((max(b["entries"]) for b in lay.blocks), default=0)
        ptrs = max((b["col_end"] - b["col_start"] + 1 for b in lay.blocks), default=0)
        entries = lay.entries
        relu = any(o["relu"] for _, m, o in sim.program if m == "spmv" and o["layer"] == lay.index)
        rows.append([
            lay.name, f"{lay.rows}×{lay.cols}", pct(lay.nonzeros / max(1, lay.rows * lay.cols)),
            str(len(lay.blocks)), str(entries), str(lay.fillers),
            pct(lay.fillers / entries if entries else 0.0),
            f"{entries_pe}/{spmat_cap}", f"{ptrs}/{cfg.ptr_capacity}",
            "yes" if relu else "no", "yes" if lay.has_bias else "no",
            f"{reach[lay.index]}/{cfg.acc_bits} bits" if reach[lay.index] else "-",
        ])  # fmt: skip
    lines += align(rows, left=1)
    lines.append(
        "acc reach: accumulator bits any input could need (static); beyond acc_bits the "
        "output saturates first"
    )
    lines += sim.report_tail("loaded once, kept across vectors", "reloaded per vector")
    lines += sim.report_end()
    return "\n".join(lines) + "\n"


summary_line = Stats.summary_line
"""One line of the run's totals, per vector."""


# The simulator's parts, defined after it (they name it in their annotations).
Simulator.machine_class, Simulator.cost_model_class = _Machine, _CostModel
Simulator.stats_class = Stats
