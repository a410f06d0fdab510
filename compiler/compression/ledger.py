"""The compression ledger: where a model's bits go, layer by layer (Deep Compression's table).

One row per matrix slot (compiler/passes/weights.py: a Gemm/MatMul matrix, an RNN's W or
R; all matrices of its stack, e.g. both LSTM directions, in one row). The slots are those
of the module as `fold-constants` leaves it (found on a folded copy), so that a weight
built by a constant subgraph (a Transpose of an initializer, a ConstantOfShape) is
counted whether or not the pipeline folded it: uncompressed, it is a raw row. A layer's biases
are counted in the row of its first matrix slot (a bias whose layer has no matrix slot
gets a row of its own). The total row is the sum of the rows' counts; its ratios are
computed from those sums. A weight that feeds several slots is counted once, in its
first slot.

How a matrix is stored, by how far it has been compressed (E = entries of the
relative-index format of spec/encoding.py: kept weights plus fillers, with rows
interleaved over `pes` PEs and `run_bits`-bit zero runs):

    raw      an onnx.Constant: dense, 32 bits a weight. Nothing is kept apart:
             kept = weights, density 100%.
    pruned   a comp.weight with values (pruned and/or quantized, not shared), stored in
             the smaller of two layouts:
               sparse: E entries of (value bits + run_bits), plus pointers;
               dense:  weights x value bits (no positions, no pointers);
             value bits = the weight's fixed-point width N, else 32.
    shared   a comp.weight with a codebook: always sparse (the EIE layout),
             E x index_bits for the index stream, E x run_bits for the position
             stream, the codebook, and the pointers.

Bit columns of a row (all integers):

    index_q      index (value) stream after P+Q: E x index_bits (shared), E x value bits
                 (pruned, sparse), weights x value bits (pruned, dense), weights x 32 (raw)
    position_q   position stream after P+Q, fillers included: E x run_bits (sparse), else 0
    index_h      index stream after Huffman: sum over symbols of count x code length
                 (fillers' v = 0 included); = index_q for layers that are not shared
    position_h   position stream after Huffman: likewise over the z symbols; = position_q
                 for layers that are not shared
    codebook     k x codebook bits (the format's N, else 32); 0 when not shared
    pointers     matrices x pes x (cols + 1) x pointer_bits (sparse layouts), else 0
    tables       the two Huffman code tables (shared layers only; H only): a canonical
                 code is determined by its code lengths, so each table stores one length
                 per symbol of its alphabet (2^index_bits and 2^run_bits symbols), each in
                 max(5, bit_length(longest code)) bits
    bias_bits    the layer's biases, dense: count x (their format's N, else 32)
    original     32 x (weights + biases)

Huffman code lengths are the ones the `huffman` pass stored on the weight when they were
made for the same pes and run_bits and cover every symbol that occurs (stage "huffman");
otherwise the optimal lengths are computed here (what the huffman pass would store).

Derived columns (kept = non-zero matrix weights; biases are not in the per-weight
figures but are in the compression rates):

    density            kept / weights
    bits/weight P+Q    (index_q + position_q + codebook + pointers) / kept
    bits/weight P+Q+H  (index_h + position_h + codebook + pointers + tables) / kept
    index bits Q, H    index_q / kept, index_h / kept          (the paper's "weight bits")
    position bits Q, H position_q / kept, position_h / kept    (the paper's "index bits")
    compressed P+Q     index_q + position_q + codebook + pointers + bias_bits
    compressed P+Q+H   index_h + position_h + codebook + pointers + tables + bias_bits
    rate P+Q, P+Q+H    original / compressed (the "40x" figure; `percent_*` is its
                       inverse, the paper's "compress rate" percentage)

The ledger takes `pes` (None: each weight's `pes` from the huffman pass, else 1),
`run_bits` (None: the width the weight's stored run code was made for, else 4) and
`pointer_bits` (16).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from dlhwc.compiler.compression.huffman import code_lengths, huffman_bits
from dlhwc.compiler.passes.weights import WeightSlot, find_weights
from dlhwc.dialects import comp

DEFAULT_RUN_BITS = 4
DEFAULT_POINTER_BITS = 16
FLOAT_BITS = 32
MIN_LENGTH_FIELD_BITS = 5

_COUNTS = (
    "weights", "biases", "kept", "entries", "fillers", "index_q", "position_q", "index_h",
    "position_h", "codebook", "pointers", "tables", "bias_bits", "original",
)  # fmt: skip


@dataclass
class LedgerRow:
    """One layer (or the total): counts of weights and of bits, see the module docstring."""

    name: str
    layer: str = ""
    weight: str = ""
    stage: str = ""  # raw | pruned | shared | huffman ("" for the total)
    layout: str = ""  # dense | sparse
    pes: int | None = None
    run_bits: int | None = None
    weights: int = 0
    biases: int = 0
    kept: int = 0
    entries: int = 0
    fillers: int = 0
    index_q: int = 0
    position_q: int = 0
    index_h: int = 0
    position_h: int = 0
    codebook: int = 0
    pointers: int = 0
    tables: int = 0
    bias_bits: int = 0
    original: int = 0

    # -- derived -------------------------------------------------------------------------

    @property
    def matrix_pq(self) -> int:
        return self.index_q + self.position_q + self.codebook + self.pointers

    @property
    def matrix_pqh(self) -> int:
        return self.index_h + self.position_h + self.codebook + self.pointers + self.tables

    @property
    def compressed_pq(self) -> int:
        return self.matrix_pq + self.bias_bits

    @property
    def compressed_pqh(self) -> int:
        return self.matrix_pqh + self.bias_bits

    def _per_kept(self, bits: int) -> float | None:
        return bits / self.kept if self.kept else None

    @property
    def density(self) -> float | None:
        return self.kept / self.weights if self.weights else None

    @property
    def bits_per_weight_pq(self) -> float | None:
        return self._per_kept(self.matrix_pq)

    @property
    def bits_per_weight_pqh(self) -> float | None:
        return self._per_kept(self.matrix_pqh)

    @property
    def index_bits_q(self) -> float | None:
        return self._per_kept(self.index_q)

    @property
    def index_bits_h(self) -> float | None:
        return self._per_kept(self.index_h)

    @property
    def position_bits_q(self) -> float | None:
        return self._per_kept(self.position_q)

    @property
    def position_bits_h(self) -> float | None:
        return self._per_kept(self.position_h)

    @property
    def rate_pq(self) -> float | None:
        return self.original / self.compressed_pq if self.compressed_pq else None

    @property
    def rate_pqh(self) -> float | None:
        return self.original / self.compressed_pqh if self.compressed_pqh else None

    @property
    def percent_pq(self) -> float | None:
        return 100.0 * self.compressed_pq / self.original if self.original else None

    @property
    def percent_pqh(self) -> float | None:
        return 100.0 * self.compressed_pqh / self.original if self.original else None

    _DERIVED = (
        "density", "bits_per_weight_pq", "bits_per_weight_pqh", "index_bits_q",
        "index_bits_h", "position_bits_q", "position_bits_h", "matrix_pq", "matrix_pqh",
        "compressed_pq", "compressed_pqh", "rate_pq", "rate_pqh", "percent_pq", "percent_pqh",
    )  # fmt: skip

    def to_json(self) -> dict[str, object]:
        """The row's counts and derived figures (None where a ratio has no denominator)."""
        out: dict[str, object] = asdict(self)
        for key in self._DERIVED:
            out[key] = getattr(self, key)
        return out


