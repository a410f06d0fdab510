"""The dense simulator: executes a program container bit for bit and models its cycles
and energy (README.md: "Cost model").

It reads only the container: the header's config, symbol and layer tables, host
segments, and the tile images. Loading the target-neutral parts, checking inputs and
running host segments are dlhwc.runtime.common.Program's. The functional simulation
runs every instruction once over the whole batch: a buffer is an int64 array [batch, n]
of codes, and `mmtile` one exact integer product [batch, R] x [R, C] per tile. The cycle
and energy model (`_Cost.cost_<mnemonic>`) is a layer over the same dispatch, charged
before each instruction executes; the hardware streams the batch through each tile in
groups of `acc_depth` vectors (the accumulators' depth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlhwc.runtime.common import (
    CostModel,
    Machine,
    NumericsTally,
    Program,
    RunStats,
    Tally,
    align,
    energy_and_host_lines,
    num,
    numerics_line,
    pct,
    saturation_text,
    segment_lines,
    words,
)
from dlhwc.runtime.core import energy, energy_breakdown
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.fixedpoint import FixedFormat, from_codes, saturate, shift_round, to_codes
from dlhwc.spec.report import numerics_warnings, placement_lines, summary_lines  # noqa: F401
from dlhwc_dense.config import Config
from dlhwc_dense.container import DenseLayer
from dlhwc_dense.isa import ISA

NUM_BUFFERS = 4
ENERGY_EVENTS = ("mac", "weight_read", "act_read", "act_write", "acc_access", "dram_word",
                 "host_word")  # fmt: skip
"""The counted events; each has an energy per event of the same name in `Energy`."""
CYCLE_KINDS = ("load", "weights", "stream", "activate", "transfer")
"""DRAM to weight SRAM, tile shift-in, streaming vectors, the `act` unit, host DMA."""


@dataclass(frozen=True)
class _Layer:
    index: int
    name: str
    rows: int
    cols: int
    in_format: FixedFormat
    weight_format: FixedFormat
    out_format: FixedFormat
    has_bias: bool
    tiles_k: int  # KT = ceil(cols / R)
    tiles_n: int  # NT = ceil(rows / C)

    @property
    def tiles(self) -> int:
        return self.tiles_k * self.tiles_n


class Simulator(Program):
    """Loads a program container and runs it: `run(inputs) -> (outputs, Stats)`."""

    target = "dense"
    isa = ISA
    config_class = Config
    header_keys = ("hw", "symbols", "layers", "host_segments")
    reads, writes = "src", "dst"  # mmtile's and act's buffers, for cost attribution

    def __init__(self, container, source: str = "<container>"):
        super().__init__(container, source)
        self.program = self.decode_text()
        cfg = self.config
        self.tile_bytes = cfg.macs * cfg.weight_bits // 8
        self._check_sections()
        # Derived, not trusted from the header: all layers' tiles fit the SRAM together.
        self.resident = sum(lay.tiles for lay in self.layers) * self.tile_bytes <= (
            cfg.weight_sram_bytes
        )
        self.layer_of = self.attribute()  # by the ISA's instruction classes

    def parse_layer(self, i: int, e: DenseLayer) -> _Layer:
        """Layer ``i`` of the layer table (checked by its record, container.py) and its
        tile grid on the array."""
        R, C = self.config.array_rows, self.config.array_cols
        return _Layer(i, e.name, e.rows, e.cols, e.in_format, e.weight_format, e.out_format,
                      e.bias, -(-e.cols // R), -(-e.rows // C))  # fmt: skip

    def check_operands(self, index: int, mnemonic: str, ops: dict[str, int]) -> None:
        super().check_operands(index, mnemonic, ops)
        where = f"instruction {index} ({mnemonic})"
        if "layer" in ops:
            lay = self.layers[ops["layer"]]
            if ops.get("tile", 0) >= lay.tiles:
                raise self.error(f"{where}: layer '{lay.name}' has no tile {ops['tile']}")
            if ops.get("bias") and not lay.has_bias:
                raise self.error(f"{where}: bias=1 but layer '{lay.name}' has no bias")

    def _check_sections(self) -> None:
        cfg = self.config
        for lay in self.layers:
            tiles = self.section(f"L{lay.index}.weights", "i",
                                 (lay.tiles, cfg.array_rows, cfg.array_cols))  # fmt: skip
            if lay.tiles * self.tile_bytes > cfg.weight_sram_bytes:
                raise self.error(
                    f"layer '{lay.name}': its {lay.tiles} weight tiles take "
                    f"{lay.tiles * self.tile_bytes:,} bytes; the weight SRAM holds "
                    f"{cfg.weight_sram_bytes:,}"
                )
            limit = 1 << (cfg.weight_bits - 1)
            if tiles.size and not (-limit <= int(tiles.min()) and int(tiles.max()) < limit):
                raise self.error(f"section 'L{lay.index}.weights' has codes beyond "
                                 f"{cfg.weight_bits} bits")  # fmt: skip
            if lay.has_bias:
                self.section(f"L{lay.index}.bias", "i", (lay.rows,))
        self.check_host_sections()

    def run(self, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], Stats]:
        """Run the program on a batch; returns the outputs by name and the stats."""
        batch = self.check_inputs(inputs)
        machine, cost = _Machine(self, batch), _Cost(self, batch)
        machine.memory.update(self.host_memory(inputs))
        for i, (index, mnemonic, ops) in enumerate(self.program):
            try:
                cost.charge(i, mnemonic, ops, machine)
                machine.dispatch[mnemonic](ops)
            except DlhwcError as e:
                raise self.error(f"instruction {index} ({mnemonic}): {e.reason}") from None
        self.last_host_memory = machine.memory
        self.last_layer_inputs, self.last_layer_outputs = (
            machine.layer_inputs,
            machine.layer_outputs,
        )
        return self.outputs(machine.memory), cost.stats(machine.numerics)


class _Machine(Machine):
    """The machine state of one run, and one function per instruction (isa.py)."""

    num_buffers = NUM_BUFFERS

    def __init__(self, sim: Simulator, batch: int):
        super().__init__(sim, batch)
        self.sim: Simulator = sim
        self.sram: int | None = None  # the layer whose tiles the weight SRAM holds
        self.array: tuple[int, int] | None = None  # the (layer, tile) held stationary
        self.acc: dict[int, np.ndarray] = {}

    def vectors(self, b: int, n: int) -> np.ndarray:
        codes = self.buf[b]
        if codes is None or codes.shape[1] != n:
            held = "nothing" if codes is None else f"{codes.shape[1]}-element vectors"
            raise DlhwcError(f"buf[{b}] holds {held}, {n}-element vectors expected")
        return codes

    def exec_end(self, ops) -> None:
        """halt"""

    def exec_dma_in(self, ops) -> None:
        """buf[buf][v] = codes of symbol[sym][v]: round half to even, saturate."""
        sym = self.sim.symbols[ops["sym"]]
        if sym.name not in self.memory:
            raise DlhwcError(f"symbol '{sym.name}' has no value in host memory yet")
        values = np.asarray(self.memory[sym.name])
        if values.ndim != len(sym.shape) + 1 or list(values.shape[1:]) != list(sym.shape):
            raise DlhwcError(f"symbol '{sym.name}' holds {list(values.shape)}, not [batch, "
                             f"{', '.join(map(str, sym.shape))}]")  # fmt: skip
        self.buf[ops["buf"]] = to_codes(values.reshape(len(values), -1), sym.format)

    def exec_dma_out(self, ops) -> None:
        """symbol[sym][v] = values of buf[buf][v]."""
        sym = self.sim.symbols[ops["sym"]]
        codes = self.vectors(ops["buf"], sym.size)
        self.memory[sym.name] = from_codes(codes, sym.format).reshape(-1, *sym.shape)

    def exec_load(self, ops) -> None:
        """weight_sram = tiles of layer; bias = biases of layer."""
        self.sram = ops["layer"]

    def exec_wtile(self, ops) -> None:
        """array = weight_sram[tile]"""
        if self.sram != ops["layer"]:
            raise DlhwcError(f"layer '{self.sim.layers[ops['layer']].name}' is not loaded")
        self.array = (ops["layer"], ops["tile"])

    def exec_mmtile(self, ops) -> None:
        """acc[v][n*C + c] (+)= sum_r array[r][c] * buf[src][v][k*R + r], exactly."""
        layer, tile = ops["layer"], ops["tile"]
        lay, R, C = self.sim.layers[layer], self.cfg.array_rows, self.cfg.array_cols
        if self.array != (layer, tile):
            raise DlhwcError(f"the array does not hold tile {tile} of layer '{lay.name}'")
        k, n = tile % lay.tiles_k, tile // lay.tiles_k
        source = self.vectors(ops["src"], lay.cols)
        a = source[:, k * R : (k + 1) * R]
        w = self.sim.container.sections[f"L{layer}.weights"][tile, : a.shape[1]]
        part = a @ w.astype(np.int64)  # [batch, C], exact int64
        if tile == 0 and self.sim.record_layers:
            self.layer_inputs[lay.name] = from_codes(source, lay.in_format)
        if layer not in self.acc:
            self.acc[layer] = np.zeros((len(a), lay.tiles_n * C), dtype=np.int64)
        acc = self.acc[layer][:, n * C : (n + 1) * C]
        if ops["first"]:
            acc[...] = part
        else:
            acc += part

    def exec_act(self, ops) -> None:
        """s = sat(acc + bias, acc_bits); y = sat(round_half_even(s 2^-shift), act_bits);
        buf[dst] = max(y, 0) if relu else y. Counts the results saturation changed."""
        lay = self.sim.layers[ops["layer"]]
        if ops["layer"] not in self.acc:
            raise DlhwcError(f"layer '{lay.name}' finishes before any tile")
        s = self.acc.pop(ops["layer"])[:, : lay.rows]
        if ops["bias"]:
            s = s + self.sim.container.sections[f"L{lay.index}.bias"].astype(np.int64)
        exact = shift_round(s, ops["shift"])
        y = saturate(shift_round(saturate(s, self.cfg.acc_bits), ops["shift"]), lay.out_format.bits)
        if ops["relu"]:
            y, exact = np.maximum(y, 0), np.maximum(exact, 0)
        self.numerics[lay.index].record(y, y != exact)
        if self.sim.record_layers:
            self.layer_outputs[lay.name] = from_codes(y, lay.out_format)
        self.buf[ops["dst"]] = y


@dataclass
class _Tally(Tally):
    CYCLE_KINDS = CYCLE_KINDS
    EVENTS = ENERGY_EVENTS


class _Cost(CostModel):
    """Cycles and events of each instruction (README.md, "Cost model"); the classes every
    target shares are runtime/common.CostModel's, sized here."""

    tally_class = _Tally

    def __init__(self, sim: Simulator, batch: int):
        super().__init__(sim, batch)
        self.sim: Simulator = sim
        self.groups = -(-batch // self.cfg.acc_depth)  # vector groups streamed per tile

    @property
    def repeats(self) -> int:
        """Every instruction runs once per group of vectors."""
        return self.groups

    def transfer_size(self, kind: str, ops, machine, t: _Tally) -> tuple[int, int, int]:
        """n elements of act_bits per vector; one buffer access per element."""
        n = self.sim.symbols[ops["sym"]].size
        t.events["act_write" if kind == "transfer_in" else "act_read"] += n * self.batch
        return n, self.batch, self.cfg.act_bits

    def load_size(self, ops) -> tuple[tuple, int]:
        """The layer's tiles (weight_bits each) and biases (acc_bits each)."""
        lay = self.sim.layers[ops["layer"]]
        bias_words = lay.has_bias * words(lay.rows * self.cfg.acc_bits)
        return (lay.index,), words(lay.tiles * self.sim.tile_bytes * 8) + bias_words

    def cost_wtile(self, ops, machine, t: _Tally) -> None:
        """R cycles per group (a row of C weights shifts in per cycle); R*C SRAM reads."""
        t.cycles["weights"] += self.cfg.array_rows * self.groups
        t.events["weight_read"] += self.cfg.macs * self.groups

    def cost_mmtile(self, ops, machine, t: _Tally) -> None:
        """g + R + C - 2 cycles per group of g vectors (one vector enters per cycle, the
        skew fills and drains the array); a MAC per vector and used unit, a buffer read
        per vector and used row, an accumulator write (and read, unless first) per
        vector and used column."""
        lay, R, C = self.sim.layers[ops["layer"]], self.cfg.array_rows, self.cfg.array_cols
        k, n = ops["tile"] % lay.tiles_k, ops["tile"] // lay.tiles_k
        kw, nw = min(R, lay.cols - k * R), min(C, lay.rows - n * C)
        t.cycles["stream"] += self.batch + self.groups * (R + C - 2)
        t.events["mac"] += self.batch * kw * nw
        t.events["act_read"] += self.batch * kw
        t.events["acc_access"] += self.batch * nw * (1 if ops["first"] else 2)

    def cost_act(self, ops, machine, t: _Tally) -> None:
        """ceil(rows / C) cycles per vector (C results a cycle); an accumulator read and
        a buffer write per result."""
        lay = self.sim.layers[ops["layer"]]
        t.cycles["activate"] += self.batch * -(-lay.rows // self.cfg.array_cols)
        t.events["acc_access"] += self.batch * lay.rows
        t.events["act_write"] += self.batch * lay.rows

    def stats(self, numerics: list[NumericsTally]) -> Stats:
        cfg, n = self.cfg, self.batch
        layers = []
        for lay, tally, num_ in zip(self.sim.layers, self.layers, numerics, strict=True):
            entry = _totals(tally, cfg, n)
            stream = tally.cycles["stream"]
            layers.append({
                "name": lay.name, "kind": "fc", "rows": lay.rows, "cols": lay.cols,
                "tiles": lay.tiles, "out_format": str(lay.out_format), **entry,
                "stream_utilization": tally.events["mac"] / (cfg.macs * stream) if stream else 0.0,
                "numerics": num_.to_json(),
            })  # fmt: skip
        total_tally, total_num = _Tally(), NumericsTally()
        for tally in [*self.layers, self.other]:
            total_tally.add(tally)
        for num_ in numerics:
            total_num.add(num_)
        total = {"vectors": n, "groups": self.groups, "resident": self.sim.resident,
                 **_totals(total_tally, cfg, n), "numerics": total_num.to_json(),
                 "instructions": {k: v for k, v in self.executed.items() if v}}  # fmt: skip
        host = [{"name": g["name"], "ops": list(g["ops"]), "runs": self.host_runs[s],
                 "transfer_words": self.host_words[s]} for s, g in enumerate(self.sim.segments)]  # fmt: skip
        machine = {k: getattr(cfg, k) for k in ("array_rows", "array_cols", "clock_mhz",
                                                 "acc_depth", "weight_sram_bytes")}  # fmt: skip
        machine["energy_pj_per_event"] = {k: getattr(cfg.energy, k) for k in ENERGY_EVENTS}
        return Stats(layers=layers, host=host, total=total, machine=machine)


def _totals(t: _Tally, cfg: Config, n: int) -> dict:
    cycles, pj = sum(t.cycles.values()), energy(t.events, cfg)
    return {
        "cycles": cycles, "cycles_per_vector": cycles / n, "cycles_breakdown": dict(t.cycles),
        "time_us": cycles * cfg.cycle_ns / 1000, "time_us_per_vector": cycles * cfg.cycle_ns / 1000 / n,
        "macs": t.events["mac"], "mac_utilization": t.events["mac"] / (cfg.macs * cycles) if cycles else 0.0,
        "energy_pj": pj, "energy_pj_per_vector": pj / n,
        "energy_breakdown_pj": energy_breakdown(t.events, cfg), "events": dict(t.events),
    }  # fmt: skip


@dataclass
class Stats(RunStats):
    """What a run cost, per layer, per host segment and in total (README.md, "Stats").
    Counts are totals over the batch; `_per_vector` keys are averages per vector."""

    TARGET = "dense"

    def format_table(self) -> str:
        """The stats as an aligned table, per vector."""
        t, m = self.total, self.machine
        n = t["vectors"]
        lines = [
            f"dense simulation: {n} vectors in {t['groups']} group(s) of up to "
            f"{m['acc_depth']}, {m['array_rows']}x{m['array_cols']} array at {m['clock_mhz']} "
            f"MHz, weights {'resident' if t['resident'] else 'reloaded for every group'}",
            "",
        ]
        rows = [["layer", "rows×cols", "tiles", "cycles/vec", "µs/vec", "MAC util",
                 "stream util", "nJ/vec"]]  # fmt: skip
        for e in self.layers:
            rows.append([e["name"], f"{e['rows']}×{e['cols']}", str(e["tiles"]),
                         num(e["cycles_per_vector"]), f"{e['time_us_per_vector']:.3f}",
                         pct(e["mac_utilization"]), pct(e["stream_utilization"]),
                         f"{e['energy_pj_per_vector'] / 1000:.2f}"])  # fmt: skip
        rows.append(["total", "", "", num(t["cycles_per_vector"]), f"{t['time_us_per_vector']:.3f}",
                     pct(t["mac_utilization"]), "", f"{t['energy_pj_per_vector'] / 1000:.2f}"])  # fmt: skip
        lines += align(rows, left=2)
        b = t["cycles_breakdown"]
        lines += ["", "cycles/vector: " + ", ".join(f"{k} {num(b[k] / n)}" for k in CYCLE_KINDS)]
        lines += energy_and_host_lines(t, self.host, n, "vector")
        if numerics_line(self):
            lines.append(numerics_line(self))
        return "\n".join(lines) + "\n"


def static_report(sim: Simulator) -> str:
    """The per-layer table of a container, without running it."""
    cfg = sim.config
    lines = [f"dense program: {len(sim.program)} instructions, {len(sim.layers)} layers, "
             f"{len(sim.segments)} host segment(s); {cfg.array_rows}x{cfg.array_cols} array at "
             f"{cfg.clock_mhz} MHz", ""]  # fmt: skip
    rows = [["layer", "rows×cols", "tiles", "weight bytes", "bias", "in", "weights", "out"]]
    for lay in sim.layers:
        rows.append([lay.name, f"{lay.rows}×{lay.cols}", str(lay.tiles),
                     f"{lay.tiles * sim.tile_bytes:,}", "yes" if lay.has_bias else "no",
                     str(lay.in_format), str(lay.weight_format), str(lay.out_format)])  # fmt: skip
    lines += align(rows, left=1)
    total = sum(lay.tiles for lay in sim.layers) * sim.tile_bytes
    lines += [
        "",
        f"weight SRAM: all layers {total:,} of {cfg.weight_sram_bytes:,} bytes; weights "
        + ("resident (loaded once per run)" if sim.resident else "reloaded for every group"),
    ]
    return "\n".join(lines + segment_lines(sim) + placement_lines(sim.container.header)) + "\n"


def summary_line(stats: Stats) -> str:
    """One line of the run's totals, per vector."""
    t = stats.total
    return (
        f"dense: {t['vectors']} vectors, {num(t['cycles_per_vector'])} cycles/vector "
        f"({t['time_us_per_vector']:.3f} µs), {t['energy_pj_per_vector'] / 1000:.2f} nJ/vector, "
        f"MAC utilization {pct(t['mac_utilization'])}"
    ) + saturation_text(t)
