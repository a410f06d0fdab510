"""The relative-index sparse format of EIE (and Deep Compression), encoded and decoded.

This is the one implementation of the format: the `huffman` pass counts its symbol
streams, the compression ledger sizes it, and the EIE encoder and simulator use it.

The format, for one matrix W [rows, cols] (rows are output neurons, cols are inputs) of
codebook indices with a mask of kept weights, on N processing elements (PEs):

- rows are interleaved over the PEs: row i lives on PE i mod N, where it is the PE's
  *local row* i // N. PE k holds rows k, k+N, k+2N, ... (ceil((rows-k)/N) of them);
- each PE stores its rows column by column (CSC): for every column j, the kept weights
  of its own rows in increasing local row order, as entries (v, z):
    v  the weight's codebook index (`index_bits` wide, 4 in EIE);
    z  the number of zeros (not-kept weights of this PE's rows) in column j between the
       previous entry of the column and this one, or since the start of the column for
       its first entry (`run_bits` wide, 4 in EIE, so at most R = 2**run_bits - 1);
- a gap g > R cannot be written in one z: floor(g / (R+1)) *filler* entries (v = 0,
  z = R) come first, each standing for R zeros plus one more zero row of its own (the
  filler's position), then the weight with z = g mod (R+1). Zeros after the last kept
  weight of a column are not stored;
- pointers p[k, j] give the offset of column j's first entry in PE k's stream, and
  p[k, cols] its length, so column j of PE k is entries p[k, j] .. p[k, j+1] - 1.

The paper's example, a column [0, 0, 1, 2, eighteen zeros, 3] on one PE with R = 15:
v = [1, 2, 0, 3], z = [2, 0, 15, 2]: two zeros before 1, none before 2, then a filler
for 15 zeros plus its own position (16 rows of the 18 zeros), then 2 zeros before 3.

Fillers and codebook index 0: in the bit stream a filler is (v=0, z=R). A kept weight
with codebook index 0 after exactly R zeros is written the same way, so a decoder
working from the bits alone must know that index 0 never stands for a kept weight (the
codebook reserves index 0 for 0.0, which also makes a filler's multiply-add harmless).
`SparseEncoding.filler` records which entries are fillers, so `decode_sparse` is exact
for any codebook; a hardware model that multiplies fillers needs codebook[0] == 0.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class SparseEncoding:
    """One matrix in the relative-index format, the streams of all PEs concatenated.

    Entries of PE k are ``v[pe_offsets[k]:pe_offsets[k+1]]`` (same for ``z``,
    ``filler``); its column j is entries ``pointers[k, j] .. pointers[k, j+1] - 1`` of
    that slice (pointers are relative to the PE's own stream, starting at 0).
    """

    rows: int
    cols: int
    pes: int
    run_bits: int
    v: np.ndarray  # uint8 [entries]: codebook index (0 for fillers)
    z: np.ndarray  # uint8 [entries]: zeros before the entry
    filler: np.ndarray  # bool [entries]: the entry is a filler, not a kept weight
    pe_offsets: np.ndarray  # int64 [pes + 1]: where each PE's entries start in v/z
    pointers: np.ndarray  # int64 [pes, cols + 1]: column starts within each PE's stream
    fillers_per_pe: np.ndarray  # int64 [pes]

    @property
    def entries_per_pe(self) -> np.ndarray:
        """Entries (kept weights and fillers) stored by each PE, int64 [pes]."""
        return np.diff(self.pe_offsets)

    @property
    def nonzeros_per_pe(self) -> np.ndarray:
        """Kept weights stored by each PE, int64 [pes]."""
        return self.entries_per_pe - self.fillers_per_pe

    @property
    def entries(self) -> int:
        """All entries, fillers included."""
        return int(self.pe_offsets[-1])

    @property
    def fillers(self) -> int:
        return int(self.fillers_per_pe.sum())

    @property
    def nonzeros(self) -> int:
        return self.entries - self.fillers

    @property
    def rows_per_pe(self) -> np.ndarray:
        """Local rows of each PE: ceil((rows - k) / pes), int64 [pes]."""
        k = np.arange(self.pes, dtype=np.int64)
        return np.maximum(self.rows - k + self.pes - 1, 0) // self.pes

    def pe_stream(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """PE ``k``'s (v, z, p): its entries and its column pointers [cols + 1]."""
        lo, hi = int(self.pe_offsets[k]), int(self.pe_offsets[k + 1])
        return self.v[lo:hi], self.z[lo:hi], self.pointers[k]


def _check_run_bits(run_bits: int) -> int:
    if not 1 <= run_bits <= 8:
        raise ValueError(f"run_bits must be within 1..8, not {run_bits}")
    return (1 << run_bits) - 1


def _check_matrix(mask_rows: np.ndarray, index_rows: np.ndarray | None, pes: int):
    mask = np.asarray(mask_rows, dtype=np.bool_)
    if mask.ndim != 2:
        raise ValueError(f"encode_sparse takes one matrix [rows, cols], not shape {mask.shape}")
    index = None if index_rows is None else np.asarray(index_rows)
    if index is not None and index.shape != mask.shape:
        raise ValueError(f"index shape {index.shape} differs from the mask shape {mask.shape}")
    if pes < 1:
        raise ValueError(f"pes must be at least 1, not {pes}")
    return mask, index


def _gaps(group: np.ndarray, loc: np.ndarray) -> np.ndarray:
    """Zeros before each kept weight of a (PE, column) group, in stream order."""
    n = loc.size
    first = np.ones(n, dtype=np.bool_)
    first[1:] = group[1:] != group[:-1]
    gap = loc.copy()
    if n > 1:
        gap[1:] -= np.where(first[1:], 0, loc[:-1] + 1)
    return gap


def _check_index_range(vals: np.ndarray) -> None:
    if vals.size and (int(vals.min()) < 0 or int(vals.max()) > 255):
        raise ValueError("codebook indices of kept weights must lie within 0..255")


def _pe_entries(mask: np.ndarray, index: np.ndarray | None, pes: int):
    """For each PE k, its kept weights in stream order: (k, column, local row, index).

    PE k's rows are ``mask[k::pes]``; its stream holds them column by column, local row
    by local row, i.e. the kept positions of that [local rows, cols] slice in transposed
    (column-major) order. A contiguous copy of the transposed slice and one
    `np.flatnonzero` give them in that order: no sort, and no temporary larger than one
    PE's share of the matrix.
    """
    for k in range(pes):
        m = mask[k::pes]
        local = m.shape[0]
        if local == 0 or m.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            vals = None if index is None else np.zeros(0, dtype=np.uint8)
            yield k, empty, empty, vals
            continue
        pos = np.flatnonzero(np.ascontiguousarray(m.T))
        col, loc = np.divmod(pos, local)
        vals = None
        if index is not None:
            vals = np.ascontiguousarray(index[k::pes].T).reshape(-1)[pos]
        yield k, col, loc, vals


def encode_sparse(
    mask_rows: np.ndarray, index_rows: np.ndarray, pes: int = 1, run_bits: int = 4
) -> SparseEncoding:
    """Encode one matrix [rows, cols] (mask of kept weights, uint8 codebook indices).

    Vectorized per PE (`_pe_entries`): the kept weights of a PE come out in stream
    order, fillers are placed with a cumulative sum, and the PEs' streams are
    concatenated. The index of a weight that is not kept is ignored.
    """
    mask, index = _check_matrix(mask_rows, np.asarray(index_rows), pes)
    rmax = _check_run_bits(run_bits)
    rows, cols = mask.shape

    parts: deque[tuple[np.ndarray, np.ndarray, np.ndarray]] = deque()
    pointers = np.zeros((pes, cols + 1), dtype=np.int64)
    fillers_per_pe = np.zeros(pes, dtype=np.int64)
    for k, col, loc, vals in _pe_entries(mask, index, pes):
        _check_index_range(vals)
        gap = _gaps(col, loc)
        fill = gap // (rmax + 1)  # fillers before each kept weight
        span = fill + 1  # entries written for each kept weight
        ends = np.cumsum(span) - 1  # position of each kept weight in the PE's stream
        total = int(ends[-1]) + 1 if ends.size else 0
        v = np.zeros(total, dtype=np.uint8)
        z = np.full(total, rmax, dtype=np.uint8)
        filler = np.ones(total, dtype=np.bool_)
        v[ends] = vals.astype(np.uint8, copy=False)
        z[ends] = (gap % (rmax + 1)).astype(np.uint8)
        filler[ends] = False
        parts.append((v, z, filler))
        np.cumsum(np.bincount(col, weights=span, minlength=cols).astype(np.int64),
                  out=pointers[k, 1:])  # fmt: skip
        fillers_per_pe[k] = int(fill.sum())
    pe_offsets = np.zeros(pes + 1, dtype=np.int64)
    np.cumsum(pointers[:, -1], out=pe_offsets[1:])
    total = int(pe_offsets[-1])
    v = np.empty(total, dtype=np.uint8)
    z = np.empty(total, dtype=np.uint8)
    filler = np.empty(total, dtype=np.bool_)
    for k in range(pes):
        lo, hi = pe_offsets[k], pe_offsets[k + 1]
        # popped: each PE's pieces are freed as they are copied
        v[lo:hi], z[lo:hi], filler[lo:hi] = parts.popleft()
    return SparseEncoding(
        rows=rows,
        cols=cols,
        pes=pes,
        run_bits=run_bits,
        v=v,
        z=z,
        filler=filler,
        pe_offsets=pe_offsets,
        pointers=pointers,
        fillers_per_pe=fillers_per_pe,
    )


def decode_sparse(
    encoded: SparseEncoding, rows: int | None = None, cols: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The (mask [rows, cols] bool, index [rows, cols] uint8) an encoding stands for.

    Vectorized: every entry's column comes from the pointers, its local row from a
    cumulative sum of z + 1 restarted at each column. Indices of dropped weights are 0.
    Raises ValueError on an inconsistent encoding (a row beyond the PE's last row,
    pointers that disagree with the stream lengths).
    """
    e = encoded
    rows = e.rows if rows is None else rows
    cols = e.cols if cols is None else cols
    if (rows, cols) != (e.rows, e.cols):
        raise ValueError(f"encoding is {e.rows}x{e.cols}, not {rows}x{cols}")
    pes = e.pes
    if e.pointers.shape != (pes, cols + 1) or e.pe_offsets.shape != (pes + 1,):
        raise ValueError("pointer or offset arrays have the wrong shape")
    if np.any(e.pointers[:, 0] != 0) or np.any(np.diff(e.pointers, axis=1) < 0):
        raise ValueError("column pointers must start at 0 and never decrease")
    if not np.array_equal(e.pointers[:, -1], np.diff(e.pe_offsets)) or e.pe_offsets[0] != 0:
        raise ValueError("column pointers disagree with the PE stream lengths")
    total = int(e.pe_offsets[-1])
    if not (e.v.size == e.z.size == e.filler.size == total):
        raise ValueError("v, z and filler must each hold one element per entry")

    per_col = np.diff(e.pointers, axis=1).reshape(-1)  # entries of each (PE, column)
    group = np.repeat(np.arange(pes * cols, dtype=np.int64), per_col)
    step = e.z.astype(np.int64) + 1
    run = np.cumsum(step)
    starts = np.zeros(pes * cols, dtype=np.int64)  # stream offset of each (PE, column)
    np.cumsum(per_col[:-1], out=starts[1:])
    before = np.concatenate(([0], run))[starts]  # rows consumed before each column
    loc = run - 1 - before[group]

    pe, col = np.divmod(group, cols)
    limit = (np.maximum(rows - pe + pes - 1, 0)) // pes
    if np.any(loc >= limit):
        raise ValueError("an entry lies beyond its PE's last row")
    keep = ~e.filler
    row = pe[keep] + loc[keep] * pes
    mask = np.zeros((rows, cols), dtype=np.bool_)
    index = np.zeros((rows, cols), dtype=np.uint8)
    mask[row, col[keep]] = True
    index[row, col[keep]] = e.v[keep]
    return mask, index


@dataclass(frozen=True, eq=False)
class StreamStats:
    """Sizes and symbol counts of the encodings of a stack of matrices [m, rows, cols]."""

    matrices: int
    rows: int
    cols: int
    pes: int
    run_bits: int
    entries: int  # kept weights + fillers, over all matrices and PEs
    fillers: int
    nonzeros: int
    index_counts: np.ndarray  # int64 [index alphabet]: occurrences of each v, fillers included
    run_counts: np.ndarray  # int64 [2**run_bits]: occurrences of each z


def stream_stats(
    mask_stack: np.ndarray,
    index_stack: np.ndarray | None,
    pes: int = 1,
    run_bits: int = 4,
    index_symbols: int = 16,
) -> StreamStats:
    """Encode every matrix of a stack and count the symbols of its v and z streams.

    ``index_stack`` None stands for all-zero indices (a weight that is pruned but not
    shared: only the positions and the entry count matter then).

    The counts are those of `encode_sparse`'s v and z, computed without writing the
    streams out: a kept weight after g zeros is g // 2^run_bits fillers (v = 0,
    z = 2^run_bits - 1) and one entry (its index, g mod 2^run_bits), and counting needs
    neither the stream order of the indices nor the streams themselves.
    """
    mask_stack = np.asarray(mask_stack, dtype=np.bool_)
    if mask_stack.ndim != 3:
        raise ValueError(f"stream_stats takes a stack [m, rows, cols], not {mask_stack.shape}")
    m, rows, cols = mask_stack.shape
    index_counts = np.zeros(index_symbols, dtype=np.int64)
    run_counts = np.zeros(1 << run_bits, dtype=np.int64)
    entries = fillers = 0
    rmax = _check_run_bits(run_bits)
    for i in range(m):  # one encoding per matrix (LSTM directions), not per weight
        index = None if index_stack is None else index_stack[i]
        mask, index = _check_matrix(mask_stack[i], index, pes)
        for _, col, loc, vals in _pe_entries(mask, index, pes):
            if vals is None:
                vals = np.zeros(col.size, dtype=np.uint8)
            _check_index_range(vals)
            if vals.size and int(vals.max()) >= index_symbols:
                raise ValueError(
                    f"a codebook index exceeds the alphabet of {index_symbols} symbols"
                )
            gap = _gaps(col, loc)
            fill = int(np.sum(gap // (rmax + 1)))
            index_counts += np.bincount(vals, minlength=index_symbols)
            index_counts[0] += fill  # fillers have v = 0
            run_counts += np.bincount(gap % (rmax + 1), minlength=1 << run_bits)
            run_counts[rmax] += fill  # and z = 2^run_bits - 1
            entries += int(vals.size) + fill
            fillers += fill
    return StreamStats(
        matrices=m,
        rows=rows,
        cols=cols,
        pes=pes,
        run_bits=run_bits,
        entries=entries,
        fillers=fillers,
        nonzeros=entries - fillers,
        index_counts=index_counts,
        run_counts=run_counts,
    )


def column_entries(mask_rows: np.ndarray, pes: int = 1, run_bits: int = 4) -> np.ndarray:
    """Entries (kept weights and fillers) of every column on every PE, int64 [pes, cols].

    The same counts as ``np.diff(encode_sparse(...).pointers, axis=1)``, computed from
    the mask alone without writing the streams: what a PE works through for each
    column, the figure a cycle estimate needs.
    """
    mask, _ = _check_matrix(mask_rows, None, pes)
    rmax = _check_run_bits(run_bits)
    counts = np.zeros((pes, mask.shape[1]), dtype=np.int64)
    for k, col, loc, _ in _pe_entries(mask, None, pes):
        span = _gaps(col, loc) // (rmax + 1) + 1  # the fillers before a kept weight, and it
        counts[k] = np.bincount(col, weights=span, minlength=mask.shape[1]).astype(np.int64)
    return counts