@dataclass
class Ledger:
    """The rows, their total, the settings used, and the quantize pass's formats."""

    rows: list[LedgerRow]
    total: LedgerRow
    pes: int | None
    run_bits: int | None
    pointer_bits: int
    quantization: list[dict[str, object]]

    def to_json(self) -> dict[str, object]:
        return {
            "settings": {
                "pes": self.pes,
                "run_bits": self.run_bits,
                "pointer_bits": self.pointer_bits,
            },
            "rows": [r.to_json() for r in self.rows],
            "total": self.total.to_json(),
            "quantization": self.quantization,
        }

    def format_table(self) -> str:
        """The ledger as aligned text tables, like Deep Compression's Table."""
        rows = [*self.rows, self.total]
        pes = "per weight" if self.pes is None else str(self.pes)
        run = "per weight" if self.run_bits is None else str(self.run_bits)
        lines = [
            f"Compression ledger (pes: {pes}, run bits: {run}, pointer bits: {self.pointer_bits})",
            "",
        ]
        head = ("layer", "stage", "weights", "biases", "density", "bits/w P+Q",
                "bits/w P+Q+H", "idx Q", "idx H", "pos Q", "pos H", "rate P+Q",
                "rate P+Q+H")  # fmt: skip
        body = [
            (r.name, r.stage, f"{r.weights:,}", f"{r.biases:,}", _pct(r.density),
             _num(r.bits_per_weight_pq), _num(r.bits_per_weight_pqh), _num(r.index_bits_q),
             _num(r.index_bits_h), _num(r.position_bits_q), _num(r.position_bits_h),
             _rate(r.rate_pq, r.percent_pq), _rate(r.rate_pqh, r.percent_pqh))
            for r in rows
        ]  # fmt: skip
        lines += _align(head, body, total=True)
        lines += [
            "",
            "Where the bits go after P+Q+H (bits; fillers are entries, included in both streams)",
            "",
        ]
        head = ("layer", "kept", "fillers", "index", "position", "codebook", "pointers",
                "tables", "biases", "total", "original")  # fmt: skip
        body = [
            (r.name, f"{r.kept:,}", f"{r.fillers:,}", f"{r.index_h:,}", f"{r.position_h:,}",
             f"{r.codebook:,}", f"{r.pointers:,}", f"{r.tables:,}", f"{r.bias_bits:,}",
             f"{r.compressed_pqh:,}", f"{r.original:,}")
            for r in rows
        ]  # fmt: skip
        lines += _align(head, body, total=True)
        if self.quantization:
            lines += ["", "Fixed-point formats (quantize)", ""]
            head = ("tensor", "kind", "format", "overflow")
            body = [
                (str(q["name"]), str(q["kind"]), str(q["format"]),
                 "-" if q.get("overflow_rate") is None else f"{q['overflow_rate']:.2e}")
                for q in self.quantization
            ]  # fmt: skip
            lines += _align(head, body)
        lines += [
            "",
            "bits/w: matrix bits per kept weight (indices, positions, codebook, pointers, "
            "and Huffman tables in P+Q+H); idx/pos: index and position stream bits per kept "
            "weight; rate: original 32-bit size / compressed size, biases included.",
        ]
        return "\n".join(lines) + "\n"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _rate(rate: float | None, percent: float | None) -> str:
    return "-" if rate is None else f"{rate:.1f}x ({percent:.2f}%)"


