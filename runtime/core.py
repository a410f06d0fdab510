"""The simulator core of a sparse PE machine: what EIE and ESE execute the same way.

A sparse PE machine is an array of N PEs, each holding the rows i = k mod N of every
weight matrix as column blocks of (value, relative row index) entries behind a column
pointer image; a central unit broadcasts the non-zero activations to the PEs' FIFOs.
The core owns everything such a machine does whatever its layers compute:

- decoding: the instruction stream (runtime/common.Program) and, for every column block
  of the layer table, its pointer and sparse-matrix images (`Image`, `Block`), checked
  once; the exact product of a block with a batch of activation vectors
  (`block_product`);
- residency and capacity: derived from the images and the config, never taken on trust
  (`SparseSimulator.check_capacity`);
- the channel model: the entries of each column per PE (`decode_streams`) and the
  broadcast/FIFO recurrence that gives a product's cycles (`fifo_recurrence`);
- cost attribution by instruction class, as the ISA table declares it (spec/isa.py
  CLASSES): which layer an instruction's cost goes to (`Program.attribute`) and the cost
  of the classes every target shares (`CostModel`: halt, sync, transfer_in,
  transfer_out, load, host), both in runtime/common.py, which every target's simulator
  uses;
- the event tallies (`SparseTally`), the dense baseline's common rules, the stats JSON and
  the frame of the tables.

A target (runtime/<target>/sim.py) supplies only what its hardware does differently:
its layer table, the sections beyond the images, how a sparse-matrix entry splits into
a value code and a run, the functional semantics of each instruction (`exec_<mnemonic>`),
the cost of its `compute` and `loop` classes, the dense baseline's cycles and events,
and the columns of its tables.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from dlhwc.runtime.common import (
    CostModel,
    Machine,
    NumericsTally,
    Program,
    RunStats,
    Tally,
    energy_and_host_lines,
    num,
    numerics_line,
    one_line,
    pct,
    placement_lines,
    saturation_text,
    segment_lines,
    words,
)
from dlhwc.spec import progress
from dlhwc.spec.errors import DlhwcError

CHUNK_VECTORS = 8192
"""The vectors a run streams through the program at a time (see `SparseSimulator.run`)."""

CYCLE_KINDS = ("load", "compute", "transfer", "sync")
"""How cycles split: weight loads, products and element-wise work, host transfers
(transfer_in/out), pipeline drains (sync)."""


# -- the layer table's column blocks ---------------------------------------------------


@dataclass(frozen=True)
class Image:
    """Where a column block's memory images are, and what decoding them needs."""

    layer: str  # the layer's name (for messages)
    prefix: str  # the sections {prefix}.ptr [pes, ncols+1] and {prefix}.spmat [entries]
    table: dict  # the layer table's entry of the block (col_start, col_end, entries, ...)
    rows: int  # rows of the block's matrix
    product_bits: int  # bits of |activation| x |weight| codes: decides exact float64 sums
    extra_words: int = 0  # load words beyond the ptr and spmat images (codebook, biases)
    refills: int = 0  # register-file refills inside the block (long activation vectors)


