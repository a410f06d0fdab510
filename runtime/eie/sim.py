"""The EIE simulator: executes a program container bit for bit and models its cycles and energy.

The simulator reads only the container (spec/container.py): the header's hardware
config, symbol table, layer table and host segments, and the sections the compiler laid
out (backends/eie/program.py). It never sees the compiler's IR; every number it reports
comes from the instructions it executed on the data it was given.

Structure:

- `Simulator(container)` checks and decodes the container once: the instruction words
  (with the ISA table, spec/eie/isa.py), the symbol and layer tables, and the
  presence and shapes of every section an instruction refers to. Column blocks are
  decoded on their first `load` and cached, so later runs reuse them.
- `Simulator.run(inputs)` runs the program once per input vector (row of the inputs).
  The functional simulation is vectorized over the batch: an activation buffer is an
  int64 array [batch, n] of fixed-point codes. Each instruction has one small function
  (`_Machine.exec_<mnemonic>`) whose docstring repeats the ISA pseudo-code.
- The cycle and energy model (`_CostModel.cost_<mnemonic>`) is a separate layer over the
  same dispatch: before an instruction executes, its cost is computed from the same
  decoded blocks and the actual activations. The equations are in backends/eie/README.md
  and next to the code below.
- The target-neutral parts are runtime/common.py's, shared with the ESE simulator:
  loading the header, symbols and host segments, decoding the instruction stream,
  checking inputs, running host segments, decoding PE streams, the FIFO recurrence.
- `Stats` holds the results: per layer, per host segment, and in total, as JSON
  (`to_json`) or as a table (`format_table`). Counts are totals over the batch; the keys
  ending in `_per_vector` are the averages per input vector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlhwc.runtime.common import (
    NumericsTally,
    PeBusy,
    Program,
    RunStats,
    assemble_stats,
    decode_streams,
    energy_and_host_lines,
    energy_breakdown,
    numerics_line,
    placement_lines,
    ratios,
    saturation_text,
    segment_lines,
)
from dlhwc.runtime.common import align as _align
from dlhwc.runtime.common import energy as energy_pj
from dlhwc.runtime.common import fifo_recurrence as _fifo_recurrence
from dlhwc.runtime.common import num as _num
from dlhwc.runtime.common import one_line as _one_line
from dlhwc.runtime.common import pct as _pct
from dlhwc.runtime.common import py_name as _py_name
from dlhwc.runtime.common import words as _words
from dlhwc.runtime.eie.arith import finish_counted
from dlhwc.spec import progress
from dlhwc.spec.container import Container
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

CYCLE_KINDS = ("load", "compute", "transfer", "sync")
"""How a layer's cycles split: weight loads, spmv blocks, host transfers (dma.in/out),
pipeline drains (barrier)."""


# -- decoded data ------------------------------------------------------------------------


@dataclass(eq=False)
class _Block:
    """One column block as the PEs' SRAMs hold it after `load`, decoded once.

    The entries of every PE in column-major order (global row and codebook value code;
    fillers have code 0), and the per-column tallies the cycle and energy model needs.
    """

    layer: int
    block: int
    col_start: int
    col_end: int
    counts: np.ndarray  # int64 [pes, ncols]: entries of each column on each PE
    work_t: np.ndarray  # int64 [ncols, pes]: max(1, counts): PE cycles per column
    work_col: np.ndarray  # int64 [ncols]: sum over PEs of work_t
    entries_col: np.ndarray  # int64 [ncols]: entries over all PEs
    fillers_col: np.ndarray  # int64 [ncols]: fillers over all PEs
    spmat_reads_col: np.ndarray  # int64 [ncols]: SRAM rows read over all PEs
    load_words: int  # 32-bit words of ptr, spmat, codebook and bias images
    refills: int  # register-file refills inside this block (see _CostModel.cost_spmv)
    product_dtype: type  # float64 when its sums are exact, else int64
    dense: np.ndarray | None  # [rows, ncols] weight codes (product_dtype), or None
    col_ptr: np.ndarray  # int64 [ncols + 1]: the entries of block column j, column-major
    csc_rows: np.ndarray  # int32 [E]: rows in column-major order
    csc_codes: np.ndarray  # [E]: codes in column-major order (product_dtype)

    @property
    def ncols(self) -> int:
        return self.col_end - self.col_start


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
    def entries(self) -> int:
        return sum(sum(b["entries"]) for b in self.blocks)

    @property
    def fillers(self) -> int:
        return sum(sum(b["fillers"]) for b in self.blocks)


# -- the simulator ---------------------------------------------------------------------


CHUNK_VECTORS = 8192
"""The vectors a run streams through the program at a time (see `Simulator.run`)."""


class Simulator(Program):
    """Loads a program container and runs it: `run(inputs) -> (outputs, Stats)`.

    Loading the target-neutral parts (header, symbols, host segments, the instruction
    stream), checking inputs and running host segments are runtime/common.Program's.
    """

    target = "eie"
    isa = EIE_ISA
    config_class = EIEConfig
    header_keys = ("hw", "symbols", "layers", "host_segments", "resident")

    def __init__(self, container: Container, source: str = "<container>"):
        super().__init__(container, source)
        self.resident = bool(self.header.resident)
        self.layers = self._layers(self.header.layers)
        self.program = self.decode_text()
        self._check_sections()
        self.layer_of = self._attribute()
        self._blocks: dict[tuple[int, int], _Block] = {}
        self.last_host_memory: dict[str, np.ndarray] = {}
        """Host memory after the last run: every symbol's float values by name."""
        self.record_layers = False
        """Keep each layer's inputs and outputs of a run (`last_layer_inputs/outputs`)."""
        self.last_layer_outputs: dict[str, np.ndarray] = {}
        """Each layer's output values of the last run, [batch, rows] by layer name: what
        the layer wrote to its destination buffer (for `dlhwc verify`)."""
        self.last_layer_inputs: dict[str, np.ndarray] = {}
        """Each layer's input values of the last run, [batch, cols] by layer name: the
        source buffer its first block read (for `dlhwc verify`, which replays the golden
        model on exactly these inputs)."""

    @staticmethod
    def from_file(path: str | Path) -> Simulator:
        return Simulator(Container.read(path), str(path))

    def _error(self, reason: str) -> DlhwcError:
        return self.error(reason)

    # -- loading ----------------------------------------------------------------------

    def _layers(self, table: list[EIELayer]) -> list[_Layer]:
        """The layer table (checked by its records, spec/eie/container.py), with each
        block in the JSON form the cost model reads."""
        return [
            _Layer(i, e.name, e.rows, e.cols, e.in_format, e.weight_format, e.out_format,
                   e.bias, e.nonzeros, tuple(b.to_json() for b in e.blocks))
            for i, e in enumerate(table)
        ]  # fmt: skip

    def check_operands(self, index: int, mnemonic: str, ops: dict[str, int]) -> None:
        """Symbols and host segments as Program checks them; layers and blocks."""
        super().check_operands(index, mnemonic, ops)
        where = f"instruction {index} ({mnemonic})"
        if "layer" in ops:
            if ops["layer"] >= len(self.layers):
                raise self._error(f"{where}: no layer {ops['layer']} ({len(self.layers)} layers)")
            layer = self.layers[ops["layer"]]
            if ops["block"] >= len(layer.blocks):
                raise self._error(
                    f"{where}: layer '{layer.name}' has no block {ops['block']} "
                    f"({len(layer.blocks)} blocks)"
                )
            if ops.get("bias") and not layer.has_bias:
                raise self._error(f"{where}: bias=1 but layer '{layer.name}' has no bias")

    def _section(self, name: str, dtype_kind: str, shape: tuple[int, ...]) -> np.ndarray:
        return self.section(name, dtype_kind, shape)

    def _check_sections(self) -> None:
        """Every section an instruction refers to exists, with the shape the header gives."""
        cfg = self.config
        for layer, block in sorted(
            {(o["layer"], o["block"]) for _, m, o in self.program if m in ("load", "spmv")}
        ):
            lay = self.layers[layer]
            codebook = self._section(f"L{layer}.codebook", "iu", (cfg.codebook_entries,))
            if int(codebook[0]) != 0:
                raise self._error(
                    f"section 'L{layer}.codebook': codebook[0] is {int(codebook[0])}; index 0 "
                    "is the filler code and must be 0"
                )
            if lay.has_bias:
                self._section(f"L{layer}.bias", "iu", (lay.rows,))
            b = lay.blocks[block]
            ncols = b["col_end"] - b["col_start"]
            ptr = self._section(f"L{layer}.B{block}.ptr", "iu", (cfg.num_pes, ncols + 1))
            if np.any(ptr[:, 0] != 0) or np.any(np.diff(ptr.astype(np.int64), axis=1) < 0):
                raise self._error(
                    f"section 'L{layer}.B{block}.ptr': pointers must start at 0 and never decrease"
                )
            counts = ptr[:, -1].astype(np.int64)
            if counts.tolist() != list(b["entries"]):
                raise self._error(
                    f"section 'L{layer}.B{block}.ptr': PE entry counts disagree with the "
                    "layer table"
                )
            spmat = self._section(f"L{layer}.B{block}.spmat", "u", (int(counts.sum()),))
            if spmat.dtype.itemsize != 1:
                raise self._error(f"section 'L{layer}.B{block}.spmat' is {spmat.dtype}, not uint8")
        self.check_host_sections()

    def _attribute(self) -> list[int | None]:
        """The layer each instruction's cost is charged to (None: no layer).

        load/spmv: their layer; dma.in: the next spmv reading its buffer (its input);
        dma.out: the last spmv that wrote its buffer (its output); barrier: the previous
        spmv. Host segments and `end` cost no accelerator cycles.
        """
        spmvs = [(i, o) for i, (_, m, o) in enumerate(self.program) if m == "spmv"]
        owner: list[int | None] = []
        for i, (_, mnemonic, ops) in enumerate(self.program):
            later = [o for j, o in spmvs if j > i]
            earlier = [o for j, o in spmvs if j < i][::-1]
            if mnemonic in ("load", "spmv"):
                owner.append(ops["layer"])
                continue
            if mnemonic == "dma.in":
                candidates = [o for o in later if o["src"] == ops["buf"]] + later + earlier
            elif mnemonic == "dma.out":
                candidates = [o for o in earlier if o["dst"] == ops["buf"]] + earlier + later
            elif mnemonic == "barrier":
                candidates = earlier + later
            else:
                candidates = []
            owner.append(candidates[0]["layer"] if candidates else None)
        return owner

    def block(self, layer: int, block: int) -> _Block:
        """The decoded column block (decoded on first use, then cached).

        A resident program's blocks fit the SRAMs together and all stay cached, as on the
        chip; otherwise only the block in use is (a VGG-sized program's decoded blocks
        would take several times its weights' memory)."""
        key = (layer, block)
        if key not in self._blocks:
            if not self.resident:
                self._blocks.clear()
            self._blocks[key] = self._decode_block(layer, block)
        return self._blocks[key]

    def _decode_block(self, layer: int, block: int) -> _Block:
        """Decode the block's SRAM images into (row, column, code) triples, vectorized.

        Per PE k the entries follow those of PEs < k; column j of PE k is its entries
        ptr[k, j] .. ptr[k, j+1]-1. Each entry (v, z) advances the PE-local row by z and
        then lands on it; the next entry starts one row further. Fillers are v = 0 and
        multiply codebook[0] = 0.
        """
        cfg = self.config
        lay = self.layers[layer]
        b = lay.blocks[block]
        start, end = int(b["col_start"]), int(b["col_end"])
        ncols, pes = end - start, cfg.num_pes
        ptr = self.container.sections[f"L{layer}.B{block}.ptr"].astype(np.int64)
        spmat = self.container.sections[f"L{layer}.B{block}.spmat"].astype(np.int64)
        codebook = self.container.sections[f"L{layer}.codebook"].astype(np.int64)
        v = spmat & (cfg.codebook_entries - 1)
        z = spmat >> cfg.index_bits

        counts = np.diff(ptr, axis=1)  # [pes, ncols]
        try:
            rows, col, _ = decode_streams(ptr, z, lay.rows, pes)
        except ValueError as e:
            raise self._error(
                f"section 'L{layer}.B{block}.spmat': {e} (layer '{lay.name}' has {lay.rows} rows)"
            ) from None
        codes = codebook[v]
        fillers_col = np.bincount(col[v == 0], minlength=ncols).astype(np.int64)
        del v, z, spmat
        entries_col = counts.sum(axis=0)
        work_t = np.maximum(counts, 1).T.copy()
        # SRAM rows (entries_per_read entries each) spanned by each column's entries,
        # addresses relative to the block's start in the PE's SRAM.
        epr = cfg.entries_per_read
        spans = np.where(counts > 0, (ptr[:, 1:] - 1) // epr - ptr[:, :-1] // epr + 1, 0)
        words = _words(pes * (ncols + 1) * cfg.ptr_bits)
        words += _words(int(counts.sum()) * cfg.spmat_entry_bits)
        words += _words(cfg.codebook_entries * cfg.weight_bits)
        if lay.has_bias:
            words += _words(lay.rows * cfg.acc_bits)
        cap = cfg.regfile_capacity
        refills = sum(1 for k in range(1, -(-lay.cols // cap)) if start <= k * cap < end)

        # Entries sit at distinct (row, column) positions: fillers stand for zero rows.
        exact = ncols * 2.0 ** (lay.in_format.bits - 1 + lay.weight_format.bits - 1)
        dtype = np.float64 if exact < 2.0**53 else np.int64
        by_col = np.argsort(col, kind="stable")
        dense = None
        size = lay.rows * ncols
        if size <= DENSE_LIMIT or (size <= DENSE_LIMIT_FILLED and 16 * rows.size >= size):
            dense = np.zeros((lay.rows, ncols), dtype=dtype)
            dense[rows, col] = codes
        return _Block(
            layer=layer,
            block=block,
            col_start=start,
            col_end=end,
            counts=counts,
            work_t=work_t,
            work_col=work_t.sum(axis=1),
            entries_col=entries_col,
            fillers_col=fillers_col,
            spmat_reads_col=spans.sum(axis=0),
            load_words=words,
            refills=refills,
            product_dtype=dtype,
            dense=dense,
            col_ptr=np.concatenate(([0], np.cumsum(entries_col))),
            csc_rows=rows[by_col].astype(np.int32),
            csc_codes=codes[by_col].astype(dtype),
        )

    # -- running ----------------------------------------------------------------------

    def run(
        self, inputs: dict[str, np.ndarray], chunk: int = CHUNK_VECTORS
    ) -> tuple[dict[str, np.ndarray], Stats]:
        """Run the program once per input vector; returns the outputs by name and the stats.

        A batch of more than ``chunk`` vectors streams through the program in chunks of
        ``chunk`` (when every symbol has a batch axis), so the machine's buffers and
        accumulators stay bounded; the outputs, stats and layer records are those of
        the whole batch, the same as in one piece (per-vector costs add up, resident
        weights are charged once).
        """
        batch = self.check_inputs(inputs)
        model = _CostModel(self, batch)
        numerics = [NumericsTally() for _ in self.layers]
        parts: list[dict[str, np.ndarray]] = []
        layer_outputs: dict[str, list[np.ndarray]] = {}
        layer_inputs: dict[str, list[np.ndarray]] = {}
        chunks = list(self._chunks(inputs, batch, chunk))
        steps = len(self.program)
        label = f"eie: {batch:,} vector{'s' if batch != 1 else ''}"
        with progress.task(label, len(chunks) * steps, "instructions") as task:
            for c, (piece, rows) in enumerate(chunks):
                machine = _Machine(self, rows)
                model.batch = rows
                machine.memory.update(self.host_memory(piece))
                for i, (index, mnemonic, ops) in enumerate(self.program):
                    owner = self.layer_of[i]
                    task.update(c * steps + i, "" if owner is None else self.layers[owner].name)
                    try:
                        model.charge(i, mnemonic, ops, machine)
                        machine.dispatch[mnemonic](ops)
                    except DlhwcError as e:
                        raise self._error(f"instruction {index} ({mnemonic}): {e.reason}") from None
                parts.append(self.outputs(machine.memory))
                for total, part in zip(numerics, machine.numerics, strict=True):
                    total.add(part)
                for name, value in machine.layer_outputs.items():
                    layer_outputs.setdefault(name, []).append(value)
                for name, value in machine.layer_inputs.items():
                    layer_inputs.setdefault(name, []).append(value)
                # The dispatch table's bound methods make a cycle: break it, so that
                # the chunk's buffers are freed now, not at some later collection.
                machine.dispatch.clear()
        model.batch = batch
        self.last_host_memory = dict(machine.memory) if len(parts) == 1 else {}
        self.last_layer_outputs = {k: np.concatenate(v) for k, v in layer_outputs.items()}
        self.last_layer_inputs = {k: np.concatenate(v) for k, v in layer_inputs.items()}
        outputs = parts[0]
        if len(parts) > 1:
            axes = {s.name: s.batch_axis for s in self.symbols if s.kind == "output"}
            outputs = {k: np.concatenate([p[k] for p in parts], axis=axes[k]) for k in outputs}
        return outputs, model.stats(numerics)

    def _chunks(self, inputs: dict[str, np.ndarray], batch: int, chunk: int):
        """(inputs, vectors) of each chunk of the batch: the whole batch when it fits in
        one chunk, or unless every symbol keeps its batch first (not a tensor passed
        whole, not a model constant, not a sequence-first tensor)."""
        if batch <= chunk or any(s.batch_axis != 0 or s.kind == "constant" for s in self.symbols):
            yield inputs, batch
            return
        axes = {s.name: s.batch_axis for s in self.symbols if s.kind == "input"}
        for start in range(0, batch, chunk):
            rows = slice(start, min(start + chunk, batch))
            piece = {
                k: np.asarray(v)[(slice(None),) * axes[k] + (rows,)] if k in axes else v
                for k, v in inputs.items()
            }
            yield piece, rows.stop - rows.start


# -- functional semantics --------------------------------------------------------------


class _Machine:
    """The machine state of one run, and one function per instruction."""

    def __init__(self, sim: Simulator, batch: int):
        self.sim = sim
        self.cfg = sim.config
        self.batch = batch
        self.memory: dict[str, np.ndarray] = {}  # host memory: symbol name -> float32
        self.buf: list[np.ndarray | None] = [None] * NUM_BUFFERS  # codes [vectors, n]
        self.lead: list[tuple[int, ...]] = [()] * NUM_BUFFERS  # their leading host shape
        self.acc: dict[int, np.ndarray] = {}  # layer -> int64 [vectors, rows]
        self.numerics = [NumericsTally() for _ in sim.layers]
        self.layer_outputs: dict[str, np.ndarray] = {}  # layer name -> float32 [batch, rows]
        self.layer_inputs: dict[str, np.ndarray] = {}  # layer name -> float32 [batch, cols]
        self.loaded: set[tuple[int, int]] = set()
        self.halted = False
        self.dispatch = {}
        for instr in EIE_ISA.instructions:
            self.dispatch[instr.mnemonic] = getattr(self, "exec_" + _py_name(instr.mnemonic))

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
        codes = self.buf[ops["buf"]]
        if codes is None:
            raise DlhwcError(f"buf[{ops['buf']}] is read before it is written")
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
        self.acc[layer] += _block_product(blk, a, lay.rows)
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

    def exec_host(self, ops: dict[str, int]) -> None:
        """run host segment seg (an ONNX graph) on the host: it reads its input symbols and
        writes its output symbols, in float, converting with their fixed-point formats

        The segment's ONNX model runs in onnxruntime on [batch, *shape] float arrays
        (runtime/common.HostSegments).
        """
        self.sim.run_host(ops["seg"], self.memory)

    def vectors(self, b: int, n: int) -> np.ndarray:
        """buf[b]'s n-element activation vectors [vectors, n]."""
        codes = self.buf[b]
        if codes is None:
            raise DlhwcError(f"buf[{b}] is read before it is written")
        if codes.shape[1] != n:
            raise DlhwcError(f"buf[{b}] holds vectors of {codes.shape[1]} elements, {n} expected")
        return codes


def _block_product(blk: _Block, a: np.ndarray, num_rows: int) -> np.ndarray:
    """The block's contribution: out[b, r] = sum over entries (r, c, w) of w * a[b, c].

    Exact integer sums (float64 when no sum can reach 2^53, else int64). Two equivalent
    ways, whichever touches fewer values: a product with the block's dense copy, or, per
    input vector, only the entries of the columns whose activation is non-zero (what
    the PEs process), gathered from the column-major entry list and summed per row.
    """
    active = np.count_nonzero(a, axis=1)
    touched = int((np.minimum(active, blk.ncols) * (blk.csc_rows.size / max(blk.ncols, 1))).sum())
    if blk.dense is not None and a.shape[0] * blk.dense.size <= 8 * touched:
        return (a.astype(blk.dense.dtype) @ blk.dense.T).astype(np.int64)
    out = np.zeros((a.shape[0], num_rows), dtype=np.int64)
    for b in range(a.shape[0]):  # one input vector at a time, as the machine runs them
        cols = np.flatnonzero(a[b])
        starts, stops = blk.col_ptr[cols], blk.col_ptr[cols + 1]
        lengths = stops - starts
        total = int(lengths.sum())
        if total == 0:
            continue
        offsets = np.cumsum(lengths) - lengths
        idx = np.repeat(starts - offsets, lengths) + np.arange(total)
        values = blk.csc_codes[idx] * np.repeat(a[b, cols].astype(blk.product_dtype), lengths)
        if blk.product_dtype is np.float64:
            out[b] = np.bincount(blk.csc_rows[idx], weights=values, minlength=num_rows)
        else:
            np.add.at(out[b], blk.csc_rows[idx], values)
    return out


@dataclass
class _Tally(PeBusy):
    """Counts of one layer (or of the whole run), totals over the batch."""

    cycles: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CYCLE_KINDS, 0))
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENERGY_EVENTS, 0))
    busy: int = 0  # PE-cycles of work, sum of w_k(t)
    pe_busy: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # per PE
    broadcasts: int = 0  # non-zero activations broadcast
    activations: int = 0  # activations scanned (the layer's columns, per vector)
    entries: int = 0  # entries processed (kept weights and fillers)
    fillers: int = 0  # fillers processed
    load_words: int = 0
    host_words: int = 0

    def add(self, other: _Tally) -> None:
        for k in CYCLE_KINDS:
            self.cycles[k] += other.cycles[k]
        for k in ENERGY_EVENTS:
            self.events[k] += other.events[k]
        self.add_pe_busy(other.pe_busy)
        for k in ("busy", "broadcasts", "activations", "entries", "fillers"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.load_words += other.load_words
        self.host_words += other.host_words


class _CostModel:
    """Cycles and event counts of each executed instruction (see backends/eie/README.md).

    Charged before the instruction executes, from the decoded blocks and the actual
    activations in the machine's buffers. Each cost goes to the layer `_attribute` picks.
    """

    def __init__(self, sim: Simulator, batch: int):
        self.sim = sim
        self.cfg = sim.config
        self.batch = batch
        self.layers = [_Tally() for _ in sim.layers]
        self.other = _Tally()  # instructions attributed to no layer
        self.host_words = [0] * len(sim.segments)
        self.host_runs = [0] * len(sim.segments)
        self.charged_loads: set[tuple[int, int]] = set()
        self.executed = dict.fromkeys((i.mnemonic for i in EIE_ISA.instructions), 0)
        feeds = {}
        for s, seg in enumerate(sim.segments):
            for i in seg["inputs"]:
                feeds.setdefault(("dma.out", i), s)
            for i in seg["outputs"]:
                feeds.setdefault(("dma.in", i), s)
        self.segment_of_transfer = feeds
        self.dispatch = {}
        for instr in EIE_ISA.instructions:
            self.dispatch[instr.mnemonic] = getattr(self, "cost_" + _py_name(instr.mnemonic))

    def charge(self, i: int, mnemonic: str, ops: dict[str, int], machine: _Machine) -> None:
        owner = self.sim.layer_of[i]
        tally = self.other if owner is None else self.layers[owner]
        self.executed[mnemonic] += self.batch
        self.dispatch[mnemonic](ops, machine, tally)

    def _act_events(self, first: int, n: int) -> tuple[int, int]:
        """(register-file, SRAM) accesses of elements first..first+n-1 of a vector."""
        cap = self.cfg.regfile_capacity
        in_rf = max(0, min(first + n, cap) - first)
        return in_rf, n - in_rf

    def cost_end(self, ops, machine, tally) -> None:
        """No cycles: the last block's drain is part of its cycles."""

    def cost_barrier(self, ops, machine, tally) -> None:
        """pipeline_stages cycles per vector: the pipeline drains."""
        tally.cycles["sync"] += self.cfg.pipeline_stages * self.batch

    def _transfer(self, mnemonic: str, ops, tally, total: int, width: int) -> None:
        """ceil(n * act_bits / 32) words per input row (n: the row's elements; the
        whole tensor when it does not split into rows) at host_words_per_cycle words a
        cycle; host_word energy per word; one activation-buffer access per element, each
        vector of ``width`` elements streaming into the register files (or SRAM)."""
        rows = self.batch if total % self.batch == 0 else 1
        words = _words(total // rows * self.cfg.act_bits) * rows
        tally.cycles["transfer"] += -(-words // (self.cfg.host_words_per_cycle * rows)) * rows
        tally.events["host_word"] += words
        tally.host_words += words
        rf, sram = self._act_events(0, width)
        vectors = total // max(width, 1)
        tally.events["act_regfile"] += rf * vectors
        tally.events["act_sram"] += sram * vectors
        seg = self.segment_of_transfer.get((mnemonic, ops["sym"]))
        if seg is not None:
            self.host_words[seg] += words

    def cost_dma_in(self, ops, machine, tally) -> None:
        """A host-to-chip transfer (see `_transfer`) of what the symbol holds."""
        value = np.asarray(machine.memory.get(self.sim.symbols[ops["sym"]].name, 0.0))
        width = value.shape[-1] if value.ndim else 1
        self._transfer("dma.in", ops, tally, value.size, width)

    def cost_dma_out(self, ops, machine, tally) -> None:
        """A chip-to-host transfer (see `_transfer`) of what the buffer holds."""
        codes = machine.buf[ops["buf"]]
        if codes is not None:
            self._transfer("dma.out", ops, tally, codes.size, codes.shape[1])

    def cost_load(self, ops, machine, tally) -> None:
        """ceil(words / dma_words_per_cycle) cycles, dram_word energy per 32-bit word.

        words: the block's ptr (ptr_bits each), spmat (spmat_entry_bits each), codebook
        (once, broadcast to the PEs) and bias (acc_bits each) images. Charged once per run
        when the weights are resident, otherwise for every vector.
        """
        key = (ops["layer"], ops["block"])
        if self.sim.resident:
            if key in self.charged_loads:
                return
            self.charged_loads.add(key)
            times = 1
        else:
            times = self.batch
        words = self.sim.block(*key).load_words
        tally.cycles["load"] += -(-words // self.cfg.dma_words_per_cycle) * times
        tally.events["dram_word"] += words * times
        tally.load_words += words * times

    def cost_spmv(self, ops, machine, tally) -> None:
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
        ends = _fifo_recurrence(nz, items, blk.work_t, cfg.fifo_depth)
        cycles = ends + cfg.pipeline_stages + blk.refills * cfg.regfile_entries
        nzi = nz.astype(np.int64)
        broadcasts = int(items.sum())
        entries = int((nzi @ blk.entries_col).sum())
        tally.cycles["compute"] += int(cycles.sum())
        tally.busy += int((nzi @ blk.work_col).sum())
        tally.add_pe_busy(nzi.sum(axis=0) @ blk.work_t)
        tally.broadcasts += broadcasts
        tally.activations += blk.ncols * vectors
        tally.entries += entries
        tally.fillers += int((nzi @ blk.fillers_col).sum())
        ev = tally.events
        ev["spmat_read"] += int((nzi @ blk.spmat_reads_col).sum())
        ev["ptr_read"] += broadcasts * cfg.num_pes
        ev["codebook_lookup"] += entries
        ev["mac"] += entries
        ev["lnzd"] += broadcasts
        # Source: one register-file read per broadcast; the elements beyond the register
        # files are read once from the activation SRAM by the refill that brings them in.
        ev["act_regfile"] += broadcasts
        ev["act_sram"] += self._act_events(blk.col_start, blk.ncols)[1] * vectors
        if ops["last"]:  # destination: one write per output element
            rf, sram = self._act_events(0, lay.rows)
            ev["act_regfile"] += rf * vectors
            ev["act_sram"] += sram * vectors

    def cost_host(self, ops, machine, tally) -> None:
        """No accelerator cycles: its transfers are the dma.in/dma.out around it."""
        self.host_runs[ops["seg"]] += self.batch

    # -- results ----------------------------------------------------------------------

    def stats(self, numerics: list[NumericsTally]) -> Stats:
        parts = assemble_stats(
            self,
            layer_json=_layer_json,
            dense_json=_dense_json,
            totals=_totals,
            dense_resident=_dense_resident(self.sim.layers, self.cfg),
            new_tally=_Tally,
            events=ENERGY_EVENTS,
            machine_fields=(),
            numerics=numerics,
        )
        return Stats(**parts)


def _layer_json(lay: _Layer, tally: _Tally, cfg: EIEConfig, n: int) -> dict:
    cycles = sum(tally.cycles.values())
    energy = energy_pj(tally.events, cfg)
    compute = tally.cycles["compute"]
    entries = lay.entries
    nonzero_macs = tally.entries - tally.fillers
    return {
        "name": lay.name,
        "kind": "fc",
        "out_format": str(lay.out_format),
        "rows": lay.rows,
        "cols": lay.cols,
        "blocks": len(lay.blocks),
        "nonzeros": lay.nonzeros,
        "entries": entries,
        "fillers": lay.fillers,
        "density": lay.nonzeros / max(1, lay.rows * lay.cols),
        "padding_overhead": lay.fillers / entries if entries else 0.0,
        "activation_density": tally.broadcasts / tally.activations if tally.activations else 0.0,
        "cycles": cycles,
        "cycles_per_vector": cycles / n,
        "cycles_breakdown": dict(tally.cycles),
        "time_us": cycles * cfg.cycle_ns / 1000.0,
        "time_us_per_vector": cycles * cfg.cycle_ns / 1000.0 / n,
        "busy_pe_cycles": tally.busy,
        "pe_busy_cycles": tally.pe_busy_cycles(cfg.num_pes),
        "load_efficiency": tally.busy / (cfg.num_pes * compute) if compute else 0.0,
        "mac_utilization": nonzero_macs / (cfg.num_pes * compute) if compute else 0.0,
        "filler_cycle_fraction": tally.fillers / tally.busy if tally.busy else 0.0,
        "broadcasts": tally.broadcasts,
        "entries_processed": tally.entries,
        "fillers_processed": tally.fillers,
        "load_words": tally.load_words,
        "host_words": tally.host_words,
        "energy_pj": energy,
        "energy_pj_per_vector": energy / n,
        "energy_breakdown_pj": energy_breakdown(tally.events, cfg),
        "events": dict(tally.events),
    }


def _dense_resident(layers: list[_Layer], cfg: EIEConfig) -> bool:
    """Whether every layer's dense 16-bit weights fit each PE's sparse-matrix SRAM together."""
    per_pe = sum(-(-lay.rows // cfg.num_pes) * lay.cols * cfg.weight_bits for lay in layers)
    return per_pe <= cfg.spmat_sram_bytes * 8


def _dense_json(lay: _Layer, tally: _Tally, cfg: EIEConfig, n: int, resident: bool) -> dict:
    """The same layer, uncompressed, on the same machine (computed, not executed).

    Every weight is a weight_bits value without an index; every activation is broadcast;
    each PE does ceil(rows / N) MACs per column: cols * ceil(rows/N) + pipeline_stages
    cycles per vector, plus the same register-file refills. The weights load like the
    compressed program's: once per run when the dense weights of all layers fit the
    sparse-matrix SRAMs (`resident`), else for every vector. They are read from the
    SRAM in spmat_read_bits rows either way (as if staged there). The layer's host
    transfers and barriers are the same as the compressed layer's.
    """
    pes = cfg.num_pes
    rows_pe = np.maximum(lay.rows - np.arange(pes) + pes - 1, 0) // pes
    refills = max(0, -(-lay.cols // cfg.regfile_capacity) - 1)
    compute = lay.cols * int(rows_pe.max()) + cfg.pipeline_stages
    compute += refills * cfg.regfile_entries
    words = _words(lay.rows * lay.cols * cfg.weight_bits)
    if lay.has_bias:
        words += _words(lay.rows * cfg.acc_bits)
    load_times = 1 if resident else n
    load = -(-words // cfg.dma_words_per_cycle) * load_times
    events = dict.fromkeys(ENERGY_EVENTS, 0)
    reads = lay.cols * int(np.sum(-(-(rows_pe * cfg.weight_bits) // cfg.spmat_read_bits)))
    events["spmat_read"] = reads * n
    events["mac"] = lay.rows * lay.cols * n
    src_rf = max(0, min(lay.cols, cfg.regfile_capacity))
    dst_rf = max(0, min(lay.rows, cfg.regfile_capacity))
    events["act_regfile"] = (lay.cols + dst_rf) * n
    events["act_sram"] = (lay.cols - src_rf + lay.rows - dst_rf) * n
    events["lnzd"] = lay.cols * n
    events["dram_word"] = words * load_times
    events["host_word"] = tally.events["host_word"]
    cycles = compute * n + load + tally.cycles["transfer"] + tally.cycles["sync"]
    energy = energy_pj(events, cfg)
    return {
        "cycles": cycles,
        "cycles_per_vector": cycles / n,
        "compute_cycles": compute * n,
        "load_cycles": load,
        "time_us": cycles * cfg.cycle_ns / 1000.0,
        "time_us_per_vector": cycles * cfg.cycle_ns / 1000.0 / n,
        "energy_pj": energy,
        "energy_pj_per_vector": energy / n,
        "weight_bits": lay.rows * lay.cols * cfg.weight_bits,
        "resident": resident,
        "events": events,
    }


def _totals(tally: _Tally, layers: list[dict], cfg: EIEConfig, n: int) -> dict:
    cycles = sum(tally.cycles.values())
    energy = energy_pj(tally.events, cfg)
    compute = tally.cycles["compute"]
    dense_cycles = sum(e["dense"]["cycles"] for e in layers)
    dense_energy = sum(e["dense"]["energy_pj"] for e in layers)
    total = {
        "vectors": n,
        "cycles": cycles,
        "cycles_per_vector": cycles / n,
        "cycles_breakdown": dict(tally.cycles),
        "time_us": cycles * cfg.cycle_ns / 1000.0,
        "time_us_per_vector": cycles * cfg.cycle_ns / 1000.0 / n,
        "busy_pe_cycles": tally.busy,
        "pe_busy_cycles": tally.pe_busy_cycles(cfg.num_pes),
        "load_efficiency": tally.busy / (cfg.num_pes * compute) if compute else 0.0,
        "mac_utilization": (tally.entries - tally.fillers) / (cfg.num_pes * compute)
        if compute
        else 0.0,
        "energy_pj": energy,
        "energy_pj_per_vector": energy / n,
        "energy_breakdown_pj": energy_breakdown(tally.events, cfg),
        "events": dict(tally.events),
        "host_words": tally.host_words,
        "load_words": tally.load_words,
        "dense": {
            "cycles": dense_cycles,
            "cycles_per_vector": dense_cycles / n,
            "time_us": dense_cycles * cfg.cycle_ns / 1000.0,
            "time_us_per_vector": dense_cycles * cfg.cycle_ns / 1000.0 / n,
            "energy_pj": dense_energy,
            "energy_pj_per_vector": dense_energy / n,
        },
    }
    ratios(total)
    return total


# -- stats -----------------------------------------------------------------------------


@dataclass
class Stats(RunStats):
    """What a run cost, per layer, per host segment and in total.

    Counts (cycles, events, energy, time) are totals over the batch of `total.vectors`
    input vectors; keys ending in `_per_vector` are per-vector averages. Ratios
    (efficiencies, densities, speedups) are over the whole batch. The schema is in
    backends/eie/README.md.
    """

    TARGET = "eie"

    def format_table(self) -> str:
        """The stats as an aligned table, per vector, for humans."""
        t, m = self.total, self.machine
        n = t.get("vectors", 1)
        try:
            lines = [
                f"EIE simulation: {n} vector{'s' if n != 1 else ''}, "
                f"{m.get('num_pes', '?')} PEs at {m.get('clock_mhz', '?')} MHz, weights "
                + ("resident" if t.get("resident") else "reloaded for every vector"),
                "",
            ]
            head = [
                "layer", "rows×cols", "density", "act.dens", "cycles/vec", "µs/vec",
                "load eff", "padding", "nJ/vec", "dense cyc", "speedup", "energy saving",
            ]  # fmt: skip
            rows = [head]
            for e in self.layers:
                rows.append([
                    e["name"], f"{e['rows']}×{e['cols']}", _pct(e["density"]),
                    _pct(e["activation_density"]), _num(e["cycles_per_vector"]),
                    f"{e['time_us_per_vector']:.3f}", _pct(e["load_efficiency"]),
                    _pct(e["padding_overhead"]), f"{e['energy_pj_per_vector'] / 1000:.2f}",
                    _num(e["dense"]["cycles_per_vector"]), f"{e['speedup']:.2f}×",
                    f"{e['energy_saving']:.2f}×",
                ])  # fmt: skip
            rows.append([
                "total", "", "", "", _num(t["cycles_per_vector"]),
                f"{t['time_us_per_vector']:.3f}", _pct(t["load_efficiency"]), "",
                f"{t['energy_pj_per_vector'] / 1000:.2f}", _num(t["dense"]["cycles_per_vector"]),
                f"{t['speedup']:.2f}×", f"{t['energy_saving']:.2f}×",
            ])  # fmt: skip
            lines += _align(rows, left=2)
            lines.append("")
            b = t["cycles_breakdown"]
            lines.append(
                "cycles/vector: "
                + ", ".join(f"{k} {_num(b[k] / n)}" for k in CYCLE_KINDS)
                + f"; MAC utilization {_pct(t.get('mac_utilization', 0.0))}"
            )
            lines += energy_and_host_lines(t, self.host, n, "vector")
            if numerics_line(self):
                lines.append(numerics_line(self))
        except (KeyError, TypeError) as e:
            raise DlhwcError(f"not an EIE stats file: missing {_one_line(e)}") from None
        return "\n".join(lines) + "\n"


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
    total_entries = total_ptrs = 0
    reach = [e.acc_reach_bits for e in sim.header.layers]
    for lay in sim.layers:
        entries_pe = max((max(b["entries"]) for b in lay.blocks), default=0)
        ptrs = max((b["col_end"] - b["col_start"] + 1 for b in lay.blocks), default=0)
        total_entries += sum(max(b["entries"]) for b in lay.blocks)
        total_ptrs += sum(b["col_end"] - b["col_start"] + 1 for b in lay.blocks)
        entries = lay.entries
        relu = any(o["relu"] for _, m, o in sim.program if m == "spmv" and o["layer"] == lay.index)
        rows.append([
            lay.name, f"{lay.rows}×{lay.cols}", _pct(lay.nonzeros / max(1, lay.rows * lay.cols)),
            str(len(lay.blocks)), str(entries), str(lay.fillers),
            _pct(lay.fillers / entries if entries else 0.0),
            f"{entries_pe}/{spmat_cap}", f"{ptrs}/{cfg.ptr_capacity}",
            "yes" if relu else "no", "yes" if lay.has_bias else "no",
            f"{reach[lay.index]}/{cfg.acc_bits} bits" if reach[lay.index] else "-",
        ])  # fmt: skip
    lines += _align(rows, left=1)
    lines.append(
        "acc reach: accumulator bits any input could need (static); beyond acc_bits the "
        "output saturates first"
    )
    lines.append("")
    spmat_bytes = total_entries * cfg.spmat_entry_bits // 8
    ptr_bytes = total_ptrs * cfg.ptr_bits // 8
    lines.append(
        f"SRAM per PE (largest share, all blocks): sparse matrix {spmat_bytes} of "
        f"{cfg.spmat_sram_bytes} bytes, pointers {ptr_bytes} of {cfg.ptr_sram_bytes} bytes"
    )
    lines.append(
        "weights resident: "
        + ("yes (loaded once, kept across vectors)" if sim.resident else "no (reloaded per vector)")
    )
    lines += segment_lines(sim)
    lines += placement_lines(sim.container.header)
    return "\n".join(lines) + "\n"


def summary_line(stats: Stats) -> str:
    """One line of the run's totals, per vector."""
    t = stats.total
    return (
        f"eie: {t['vectors']} vectors, {_num(t['cycles_per_vector'])} cycles/vector "
        f"({t['time_us_per_vector']:.3f} µs), {t['energy_pj_per_vector'] / 1000:.2f} nJ/vector, "
        f"load efficiency {_pct(t['load_efficiency'])}; vs dense: speedup {t['speedup']:.2f}×, "
        f"energy saving {t['energy_saving']:.2f}×"
    ) + saturation_text(t)