def _align(head: tuple[str, ...], body: list[tuple[str, ...]], total: bool = False) -> list[str]:
    """Text columns: the first left-aligned, the others right-aligned; a rule under the
    head and, with ``total``, above the last row."""
    table = [head, *body]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    rule = "  ".join("-" * w for w in widths)
    out = []
    for n, r in enumerate(table):
        cells = [r[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        if total and n == len(table) - 1 and n > 1:
            out.append(rule)
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append(rule)
    return out


# -- building the ledger --------------------------------------------------------------------


def ledger(
    module: ModuleOp,
    pes: int | None = None,
    pointer_bits: int = DEFAULT_POINTER_BITS,
    run_bits: int | None = None,
) -> Ledger:
    """The compression ledger of ``module`` (see the module docstring for every column)."""
    if pes is not None and pes < 1:
        raise ValueError(f"pes must be at least 1, not {pes}")
    if run_bits is not None and not 1 <= run_bits <= 8:
        raise ValueError(f"run_bits must be within 1..8, not {run_bits}")
    rows: list[LedgerRow] = []
    by_consumer: dict[int, LedgerRow] = {}
    seen: set[int] = set()
    slots = find_weights(_folded(module))
    matrix_counts: dict[int, int] = {}
    for slot in slots:
        if slot.role == "matrix":
            matrix_counts[id(slot.consumer)] = matrix_counts.get(id(slot.consumer), 0) + 1
    for slot in slots:
        if slot.role != "matrix" or id(slot.source) in seen:
            continue
        seen.add(id(slot.source))
        name = slot.layer if matrix_counts[id(slot.consumer)] == 1 else f"{slot.layer}:{slot.name}"
        row = _matrix_row(slot, name, pes, run_bits, pointer_bits)
        rows.append(row)
        by_consumer.setdefault(id(slot.consumer), row)
    for slot in slots:
        if slot.role != "bias" or id(slot.source) in seen:
            continue
        seen.add(id(slot.source))
        row = by_consumer.get(id(slot.consumer))
        if row is None:
            row = LedgerRow(name=slot.layer, layer=slot.layer, weight=slot.name, stage="raw")
            rows.append(row)
            by_consumer[id(slot.consumer)] = row
        n, bits = _bias_bits(slot)
        row.biases += n
        row.bias_bits += bits
        row.original += FLOAT_BITS * n
    total = LedgerRow(name="total")
    for key in _COUNTS:
        setattr(total, key, sum(getattr(r, key) for r in rows))
    return Ledger(rows, total, pes, run_bits, pointer_bits, _quantization(module))


def _folded(module: ModuleOp) -> ModuleOp:
    """A copy of ``module`` after `fold-constants` (the ledger never changes the IR).

    The copy shares the weights' bytes; only folded subgraphs get new constants.
    """
    from xdsl.context import Context

    from dlhwc.compiler.passes.fold_constants import FoldConstantsPass

    copy = module.clone()
    FoldConstantsPass().apply(Context(), copy)
    return copy


def _quantization(module: ModuleOp) -> list[dict[str, object]]:
    try:
        from dlhwc.compiler.passes.quantize import quantization_table
    except ImportError:  # the quantize pass is optional for the ledger
        return []
    return quantization_table(module)


def _bias_bits(slot: WeightSlot) -> tuple[int, int]:
    src = slot.source
    if isinstance(src, comp.WeightOp):
        n = int(np.prod(src.shape))
        fmt = src.fixed_format
        return n, n * (fmt.bits if fmt is not None else FLOAT_BITS)
    n = int(np.asarray(src.to_array()).size)
    return n, n * FLOAT_BITS


def _matrix_row(
    slot: WeightSlot, name: str, pes: int | None, run_bits: int | None, pointer_bits: int
) -> LedgerRow:
    from dlhwc.compiler.passes.huffman import index_bits_of, stored_code, weight_streams

    src = slot.source
    row = LedgerRow(name=name, layer=slot.layer, weight=slot.name)
    if not isinstance(src, comp.WeightOp):
        n = int(np.asarray(src.to_array()).size)
        row.stage, row.layout = "raw", "dense"
        row.weights = row.kept = n
        row.index_q = row.index_h = n * FLOAT_BITS
        row.original = n * FLOAT_BITS
        return row

    code = stored_code(src)
    row.pes = pes if pes is not None else (code[2] if code else 1)
    if run_bits is not None:
        row.run_bits = run_bits
    elif code is not None and len(code[1]) in (2, 4, 8, 16, 32, 64, 128, 256):
        row.run_bits = int(len(code[1])).bit_length() - 1
    else:
        row.run_bits = DEFAULT_RUN_BITS
    stats = weight_streams(slot, row.pes, row.run_bits)
    row.weights = stats.matrices * stats.rows * stats.cols
    row.original = row.weights * FLOAT_BITS
    row.kept = stats.nonzeros
    sparse_pointers = stats.matrices * row.pes * (stats.cols + 1) * pointer_bits
    fmt = src.fixed_format
    width = fmt.bits if fmt is not None else FLOAT_BITS

    if not src.is_shared:
        row.stage = "pruned"
        sparse = stats.entries * (width + row.run_bits) + sparse_pointers
        dense = row.weights * width
        if sparse < dense:
            row.layout, row.entries, row.fillers = "sparse", stats.entries, stats.fillers
            row.index_q = stats.entries * width
            row.position_q = stats.entries * row.run_bits
            row.pointers = sparse_pointers
        else:
            row.layout = "dense"
            row.index_q = dense
        row.index_h, row.position_h = row.index_q, row.position_q
        return row

    index_bits = index_bits_of(src)
    row.stage, row.layout = "shared", "sparse"
    row.entries, row.fillers = stats.entries, stats.fillers
    row.index_q = stats.entries * index_bits
    row.position_q = stats.entries * row.run_bits
    row.codebook = len(src.codebook) * width
    row.pointers = sparse_pointers
    index_len = run_len = None
    if (
        code is not None
        and code[2] == row.pes
        and len(code[0]) == stats.index_counts.size
        and len(code[1]) == stats.run_counts.size
        and not np.any((stats.index_counts > 0) & (code[0] == 0))
        and not np.any((stats.run_counts > 0) & (code[1] == 0))
    ):
        index_len, run_len = code[0], code[1]
        row.stage = "huffman"
    else:
        index_len = code_lengths(stats.index_counts)
        run_len = code_lengths(stats.run_counts)
    row.index_h = huffman_bits(stats.index_counts, index_len)
    row.position_h = huffman_bits(stats.run_counts, run_len)
    longest = int(max(index_len.max(initial=0), run_len.max(initial=0)))
    field = max(MIN_LENGTH_FIELD_BITS, longest.bit_length())
    row.tables = (index_len.size + run_len.size) * field
    return row


def ledger_fields() -> list[str]:
    """The names of a row's stored fields (for documentation and tests)."""
    return [f.name for f in fields(LedgerRow)]