@dataclass(eq=False)
class Block:
    """One column block as the PEs' SRAMs hold it after a load, decoded once.

    Every entry's row, block column and weight code (fillers have code 0), and the
    per-column tallies the cycle and energy models need."""

    col_start: int
    col_end: int
    rows: np.ndarray  # int64 [E]: row of each entry, PE after PE
    cols: np.ndarray  # int64 [E]: block column of each entry
    codes: np.ndarray  # int64 [E]: weight code of each entry
    work_t: np.ndarray  # int64 [ncols, pes]: max(1, entries): PE cycles per column
    work_col: np.ndarray  # int64 [ncols]: sum over PEs of work_t
    entries_col: np.ndarray  # int64 [ncols]: entries over all PEs
    fillers_col: np.ndarray  # int64 [ncols]: fillers over all PEs
    spmat_reads_col: np.ndarray  # int64 [ncols]: SRAM rows read over all PEs
    load_words: int  # 32-bit words of the block's images (and the extra words)
    refills: int  # register-file refills inside this block
    product_dtype: type  # float64 when its sums are exact, else int64
    dense: np.ndarray | None  # [rows, ncols] weight codes (product_dtype), or None
    prefer_dense: bool  # multiply with `dense` whenever there is one

    @property
    def ncols(self) -> int:
        return self.col_end - self.col_start

    @functools.cached_property
    def csc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(column pointers [ncols+1], rows int32, codes) of the entries column by column."""
        order = np.argsort(self.cols, kind="stable")
        col_ptr = np.concatenate(([0], np.cumsum(self.entries_col)))
        return (
            col_ptr,
            self.rows[order].astype(np.int32),
            self.codes[order].astype(self.product_dtype),
        )


def block_product(blk: Block, a: np.ndarray, num_rows: int) -> np.ndarray:
    """The block's contribution: out[b, r] = sum over entries (r, c, w) of w * a[b, c].

    Exact integer sums (float64 when no sum can reach 2^53, else int64). Two equivalent
    ways, whichever touches fewer values: a product with the block's dense copy, or, per
    input vector, only the entries of the columns whose activation is non-zero (what
    the PEs process), gathered from the column-major entries and summed per row.
    """
    active = np.count_nonzero(a, axis=1)
    touched = int((np.minimum(active, blk.ncols) * (blk.rows.size / max(blk.ncols, 1))).sum())
    if blk.dense is not None and (blk.prefer_dense or a.shape[0] * blk.dense.size <= 8 * touched):
        return (a.astype(blk.dense.dtype) @ blk.dense.T).astype(np.int64)
    out = np.zeros((a.shape[0], num_rows), dtype=np.int64)
    col_ptr, csc_rows, csc_codes = blk.csc
    for b in range(a.shape[0]):  # one input vector at a time, as the machine runs them
        cols = np.flatnonzero(a[b])
        starts, stops = col_ptr[cols], col_ptr[cols + 1]
        lengths = stops - starts
        total = int(lengths.sum())
        if total == 0:
            continue
        offsets = np.cumsum(lengths) - lengths
        idx = np.repeat(starts - offsets, lengths) + np.arange(total)
        values = csc_codes[idx] * np.repeat(a[b, cols].astype(blk.product_dtype), lengths)
        if blk.product_dtype is np.float64:
            out[b] = np.bincount(csc_rows[idx], weights=values, minlength=num_rows)
        else:
            np.add.at(out[b], csc_rows[idx], values)
    return out


# -- the PE channels of a sparse product -------------------------------------------------


def decode_streams(
    ptr: np.ndarray, z: np.ndarray, num_rows: int, pes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, block column, PE) of every entry of a column block, vectorized.

    ``ptr`` [pes, ncols+1] and the entries' relative row indices ``z``, PE after PE:
    column j of PE k is its entries ptr[k, j] .. ptr[k, j+1]-1; each entry advances the
    PE-local row by z and lands on it, the next one starts one row further. Raises
    ValueError naming the first entry beyond its PE's last row.
    """
    ptr = ptr.astype(np.int64)
    ncols = ptr.shape[1] - 1
    counts = np.diff(ptr, axis=1)  # [pes, ncols]
    per_group = counts.reshape(-1)  # (PE, column) groups, PE after PE
    group = np.repeat(np.arange(pes * ncols, dtype=np.int64), per_group)
    run = np.cumsum(z.astype(np.int64) + 1)  # rows consumed, over the concatenated streams
    starts = np.concatenate(([0], np.cumsum(per_group)[:-1])).astype(np.int64)
    before = np.concatenate(([0], run))[starts]  # rows consumed before each group
    local = run - 1 - before[group] if run.size else run
    pe, col = np.divmod(group, max(ncols, 1))
    per_pe = rows_per_pe(num_rows, pes)
    if local.size and np.any(local >= per_pe[pe]):
        bad = int(np.argmax(local >= per_pe[pe]))
        raise ValueError(f"entry {bad} lies beyond PE {int(pe[bad])}'s last row")
    return pe + local * pes, col, pe


def rows_per_pe(rows: int, pes: int) -> np.ndarray:
    """Rows each PE owns (row i on PE i mod N)."""
    return np.maximum(rows - np.arange(pes) + pes - 1, 0) // pes


