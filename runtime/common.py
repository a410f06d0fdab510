"""What every simulator does the same way: loading a container, checking inputs, running
host segments, counting numerics, and formatting stats.

A target's simulator (runtime/<target>/sim.py) subclasses `Program`, which checks and
decodes the target-neutral parts of a container once:

- the target name, the header fields the target needs, the hardware config (the
  target's config class);
- the header, read into its typed records (`Program.header`, spec/container.py: the
  symbol table, host segments, the target's layer table, ...; every defect is one error
  naming the field);
- the instruction stream (decoded with the target's ISA table up to the first
  instruction of class `halt`, each instruction's operands checked by the target).

`Program.check_inputs` checks the inputs of a run, `Program.host_memory` starts its
host memory (inputs and constants, by symbol name), `HostSegments` runs the ONNX models
of the host segments in onnxruntime, and `Program.outputs` collects the outputs.

A run's machine state is a `Machine` (host memory, buffers, numerics tallies, `host`);
its costs are a `CostModel`'s: `Program.attribute` charges each instruction to a layer
by its ISA class, and the classes every machine has (halt, sync, host, transfers, loads
with residency) are costed here, into `Tally`s; the target costs the rest.

What a sparse PE machine simulates the same way whatever its target (block images,
residency, the channel model, its tallies, the dense baseline, stats) is the simulator
core's, runtime/core.py.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from dlhwc.spec.container import Container, Header, Symbol, read_header
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.isa import IsaError, IsaTable
from dlhwc.spec.report import pct, placement_lines  # noqa: F401 - the simulators use both
from dlhwc.spec.schema import SchemaError

# -- a loaded program ---------------------------------------------------------------------


class Program:
    """The target-neutral part of a loaded container; a simulator subclasses it.

    Subclasses set `target`, `isa`, `config_class` and `header_keys`, and may override
    `check_operands(index, mnemonic, ops)` (raise `self.error(...)` on a bad operand).
    """

    target: str
    isa: IsaTable
    config_class: type
    header_keys: tuple[str, ...] = ("hw", "symbols", "host_segments")
    layers: list
    """The layer table, each record made a layer by the target's `parse_layer` (each
    layer has `index` and `name`)."""
    program: list[tuple[int, str, dict[str, int]]]
    """The decoded instructions (`decode_text`): (index, mnemonic, operands)."""
    reads: str | None = None
    writes: str | None = None
    """The operand naming the buffer a compute instruction reads and writes (attribution)."""

    def __init__(self, container: Container, source: str = "<container>"):
        self.container = container
        self.source = source
        if container.target != self.target:
            raise self.error(f"the container targets '{container.target}', not {self.target}")
        header = container.header
        for key in self.header_keys:
            if key not in header:
                raise self.error(f"malformed container: header: missing field '{key}'")
        self.config = self.config_class.from_dict(header["hw"], source)
        try:
            self.header: Header = read_header(
                container, num_pes=getattr(self.config, "num_pes", None)
            )
        except SchemaError as e:
            raise self.error(f"malformed container: {e.reason}") from None
        self.symbols = self.header.symbols
        self.layers = self.parse_layers()
        # The JSON form, as the cost models and tables read the segments.
        self.segments = [seg.to_json() for seg in self.header.host_segments]
        self.host_segments = HostSegments(container, self.segments)
        for seg in self.segments:  # refused when loaded, not when the segment first runs
            try:
                container.host_model(seg["section"])
            except DlhwcError as e:
                raise self.error(e.reason) from None
        self.last_host_memory: dict[str, np.ndarray] = {}
        """Host memory after the last run: every symbol's values by name."""
        self.record_layers = False
        """Keep each layer's inputs and outputs of a run (`last_layer_inputs/outputs`)."""
        self.last_layer_outputs: dict[str, np.ndarray] = {}
        """Each layer's output values of the last run by layer name, [batch, rows] (what
        the layer wrote to its destination buffer), where the target records them."""
        self.last_layer_inputs: dict[str, np.ndarray] = {}
        """Each layer's input values of the last run by layer name, [batch, cols] (for
        `dlhwc verify`, which replays the golden model on exactly these inputs)."""

    @classmethod
    def from_file(cls, path: str | Path):
        return cls(Container.read(path), str(path))

    def error(self, reason: str) -> DlhwcError:
        return DlhwcError(reason, file=self.source)

    # -- the instruction stream ---------------------------------------------------------

    def decode_text(self) -> list[tuple[int, str, dict[str, int]]]:
        """The instructions up to and including the first of class `halt`, checked."""
        text = self.container.sections.get("text")
        if text is None:
            raise self.error("the container has no section 'text' (the program)")
        if text.ndim != 1 or text.dtype != np.uint64:
            raise self.error(f"section 'text' is {text.dtype} {list(text.shape)}, not uint64 [n]")
        program = []
        for index, word in enumerate(text.tolist()):
            try:
                instr, ops = self.isa.decode(int(word))
            except IsaError as e:
                raise self.error(f"instruction {index}: {e}") from None
            self.check_operands(index, instr.mnemonic, ops)
            program.append((index, instr.mnemonic, ops))
            if instr.kind == "halt":
                return program
        halts = [i.mnemonic for i in self.isa.instructions if i.kind == "halt"]
        if not halts:
            raise self.error(f"the {self.target} ISA declares no instruction of class halt")
        raise self.error(f"the program has no '{halts[0]}' instruction")

    def parse_layers(self) -> list:
        """The header's layer table, each record (checked as the header was read) made
        the target's layer by `parse_layer`."""
        try:
            return [self.parse_layer(i, entry) for i, entry in enumerate(self.header.layers or [])]
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as e:
            raise self.error(f"malformed layer table: {one_line(e)}") from None

    def parse_layer(self, index: int, entry):
        """Layer ``index`` of the layer table from its record (spec/container.py); raise
        ValueError, KeyError, ... on what the record does not check."""
        raise NotImplementedError

    def check_operands(self, index: int, mnemonic: str, ops: dict[str, int]) -> None:
        """The operands every target checks the same way: symbols, host segments and
        layers."""
        where = f"instruction {index} ({mnemonic})"
        if "layer" in ops and ops["layer"] >= len(self.layers):
            raise self.error(f"{where}: no layer {ops['layer']} ({len(self.layers)} layers)")
        if "sym" in ops:
            if ops["sym"] >= len(self.symbols):
                raise self.error(f"{where}: no symbol {ops['sym']} ({len(self.symbols)} symbols)")
            sym = self.symbols[ops["sym"]]
            if sym.format is None:
                raise self.error(
                    f"{where}: symbol '{sym.name}' ({sym.kind}) has no fixed-point format; "
                    "it cannot cross to or from the accelerator"
                )
        if "seg" in ops and ops["seg"] >= len(self.segments):
            raise self.error(f"{where}: no host segment {ops['seg']}")

    def kind(self, mnemonic: str) -> str:
        """The class the ISA table declares for ``mnemonic``."""
        return self.isa.by_mnemonic[mnemonic].kind

    def attribute(self) -> list[int | None]:
        """The layer each instruction's cost is charged to (None: no layer), by class.

        An instruction with a `layer` operand: that layer. Otherwise, among the compute
        and loop instructions (the anchors): transfer_in, the next anchor reading its
        buffer (`reads`), else the next, else the previous; transfer_out, the last anchor
        that wrote its buffer (`writes`), else the previous, else the next; sync, the
        previous, else the next. halt and host cost no accelerator cycles.
        """
        anchors = [
            (i, ops)
            for i, (_, m, ops) in enumerate(self.program)
            if self.kind(m) in ("compute", "loop") and "layer" in ops
        ]
        owner: list[int | None] = []
        for i, (_, mnemonic, ops) in enumerate(self.program):
            kind = self.kind(mnemonic)
            later = [o for j, o in anchors if j > i]
            earlier = [o for j, o in anchors if j < i][::-1]
            if "layer" in ops:
                owner.append(ops["layer"])
                continue
            if kind == "transfer_in":
                candidates = [o for o in later if o.get(self.reads) == ops["buf"]]
                candidates += later + earlier
            elif kind == "transfer_out":
                candidates = [o for o in earlier if o.get(self.writes) == ops["buf"]]
                candidates += earlier + later
            elif kind == "sync":
                candidates = earlier + later
            else:
                candidates = []
            owner.append(candidates[0]["layer"] if candidates else None)
        return owner

    def section(self, name: str, dtype_kind: str, shape: tuple[int, ...] | None) -> np.ndarray:
        """Section ``name``, checked: a numpy dtype kind among ``dtype_kind`` ("iu": an
        integer) and, unless None, the shape."""
        array = self.container.sections.get(name)
        if array is None:
            raise self.error(f"the container has no section '{name}'")
        if array.dtype.kind not in dtype_kind or (shape is not None and array.shape != shape):
            want = "" if shape is None else f" {list(shape)}"
            raise self.error(
                f"section '{name}' is {array.dtype} {list(array.shape)}, expected "
                f"{_kind_text(dtype_kind)}{want}"
            )
        return array

    def check_host_sections(self) -> None:
        """Every host segment and constant has its section."""
        for seg in self.segments:
            section = self.container.sections.get(seg["section"])
            if section is None:
                raise self.error(f"the container has no section '{seg['section']}'")
            if section.dtype != np.uint8 or section.ndim != 1:
                raise self.error(f"section '{seg['section']}' is not an ONNX model (uint8)")
        for sym in self.symbols:
            if sym.kind == "constant":
                if sym.section is None:
                    raise self.error(f"constant symbol '{sym.name}' names no section")
                self.section(sym.section, "iuf", None)

    # -- running ------------------------------------------------------------------------

    def check_inputs(self, inputs: dict[str, np.ndarray]) -> int:
        """The batch size, after checking names, dtypes and shapes of the inputs.

        The inputs with a batch axis must agree on it; the others (no batch axis) only
        have their shape checked. Without any batched input the batch is 1.
        """
        expected = [s for s in self.symbols if s.kind == "input"]
        names = [s.name for s in expected]
        takes = ", ".join(repr(n) for n in names) or "nothing"
        missing = [n for n in names if n not in inputs]
        if missing:
            raise self.error(f"missing input '{missing[0]}'; the program takes {takes}")
        unknown = sorted(set(inputs) - set(names))
        if unknown:
            raise self.error(f"unknown input '{unknown[0]}'; the program takes {takes}")
        batch = None
        for sym in expected:
            array = np.asarray(inputs[sym.name])
            want = sym.describe()
            got = f"{list(array.shape)} {array.dtype}"
            if array.dtype != np.dtype(sym.dtype):
                raise self.error(f"input '{sym.name}' is {got}, expected {want}")
            whole = sym.batch_axis is None
            axis = len(array.shape) if whole else sym.batch_axis
            shape = array.shape[:axis] + array.shape[axis + 1 :]
            if array.ndim != len(sym.shape) + (not whole) or any(
                w >= 0 and g != w for g, w in zip(shape, sym.shape, strict=True)
            ):
                raise self.error(f"input '{sym.name}' has shape {got}, expected {want}")
            rows = None if whole else array.shape[axis]
            if rows == 0:
                raise self.error(f"input '{sym.name}' holds no vectors (batch 0)")
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                bad = np.argwhere(~np.isfinite(array))[0].tolist()
                raise self.error(
                    f"input '{sym.name}' has a NaN or infinite value at {bad}: fixed point "
                    "has no code for it"
                )
            if rows is None:
                continue
            if batch is not None and rows != batch:
                raise self.error(f"input '{sym.name}' has {rows} vectors, another input {batch}")
            batch = rows
        if not expected:
            raise self.error("the program takes no inputs; nothing to run")
        return 1 if batch is None else batch

    def host_memory(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Host memory at the start of a run: the inputs and the constants, by name."""
        memory = {name: np.asarray(value) for name, value in inputs.items()}
        for sym in self.symbols:
            if sym.kind == "constant":
                memory[sym.name] = self.container.sections[sym.section]
        return memory

    def outputs(self, memory: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The program's outputs from the host memory after a run."""
        outputs = {}
        for sym in self.symbols:
            if sym.kind == "output":
                if sym.name not in memory:
                    raise self.error(f"the program never produced output '{sym.name}'")
                outputs[sym.name] = memory[sym.name]
        return outputs

    def run_host(self, seg: int, memory: dict[str, np.ndarray]) -> None:
        """Run host segment ``seg`` on the host memory (see `HostSegments.run`)."""
        self.host_segments.run(seg, self.symbols, memory)


class Machine:
    """The machine state of one run: host memory, on-chip buffers, loaded blocks; a
    target's `_Machine` adds one function per instruction, `exec_<mnemonic>`."""

    num_buffers: ClassVar[int]

    def __init__(self, sim: Program, batch: int):
        self.sim = sim
        self.cfg = sim.config
        self.batch = batch
        self.memory: dict[str, np.ndarray] = {}  # host memory: symbol name -> values
        self.buf: list[np.ndarray | None] = [None] * self.num_buffers  # codes [vectors, ...]
        self.loaded: set[tuple] = set()
        self.numerics = [NumericsTally() for _ in sim.layers]
        self.layer_inputs: dict[str, np.ndarray] = {}  # layer name -> its input values
        self.layer_outputs: dict[str, np.ndarray] = {}  # layer name -> its output values
        self.halted = False
        self.dispatch = {
            i.mnemonic: getattr(self, "exec_" + py_name(i.mnemonic)) for i in sim.isa.instructions
        }

    def exec_host(self, ops: dict[str, int]) -> None:
        """run host segment seg (an ONNX graph) on the host: it reads its input symbols and
        writes its output symbols, in float, converting with their fixed-point formats

        The segment's ONNX model runs in onnxruntime on [batch, *shape] float arrays
        (runtime/common.HostSegments).
        """
        self.sim.run_host(ops["seg"], self.memory)

    def buffer(self, b: int) -> np.ndarray:
        """buf[b], which must have been written."""
        codes = self.buf[b]
        if codes is None:
            raise DlhwcError(f"buf[{b}] is read before it is written")
        return codes


@dataclass
class Tally:
    """Counts of one layer (or of the instructions outside layers), totals over the
    batch: cycles by kind and events by kind (each event has an energy of its name in
    the config's `energy`). A target's subclass sets CYCLE_KINDS and EVENTS and may add
    counters; `add` adds them field by field."""

    CYCLE_KINDS: ClassVar[tuple[str, ...]] = ()
    EVENTS: ClassVar[tuple[str, ...]] = ()

    cycles: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    load_words: int = 0
    host_words: int = 0

    def __post_init__(self):
        self.cycles = self.cycles or dict.fromkeys(self.CYCLE_KINDS, 0)
        self.events = self.events or dict.fromkeys(self.EVENTS, 0)

    def add(self, other: Tally) -> None:
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, dict):
                for k in mine:
                    mine[k] += theirs[k]
            elif isinstance(mine, np.ndarray):
                if theirs.size:
                    setattr(self, f.name, mine + theirs if mine.size else theirs.copy())
            elif isinstance(mine, list):
                mine.extend([0] * (len(theirs) - len(mine)))
                for s, value in enumerate(theirs):
                    mine[s] += value
            else:
                setattr(self, f.name, mine + theirs)