def fifo_recurrence(
    nz: np.ndarray, items: np.ndarray, work_t: np.ndarray, depth: int
) -> np.ndarray:
    """max_k e_k(last item) per batch row: a loop over item index t, numpy over [batch, pes].

    Items t = 0, 1, ... are the non-zero activations (``nz`` [batch, ncols]) in column
    order, broadcast one per cycle; PE k works w_k(t) = ``work_t``[column, k] cycles on
    item t. With FIFO depth D:

        b_t    = max(b_{t-1} + 1, max_k s_k(t - D))     broadcast (stalls on a full FIFO)
        s_k(t) = max(b_t + 1, e_k(t - 1))               PE k starts item t
        e_k(t) = s_k(t) + w_k(t)                        and ends it

    with b_{-1} = -1, e_k(-1) = 0. Rows are sorted by item count (descending) so the
    rows still active at step t are a prefix, and finished rows stop being updated.
    """
    batch = nz.shape[0]
    result = np.zeros(batch, dtype=np.int64)
    steps = int(items.max(initial=0))
    if steps == 0:
        return result
    order = np.argsort(-items, kind="stable")
    cols = np.argsort(~nz[order], axis=1, kind="stable")[:, :steps]  # non-zero columns first
    left = items[order]
    pes = work_t.shape[1]
    b = np.full(batch, -1, dtype=np.int64)
    e = np.zeros((batch, pes), dtype=np.int64)
    started = np.zeros((steps, batch), dtype=np.int64)  # max_k s_k(t)
    active = batch
    for t in range(steps):
        while active and left[active - 1] <= t:
            active -= 1
        w = work_t[cols[:active, t]]
        bt = b[:active] + 1
        if t >= depth:
            np.maximum(bt, started[t - depth, :active], out=bt)
        s = np.maximum(bt[:, None] + 1, e[:active])
        e[:active] = s + w
        b[:active] = bt
        started[t, :active] = s.max(axis=1)
    result[order] = e.max(axis=1)
    return result


# -- the simulator -------------------------------------------------------------------


class SparseSimulator(Program):
    """A loaded program of a sparse PE machine; a target's `Simulator` subclasses it.

    A target sets `target`, `isa`, `config_class`, its `machine_class`,
    `cost_model_class` and `stats_class`, `machine_fields` (the config fields its
    stats' `machine` shows), and supplies:

    - `parse_layer(index, entry)`: a layer of its table, checked (a layer has `index`,
      `name`, `nonzeros`, `entries`, `fillers` and `shapes`, its matrices' (rows, cols));
    - `image_keys()` and `image(key)`: its column blocks (key: the operands naming one,
      e.g. (layer, block)) and where their images are (`Image`);
    - `split_entry(key, spmat)`: sparse-matrix entries as (weight codes, runs z, fillers);
    - `check_sections()`: the sections beyond the block images (codebooks, biases, ...);
    - optionally `check_program()` (loop structure) and `reads`/`writes` (the operand
      naming the buffer a compute instruction reads and writes, for attribution).
    """

    header_keys = ("hw", "symbols", "layers", "host_segments")
    machine_class: type[Machine]  # the machine state and functional semantics
    cost_model_class: type[SparseCostModel]  # the cycle and energy model
    stats_class: type[SparseStats]  # the run's stats
    machine_fields: tuple[str, ...] = ("num_pes", "clock_mhz", "fifo_depth")
    prefer_dense = False
    """Multiply with a block's dense copy whenever it has one (dense activations), rather
    than when that touches fewer values than gathering the non-zero columns' entries."""
    evict_blocks = True
    """Keep only the block in use decoded when the weights are not resident (a program
    that streams its blocks once per vector); False: keep every block decoded (a program
    that revisits its blocks every time step)."""

    def __init__(self, container, source: str = "<container>"):
        super().__init__(container, source)
        self.program = self.decode_text()
        self.check_program()
        self.images = {key: self.image(key) for key in self.image_keys()}
        for img in self.images.values():
            self.check_image(img)
        self.check_sections()
        self.check_host_sections()
        self.resident = self.check_capacity()
        self.layer_of = self.attribute()
        self._blocks: dict[tuple, Block] = {}

    def check_program(self) -> None:
        """Checks of the instruction stream beyond each instruction's operands."""

    def image_keys(self) -> list[tuple]:
        raise NotImplementedError

    def image(self, key: tuple) -> Image:
        raise NotImplementedError

    def split_entry(self, key: tuple, spmat: np.ndarray) -> tuple[np.ndarray, ...]:
        """The entries of block ``key`` as (weight codes, runs z, which are fillers)."""
        raise NotImplementedError

    def microseconds(self, cycles):
        """Cycles as microseconds at the configured clock."""
        return cycles * self.config.cycle_ns / 1000.0

    def check_sections(self) -> None:
        """The sections beyond the column blocks' images."""

    # -- images, residency and capacity -------------------------------------------------

    def check_image(self, img: Image) -> None:
        """The block's pointer image [pes, ncols+1] starts at 0, never decreases and
        agrees with the layer table's entry counts; its spmat image holds those entries."""
        cfg = self.config
        ncols = img.table["col_end"] - img.table["col_start"]
        ptr = self.section(f"{img.prefix}.ptr", "iu", (cfg.num_pes, ncols + 1))
        if np.any(ptr[:, 0] != 0) or np.any(np.diff(ptr.astype(np.int64), axis=1) < 0):
            raise self.error(
                f"section '{img.prefix}.ptr': pointers must start at 0 and never decrease"
            )
        counts = ptr[:, -1].astype(np.int64)
        if counts.tolist() != list(img.table["entries"]):
            raise self.error(
                f"section '{img.prefix}.ptr': PE entry counts disagree with the layer table"
            )
        spmat = self.section(f"{img.prefix}.spmat", "u", (int(counts.sum()),))
        storage = max(8, 1 << (cfg.spmat_entry_bits - 1).bit_length())  # uint8, uint16, ...
        if spmat.dtype.itemsize * 8 != storage:
            raise self.error(f"section '{img.prefix}.spmat' is {spmat.dtype}, not uint{storage}")

    def check_capacity(self) -> bool:
        """Whether the weights are resident, derived from the images and the config.

        Each block's share of a PE must fit what one PE addresses (spmat_capacity
        entries, ptr_capacity pointers), or the program cannot run. The weights are
        resident, loaded once and kept across vectors, when every block's share fits one
        PE's SRAMs together. A header that still states `resident` must agree.
        """
        cfg = self.config
        self.per_pe_entries = self.per_pe_ptrs = 0
        for img in self.images.values():
            entries = max(img.table["entries"], default=0)
            ptrs = img.table["col_end"] - img.table["col_start"] + 1
            where = f"layer '{img.layer}': block {img.prefix}"
            if entries > cfg.spmat_capacity:
                raise self.error(
                    f"{where} puts {entries} entries on one PE; its sparse-matrix SRAM "
                    f"addresses {cfg.spmat_capacity}"
                )
            if ptrs > cfg.ptr_capacity:
                raise self.error(
                    f"{where} needs {ptrs} pointers on each PE; the pointer SRAM holds "
                    f"{cfg.ptr_capacity}"
                )
            self.per_pe_entries += entries
            self.per_pe_ptrs += ptrs
        resident = self.per_pe_entries <= cfg.spmat_entries and self.per_pe_ptrs <= cfg.ptr_capacity
        stated = self.container.header.get("resident")
        if stated is not None and bool(stated) != resident:
            raise self.error(
                f"corrupted container: the header says resident={str(bool(stated)).lower()}, "
                f"but the images need {self.per_pe_entries} of {cfg.spmat_entries} "
                f"sparse-matrix entries and {self.per_pe_ptrs} of {cfg.ptr_capacity} "
                "pointers per PE"
            )
        return resident

    def block(self, *key) -> Block:
        """The decoded column block (decoded on first use, then cached; see
        `evict_blocks`)."""
        if key not in self._blocks:
            if self.evict_blocks and not self.resident:
                self._blocks.clear()
            self._blocks[key] = self.decode_block(key, self.images[key])
        return self._blocks[key]

    def dense_limits(self) -> tuple[int, int]:
        """(rows x columns up to which a block keeps a dense copy of its codes, the same
        for a block at least 1/16 full)."""
        return 0, 0

    def decode_block(self, key: tuple, img: Image) -> Block:
        """Decode the block's SRAM images into (row, column, code) triples, vectorized.

        Per PE k the entries follow those of PEs < k; column j of PE k is its entries
        ptr[k, j] .. ptr[k, j+1]-1. Each entry (w, z) advances the PE-local row by z and
        then lands on it; the next entry starts one row further. Fillers have w = 0.
        """
        cfg = self.config
        start, end = int(img.table["col_start"]), int(img.table["col_end"])
        ncols, pes = end - start, cfg.num_pes
        ptr = self.container.sections[f"{img.prefix}.ptr"].astype(np.int64)
        spmat = self.container.sections[f"{img.prefix}.spmat"].astype(np.int64)
        codes, z, filler = self.split_entry(key, spmat)
        try:
            rows, col, _ = decode_streams(ptr, z, img.rows, pes)
        except ValueError as e:
            raise self.error(
                f"section '{img.prefix}.spmat': {e} (layer '{img.layer}' has {img.rows} rows)"
            ) from None
        counts = np.diff(ptr, axis=1)  # [pes, ncols]
        work_t = np.maximum(counts, 1).T.copy()
        # SRAM rows (entries_per_read entries each) spanned by each column's entries,
        # addresses relative to the block's start in the PE's SRAM.
        epr = cfg.entries_per_read
        spans = np.where(counts > 0, (ptr[:, 1:] - 1) // epr - ptr[:, :-1] // epr + 1, 0)
        load_words = words(pes * (ncols + 1) * cfg.ptr_bits)
        load_words += words(int(counts.sum()) * cfg.spmat_entry_bits) + img.extra_words
        # Entries sit at distinct (row, column) positions: fillers stand for zero rows.
        dtype = np.float64 if ncols * 2.0**img.product_bits < 2.0**53 else np.int64
        limit, limit_filled = self.dense_limits()
        size = img.rows * ncols
        dense = None
        if size <= limit or (size <= limit_filled and 16 * rows.size >= size):
            dense = np.zeros((img.rows, ncols), dtype=dtype)
            dense[rows, col] = codes
        return Block(
            col_start=start,
            col_end=end,
            rows=rows,
            cols=col,
            codes=codes,
            work_t=work_t,
            work_col=work_t.sum(axis=1),
            entries_col=counts.sum(axis=0),
            fillers_col=np.bincount(col[filler], minlength=ncols).astype(np.int64),
            spmat_reads_col=spans.sum(axis=0),
            load_words=load_words,
            refills=img.refills,
            product_dtype=dtype,
            dense=dense,
            prefer_dense=self.prefer_dense,
        )

    # -- running ----------------------------------------------------------------------

    def run(self, inputs: dict[str, np.ndarray], chunk: int = CHUNK_VECTORS):
        """Run the program once per input vector (row of the inputs); returns the outputs
        by name and the stats.

        A batch of more than ``chunk`` vectors streams through the program in chunks of
        ``chunk`` (when every symbol has a batch axis), so the machine's buffers and
        accumulators stay bounded; the outputs, stats and layer records are those of
        the whole batch, the same as in one piece (per-vector costs add up, resident
        weights are charged once).
        """
        batch = self.check_inputs(inputs)
        model = self.cost_model_class(self, batch)
        numerics = [NumericsTally() for _ in self.layers]
        parts: list[dict[str, np.ndarray]] = []
        records: tuple[dict, dict] = ({}, {})
        chunks = list(self._chunks(inputs, batch, chunk))
        steps = len(self.program)
        label = f"{self.target}: {batch:,} {self.stats_class.UNIT}{'s' if batch != 1 else ''}"
        with progress.task(label, len(chunks) * steps, "instructions") as task:
            for c, (piece, rows) in enumerate(chunks):
                machine = self.machine_class(self, rows)
                model.batch = rows
                machine.memory.update(self.host_memory(piece))
                pos = 0
                while pos < steps:
                    owner = self.layer_of[pos]
                    task.update(c * steps + pos, "" if owner is None else self.layers[owner].name)
                    self.execute(pos, machine, model)
                    loop = self.kind(self.program[pos][1]) == "loop"
                    pos = self.run_loop(pos, machine, model, task) if loop else pos + 1
                parts.append(self.outputs(machine.memory))
                for total, part in zip(numerics, machine.numerics, strict=True):
                    total.add(part)
                for record, part in zip(
                    records, (machine.layer_inputs, machine.layer_outputs), strict=True
                ):
                    for name, value in part.items():
                        record.setdefault(name, []).append(value)
                # The dispatch table's bound methods make a cycle: break it, so that
                # the chunk's buffers are freed now, not at some later collection.
                machine.dispatch.clear()
        model.batch = batch
        self.last_host_memory = dict(machine.memory) if len(parts) == 1 else {}
        self.last_layer_inputs = {k: np.concatenate(v) for k, v in records[0].items()}
        self.last_layer_outputs = {k: np.concatenate(v) for k, v in records[1].items()}
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

    def run_loop(self, pos: int, machine, model, task) -> int:
        """The `body` instructions after the loop instruction at ``pos``, once per time
        step (`machine.begin_step`); then the loop's costs (`model.end_loop`) and its end
        (`machine.end_loop`). Returns the position after the body."""
        body = range(pos + 1, pos + 1 + self.program[pos][2]["body"])
        name, steps = self.layers[self.layer_of[pos]].name, machine.loop_steps()
        for s in range(steps):
            task.update(pos, f"{name} step {s + 1}/{steps}")
            machine.begin_step(s)
            for p in body:
                self.execute(p, machine, model)
        task.update(pos, f"{name}: cycles of {steps} steps")
        model.end_loop(machine)
        self.guard(pos, machine.end_loop)
        return body.stop

    def execute(self, pos: int, machine, model) -> None:
        """Charge the instruction at ``pos``, then execute it (errors name it)."""
        _, mnemonic, ops = self.program[pos]

        def step():
            model.charge(pos, mnemonic, ops, machine)
            machine.dispatch[mnemonic](ops)

        self.guard(pos, step)

    def guard(self, pos: int, action) -> None:
        """Run ``action``; a DlhwcError it raises names the instruction at ``pos``."""
        index, mnemonic, _ = self.program[pos]
        try:
            action()
        except DlhwcError as e:
            raise self.error(f"instruction {index} ({mnemonic}): {e.reason}") from None

    # -- the static report --------------------------------------------------------------

    def report_tail(self, resident: str, streaming: str) -> list[str]:
        """The static report's SRAM use per PE, residency, host segments and placement."""
        cfg = self.config
        return [
            "",
            f"SRAM per PE (largest share, all blocks): sparse matrix "
            f"{self.per_pe_entries * cfg.spmat_entry_bits // 8} of {cfg.spmat_sram_bytes} "
            f"bytes, pointers {self.per_pe_ptrs * cfg.ptr_bits // 8} of "
            f"{cfg.ptr_sram_bytes} bytes",
            "weights resident: " + (f"yes ({resident})" if self.resident else f"no ({streaming})"),
        ]

    def report_end(self) -> list[str]:
        return segment_lines(self) + placement_lines(self.container.header)


# -- tallies and costs -------------------------------------------------------------------


@dataclass
class SparseTally(Tally):
    """The counts of a sparse PE machine: cycles of CYCLE_KINDS, the target's EVENTS, and
    the PE array's work (added field by field, as `Tally` adds)."""

    CYCLE_KINDS: ClassVar[tuple[str, ...]] = CYCLE_KINDS

    busy: int = 0  # PE-cycles of work, sum of w_k(t)
    pe_busy: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # per PE
    broadcasts: int = 0  # non-zero activations broadcast
    activations: int = 0  # activations scanned by the LNZD unit
    entries: int = 0  # entries processed (kept weights and fillers)
    fillers: int = 0  # fillers processed

    def add_pe_busy(self, cycles: np.ndarray) -> None:
        """Add busy cycles per PE ([pes]; nothing when empty)."""
        if cycles.size == 0:
            return
        if self.pe_busy.size == 0:
            self.pe_busy = np.zeros(cycles.size, dtype=np.int64)
        self.pe_busy += cycles

    def add_product(self, nzi: np.ndarray, items: np.ndarray, blk: Block, cfg) -> int:
        """The work of a block's products over vectors whose non-zero columns are ``nzi``
        [vectors, ncols] (0/1): busy cycles, broadcasts, entries, fillers, SRAM and
        pointer reads, MACs. Returns the entries processed."""
        self.busy += int((nzi @ blk.work_col).sum())
        self.add_pe_busy(nzi.sum(axis=0) @ blk.work_t)
        self.broadcasts += int(items.sum())
        entries = int((nzi @ blk.entries_col).sum())
        self.entries += entries
        self.fillers += int((nzi @ blk.fillers_col).sum())
        self.events["spmat_read"] += int((nzi @ blk.spmat_reads_col).sum())
        self.events["ptr_read"] += int(items.sum()) * cfg.num_pes
        self.events["mac"] += entries
        return entries

    @property
    def pe_cycles(self) -> int:
        """Cycles the PE array spent on products (the load efficiency's denominator)."""
        return self.cycles["compute"]

    @property
    def steps(self) -> int | None:
        """Time steps run (None: a machine without time steps)."""
        return None

    def pe_fields(self, cfg) -> dict:
        """Busy PE cycles, load efficiency (busy / all PE cycles) and MAC utilization."""
        pe = cfg.num_pes * self.pe_cycles
        return {
            "busy_pe_cycles": self.busy,
            "pe_busy_cycles": [int(c) for c in self.pe_busy] or [0] * cfg.num_pes,
            "load_efficiency": self.busy / pe if pe else 0.0,
            "mac_utilization": (self.entries - self.fillers) / pe if pe else 0.0,
        }

    def cycle_fields(self, sim: SparseSimulator, n: int) -> dict:
        """Cycles and time, in total and per vector (and per step)."""
        cycles = sum(self.cycles.values())
        compute = self.cycles["compute"]
        return {
            **amounts("cycles", cycles, n, self.steps, compute),
            "cycles_breakdown": dict(self.cycles),
            **amounts(
                "time_us", sim.microseconds(cycles), n, self.steps, sim.microseconds(compute)
            ),
        }

    def energy_fields(self, cfg, n: int) -> dict:
        """Energy, in total and per vector (and per step), and its breakdown by event."""
        pj = energy(self.events, cfg)
        return {
            **amounts("energy_pj", pj, n, self.steps, pj),
            "energy_breakdown_pj": energy_breakdown(self.events, cfg),
            "events": dict(self.events),
        }


def amounts(name: str, total, n: int, steps: int | None, step_total) -> dict:
    """``name``, ``name_per_vector`` and, with time steps, ``name_per_step``."""
    out = {name: total, f"{name}_per_vector": total / n}
    if steps is not None:
        out[f"{name}_per_step"] = step_total / max(steps, 1)
    return out


def energy(events: dict[str, int], config) -> float:
    """Picojoules of the event counts, at the config's energy per event."""
    return float(sum(count * getattr(config.energy, k) for k, count in events.items()))


def energy_breakdown(events: dict[str, int], config) -> dict[str, float]:
    """Picojoules per event kind."""
    return {k: float(count * getattr(config.energy, k)) for k, count in events.items()}


def ratios(entry: dict) -> None:
    """Add speedup and energy saving against the entry's dense baseline."""
    dense = entry["dense"]
    entry["speedup"] = dense["cycles"] / entry["cycles"] if entry["cycles"] else 0.0
    entry["energy_saving"] = dense["energy_pj"] / entry["energy_pj"] if entry["energy_pj"] else 0.0


class SparseCostModel(CostModel):
    """The cost model of a sparse PE machine: `CostModel`'s classes, loads of column
    blocks (their images), and the stats with each layer's dense baseline. A target
    subclasses it with its `SparseTally` class (`tally_class`), the sizes of its
    transfers, and its compute costs."""

    tally_class: ClassVar[type[Tally]] = SparseTally

    def load_size(self, ops) -> tuple[tuple, int]:
        """(what the load brings in, its 32-bit words): a block (its images) by default."""
        key = tuple(ops.values())
        return key, self.sim.block(*key).load_words

    # -- results ----------------------------------------------------------------------

    def layer_json(self, lay, tally: SparseTally, n: int) -> dict:
        """A layer's stats: the target's description, then what every target reports."""
        weights = sum(r * c for r, c in lay.shapes)
        return {
            **self.describe(lay),
            "nonzeros": lay.nonzeros,
            "entries": lay.entries,
            "fillers": lay.fillers,
            "density": lay.nonzeros / max(1, weights),
            "padding_overhead": lay.fillers / lay.entries if lay.entries else 0.0,
            "activation_density": tally.broadcasts / tally.activations
            if tally.activations
            else 0.0,
            **tally.cycle_fields(self.sim, n),
            **self.layer_extra(tally),
            **tally.pe_fields(self.cfg),
            "filler_cycle_fraction": tally.fillers / tally.busy if tally.busy else 0.0,
            "broadcasts": tally.broadcasts,
            "entries_processed": tally.entries,
            "fillers_processed": tally.fillers,
            "load_words": tally.load_words,
            "host_words": tally.host_words,
            **tally.energy_fields(self.cfg, n),
        }

    def describe(self, lay) -> dict:
        raise NotImplementedError

    def layer_extra(self, tally: SparseTally) -> dict:
        return {}

    def dense_resident(self) -> bool:
        """Whether every matrix's dense weight_bits values fit each PE's sparse-matrix
        SRAM together."""
        cfg = self.cfg
        per_pe = sum(
            -(-r // cfg.num_pes) * c * cfg.weight_bits
            for lay in self.sim.layers
            for r, c in lay.shapes
        )
        return per_pe <= cfg.spmat_sram_bytes * 8

    def dense_json(self, lay, tally: SparseTally, n: int, resident: bool) -> dict:
        """The same layer, uncompressed, on the same machine (computed, not executed):
        the target's `dense_cost` gives its compute and load cycles and its events; the
        host transfers and pipeline drains are the compressed layer's."""
        compute, load, events = self.dense_cost(lay, tally, n, resident)
        cycles = compute + load + tally.cycles["transfer"] + tally.cycles["sync"]
        pj = energy(events, self.cfg)
        steps, us = tally.steps, self.sim.microseconds
        return {
            **amounts("cycles", cycles, n, steps, compute),
            "compute_cycles": compute,
            "load_cycles": load,
            **amounts("time_us", us(cycles), n, steps, us(compute)),
            **amounts("energy_pj", pj, n, steps, pj),
            "weight_bits": sum(r * c for r, c in lay.shapes) * self.cfg.weight_bits,
            "resident": resident,
            "events": events,
        }

    def dense_cost(self, lay, tally: SparseTally, n: int, resident: bool) -> tuple[int, int, dict]:
        raise NotImplementedError

    def dense_events(self, tally: SparseTally) -> dict[str, int]:
        """Zero events of the target's kinds (the dense baseline fills them in)."""
        return dict.fromkeys(self.tally_class.EVENTS, 0)

    def totals(self, tally: SparseTally, layers: list[dict], n: int) -> dict:
        us = self.sim.microseconds
        dense_cycles = sum(e["dense"]["cycles"] for e in layers)
        dense_energy = sum(e["dense"]["energy_pj"] for e in layers)
        total = {
            "vectors": n,
            **tally.cycle_fields(self.sim, n),
            **tally.pe_fields(self.cfg),
            **tally.energy_fields(self.cfg, n),
            "host_words": tally.host_words,
            "load_words": tally.load_words,
            "dense": {
                **amounts("cycles", dense_cycles, n, None, 0),
                **amounts("time_us", us(dense_cycles), n, None, 0),
                **amounts("energy_pj", dense_energy, n, None, 0),
            },
        }
        ratios(total)
        return total

    def stats(self, numerics: list[NumericsTally]):
        """The run's stats: per layer (with its dense baseline and numerics), per host
        segment, in total, and the machine they ran on."""
        sim, cfg, n = self.sim, self.cfg, self.batch
        dense_resident = self.dense_resident()
        layers = []
        for lay, tally, counts in zip(sim.layers, self.layers, numerics, strict=True):
            entry = self.layer_json(lay, tally, n)
            entry["dense"] = self.dense_json(lay, tally, n, dense_resident)
            entry["numerics"] = counts.to_json()
            ratios(entry)
            layers.append(entry)
        total_numerics = NumericsTally()
        for counts in numerics:
            total_numerics.add(counts)
        total_tally = self.tally_class()
        for tally in [*self.layers, self.other]:
            total_tally.add(tally)
        total = self.totals(total_tally, layers, n)
        total["resident"] = sim.resident
        total["dense_resident"] = dense_resident
        total["instructions"] = {k: v for k, v in self.executed.items() if v}
        total["numerics"] = total_numerics.to_json()
        host = [
            {
                "name": seg["name"],
                "ops": list(seg["ops"]),
                "runs": self.host_runs[s],
                "transfer_words": self.host_words[s],
                "transfer_words_per_vector": self.host_words[s] / n,
            }
            for s, seg in enumerate(sim.segments)
        ]
        machine = {name: getattr(cfg, name) for name in sim.machine_fields}
        machine["energy_pj_per_event"] = {
            k: getattr(cfg.energy, k) for k in self.tally_class.EVENTS
        }
        return sim.stats_class(layers=layers, host=host, total=total, machine=machine)


class SparseStats(RunStats):
    """A run's stats as JSON and as a table: the target's `table_lines` (title, the
    per-layer table, the cycle breakdown), then energy, host segments and numerics."""

    UNIT: ClassVar[str] = "vector"  # what the batch counts
    PER: ClassVar[str] = "vector"  # what the summary line's costs are per (or "step")

    def format_table(self) -> str:
        """The stats as an aligned table, per vector (or sequence, per step), for humans."""
        n = self.total.get("vectors", 1)
        try:
            lines = self.table_lines(n)
            lines += energy_and_host_lines(self.total, self.host, n, self.UNIT)
            if numerics_line(self):
                lines.append(numerics_line(self))
        except (KeyError, TypeError) as e:
            raise DlhwcError(
                f"not an {self.TARGET.upper()} stats file: missing {one_line(e)}"
            ) from None
        return "\n".join(lines) + "\n"

    def table_lines(self, n: int) -> list[str]:
        raise NotImplementedError

    def summary_line(self, extra: str = "") -> str:
        """One line of the run's totals, per vector (or per step)."""
        t, per = self.total, self.PER
        steps = f", {t['steps']} steps" if per == "step" else ""
        return (
            f"{self.TARGET}: {t['vectors']} {self.UNIT}s{steps}, {num(t[f'cycles_per_{per}'])} "
            f"cycles/{per} ({t[f'time_us_per_{per}']:.3f} µs), "
            f"{t[f'energy_pj_per_{per}'] / 1000:.2f} nJ/{per}, load efficiency "
            f"{pct(t['load_efficiency'])}{extra}; vs dense: speedup {t['speedup']:.2f}×, "
            f"energy saving {t['energy_saving']:.2f}×"
        ) + saturation_text(t)

    def title(self, n: int, steps: str, streaming: str) -> list[str]:
        """The table's first line: vectors (``steps``), the machine and the residency."""
        t, m = self.total, self.machine
        return [
            f"{self.TARGET.upper()} simulation: {n} {self.UNIT}{'s' if n != 1 else ''}{steps}, "
            f"{m.get('num_pes', '?')} PEs at {m.get('clock_mhz', '?')} MHz, weights "
            + ("resident" if t.get("resident") else streaming),
            "",
        ]