class CostModel:
    """Cycles and event counts of each executed instruction, charged to the layer
    `Program.attribute` picks, by the instruction's class (an instruction runs `repeats`
    times a run: once per vector unless the target says otherwise):

    halt            no cycles
    sync            pipeline_stages cycles per run of it: the pipelines drain
    host            no accelerator cycles (its transfers are the transfer_in/out around it)
    transfer_in/out ceil(words / host_words_per_cycle) cycles per vector moved, host_word
                    energy per 32-bit word (`transfer`, sized by the target)
    load            ceil(words / dma_words_per_cycle) cycles, dram_word energy per word,
                    once per run when the weights are resident, else every run of it
                    (`load`, sized by the target's `load_size`)
    compute, loop   the target's `cost_compute` and `cost_loop`

    A target's `cost_<mnemonic>` takes the place of its class's cost for that
    instruction. Charged before the instruction executes, from the actual data in the
    machine's buffers. A target subclasses it with its `Tally` class (`tally_class`),
    the sizes of its transfers and loads, and its compute costs.
    """

    tally_class: ClassVar[type[Tally]] = Tally

    def __init__(self, sim: Program, batch: int):
        self.sim = sim
        self.cfg = sim.config
        self.batch = batch
        self.layers = [self.tally_class() for _ in sim.layers]
        self.other = self.tally_class()  # instructions attributed to no layer
        self.host_words = [0] * len(sim.segments)
        self.host_runs = [0] * len(sim.segments)
        self.charged_loads: set[tuple] = set()
        self.executed = dict.fromkeys((i.mnemonic for i in sim.isa.instructions), 0)
        feeds = {}
        for s, seg in enumerate(sim.segments):
            for i in seg["inputs"]:
                feeds.setdefault(("transfer_out", i), s)
            for i in seg["outputs"]:
                feeds.setdefault(("transfer_in", i), s)
        self.segment_of_transfer = feeds
        self.dispatch = {
            i.mnemonic: getattr(self, "cost_" + py_name(i.mnemonic), None)
            or getattr(self, "cost_" + i.kind)
            for i in sim.isa.instructions
        }

    @property
    def repeats(self) -> int:
        """How many times an instruction runs in a run of the batch: once per vector."""
        return self.batch

    def tally(self, pos: int) -> Tally:
        owner = self.sim.layer_of[pos]
        return self.other if owner is None else self.layers[owner]

    def charge(self, pos: int, mnemonic: str, ops: dict[str, int], machine) -> None:
        self.executed[mnemonic] += self.repeats
        self.dispatch[mnemonic](ops, machine, self.tally(pos))

    def cost_halt(self, ops, machine, tally) -> None:
        """No cycles: the last product's drain is part of its cycles."""

    def cost_sync(self, ops, machine, tally) -> None:
        tally.cycles["sync"] += self.cfg.pipeline_stages * self.repeats

    def cost_host(self, ops, machine, tally) -> None:
        self.host_runs[ops["seg"]] += self.batch

    def cost_transfer_in(self, ops, machine, tally) -> None:
        self.transfer("transfer_in", ops, machine, tally)

    def cost_transfer_out(self, ops, machine, tally) -> None:
        self.transfer("transfer_out", ops, machine, tally)

    def transfer(self, kind: str, ops, machine, tally) -> None:
        """ceil(elements * bits / 32) words per vector (the target's `transfer_size`)."""
        size = self.transfer_size(kind, ops, machine, tally)
        if size is None:
            return
        per_row, rows, bits = size
        row_words = words(per_row * bits)
        tally.cycles["transfer"] += -(-row_words // self.cfg.host_words_per_cycle) * rows
        tally.events["host_word"] += row_words * rows
        tally.host_words += row_words * rows
        seg = self.segment_of_transfer.get((kind, ops["sym"]))
        if seg is not None:
            self.host_words[seg] += row_words * rows

    def transfer_size(self, kind: str, ops, machine, tally) -> tuple[int, int, int] | None:
        """(elements per vector, vectors, bits per element) of a transfer, after counting
        its buffer accesses; None: nothing moves."""
        raise NotImplementedError

    def cost_load(self, ops, machine, tally) -> None:
        key, load_words = self.load_size(ops)
        self.load(key, load_words, tally)

    def load(self, key, load_words: int, tally) -> None:
        if self.sim.resident:
            if key in self.charged_loads:
                return
            self.charged_loads.add(key)
            times = 1
        else:
            times = self.repeats
        tally.cycles["load"] += -(-load_words // self.cfg.dma_words_per_cycle) * times
        tally.events["dram_word"] += load_words * times
        tally.load_words += load_words * times

    def load_size(self, ops) -> tuple[tuple, int]:
        """(what the load brings in, its 32-bit words)."""
        raise NotImplementedError


class HostSegments:
    """The host segments' ONNX models, each run in onnxruntime (session made once)."""

    def __init__(self, container: Container, segments: list[dict]):
        self.container = container
        self.segments = segments
        self._sessions: dict[int, object] = {}

    def session(self, seg: int):
        """The onnxruntime session of host segment ``seg`` (created once)."""
        if seg not in self._sessions:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.log_severity_level = 3
            # Q/DQ pairs are exact fixed-point conversions here, not a request to quantize.
            options.add_session_config_entry("session.disable_quant_qdq", "1")
            model = self.container.host_model(self.segments[seg]["section"])
            try:
                self._sessions[seg] = ort.InferenceSession(
                    model, options, providers=["CPUExecutionProvider"]
                )
            except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
                raise DlhwcError(
                    f"host segment '{self.segments[seg]['name']}' is not a runnable ONNX "
                    f"model: {one_line(e)}"
                ) from None
        return self._sessions[seg]

    def run(self, seg: int, symbols: list[Symbol], memory: dict[str, np.ndarray]) -> None:
        """Feed the segment its input symbols from ``memory``; store its output symbols."""
        entry = self.segments[seg]
        session = self.session(seg)
        feeds = {}
        for graph_input, s in zip(session.get_inputs(), entry["inputs"], strict=False):
            sym = symbols[s]
            if sym.name not in memory:
                raise DlhwcError(f"symbol '{sym.name}' has no value in host memory yet")
            feeds[graph_input.name] = memory[sym.name]
        if len(feeds) != len(session.get_inputs()):
            raise DlhwcError(f"host segment '{entry['name']}' takes other inputs than its table")
        try:
            results = session.run(None, feeds)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
            raise DlhwcError(f"host segment '{entry['name']}': {one_line(e)}") from None
        for s, value in zip(entry["outputs"], results, strict=False):
            memory[symbols[s].name] = np.asarray(value)


# -- numerics: saturation and all-zero outputs ---------------------------------------------


@dataclass
class NumericsTally:
    """What a layer's fixed-point results looked like over a run, totals over the batch.

    results       fixed-point results the layer wrote (elements of its output vectors)
    saturated     results that saturation changed (the exact value was out of range)
    vectors       output vectors the layer wrote
    zero_vectors  output vectors that were all zero (underflow, or a dead ReLU layer)
    """

    results: int = 0
    saturated: int = 0
    vectors: int = 0
    zero_vectors: int = 0

    def record(self, codes: np.ndarray, saturated: np.ndarray) -> None:
        """One write of output vectors ``codes`` [vectors, n] and where they saturated."""
        codes = codes.reshape(codes.shape[0], int(np.prod(codes.shape[1:])))
        self.results += int(codes.size)
        self.saturated += int(np.count_nonzero(saturated))
        self.vectors += int(codes.shape[0])
        self.zero_vectors += int(np.count_nonzero(~codes.any(axis=1)))

    def add(self, other: NumericsTally) -> None:
        for k in ("results", "saturated", "vectors", "zero_vectors"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def to_json(self) -> dict:
        return {
            "results": self.results,
            "saturated": self.saturated,
            "saturated_fraction": self.saturated / self.results if self.results else 0.0,
            "vectors": self.vectors,
            "zero_vectors": self.zero_vectors,
        }


def numerics_line(stats: RunStats) -> str:
    """One line on the run's saturated results and all-zero vectors (empty when none)."""
    parts = []
    for e in stats.layers:
        num = e.get("numerics")
        if not num:
            continue
        if num["saturated"]:
            parts.append(
                f"{e['name']} {num['saturated']} saturated ({pct(num['saturated_fraction'])})"
            )
        if num["zero_vectors"]:
            parts.append(f"{e['name']} {num['zero_vectors']}/{num['vectors']} all-zero vectors")
    return ("numerics: " + "; ".join(parts)) if parts else ""


def saturation_text(total: dict) -> str:
    """``; N saturated results`` for a summary line, when a run saturated any."""
    num = total.get("numerics") or {}
    if not num.get("saturated"):
        return ""
    return f"; {num['saturated']} saturated results ({pct(num['saturated_fraction'])})"


# -- formatting ---------------------------------------------------------------------------


@dataclass
class RunStats:
    """What a run cost, per layer, per host segment and in total: the JSON shape every
    target's stats share (each target's subclass adds its table for humans)."""

    TARGET: ClassVar[str] = ""

    layers: list[dict]
    host: list[dict]
    total: dict
    machine: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "target": self.TARGET,
            "machine": self.machine,
            "layers": self.layers,
            "host": self.host,
            "total": self.total,
        }

    def dumps(self) -> str:
        """The JSON text (deterministic: the same run gives the same bytes)."""
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def from_json(cls, data: dict, source: str = "<stats>"):
        """Stats read back from `to_json`'s file. The file is the user's: it is accepted
        when its table can be formatted (every number where the table wants one)."""
        try:
            if data.get("target", cls.TARGET) != cls.TARGET:
                raise KeyError("target")
            stats = cls(
                layers=list(data["layers"]),
                host=list(data["host"]),
                total=dict(data["total"]),
                machine=dict(data.get("machine", {})),
            )
            stats.format_table()
            return stats
        except (
            KeyError,
            TypeError,
            AttributeError,
            ValueError,
            IndexError,
            ZeroDivisionError,
        ) as e:
            raise DlhwcError(
                f"not an {cls.TARGET.upper()} stats file: {one_line(e)}", file=source
            ) from None


def segment_lines(program) -> list[str]:
    """One line per host segment of a loaded program: its ops, inputs and outputs."""
    lines = []
    for seg in program.segments:
        ins = ", ".join(program.symbols[i].name for i in seg["inputs"])
        outs = ", ".join(program.symbols[i].name for i in seg["outputs"])
        lines.append(f"host segment {seg['name']}: {', '.join(seg['ops'])} ({ins} -> {outs})")
    return lines


def energy_and_host_lines(total: dict, host: list[dict], n: int, unit: str) -> list[str]:
    """The energy breakdown and host-segment lines of a stats table, per ``unit``."""
    parts = sorted(total["energy_breakdown_pj"].items(), key=lambda kv: -kv[1])
    lines = [f"energy/{unit}: " + ", ".join(f"{k} {v / n / 1000:.2f} nJ" for k, v in parts if v)]
    for h in host:
        lines.append(
            f"host segment {h['name']} ({', '.join(h['ops'])}): "
            f"{num(h['transfer_words'] / n)} words/{unit} transferred, no accelerator cycles"
        )
    return lines


def align(rows: list[list[str]], left: int) -> list[str]:
    """Columns padded to their widest cell: the first ``left`` left-aligned, the rest right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(w) if i < left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    ]


def num(x: float) -> str:
    return f"{x:,.0f}" if abs(x - round(x)) < 1e-9 else f"{x:,.1f}"


def words(bits: int) -> int:
    """32-bit words holding ``bits`` bits."""
    return -(-int(bits) // 32)


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def py_name(mnemonic: str) -> str:
    """A mnemonic as a Python identifier (`dma.in` -> `dma_in`)."""
    return mnemonic.replace(".", "_")


def _kind_text(kinds: str) -> str:
    return {"iu": "integer", "u": "uint8", "iuf": "numeric"}.get(kinds, kinds)
