"""A second executor of EIE program containers, the test oracle.

Written from the hardware guide (backends/eie/README.md, "Executing a container") and
the ISA table alone: it imports the ground layer (spec/: the container file, the ISA
table and its field decoder, the fixed-point formats) and numpy, and nothing of the
compiler, the back ends or the simulator. Host segments run in onnxruntime, as the
guide says. It models no cycles or energy; it only computes what the program outputs.

It is deliberately plain: the weights of a column block are laid out as a dense matrix
of codebook codes by walking each PE's (v, z) stream as the `spmv` pseudo-code does,
and a product is one exact integer matrix product. The simulator sums per broadcast
column from decoded (row, column, code) triples; the golden model multiplies the IR's
codes. Three ways to the same bits.

    outputs = run(Container.read("prog.dlhw"), {"input": x})
"""

from __future__ import annotations

import numpy as np

from dlhwc.spec.container import Container
from dlhwc.spec.eie.isa import EIE_ISA
from dlhwc.spec.fixedpoint import FixedFormat, from_codes, to_codes
from tests.oracle.host import HostSegments, OracleError


def sat(q: np.ndarray, bits: int) -> np.ndarray:
    """Clamp to the signed ``bits``-bit range."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return np.clip(q, lo, hi)


def round_half_even_shift(q: np.ndarray, shift: int) -> np.ndarray:
    """round_half_even(q * 2^-shift) of int64 q; a negative shift multiplies exactly.

    Written with divmod: quotient and remainder of q / 2^shift, then up by one when the
    remainder is above half, or exactly half and the quotient odd.
    """
    if shift <= 0:
        return q * (2 ** (-shift))  # callers bound q first: see `finish`
    quotient, remainder = np.divmod(q, 2**shift)
    half = 2 ** (shift - 1)
    up = (remainder > half) | ((remainder == half) & (quotient % 2 == 1))
    return quotient + up


def finish(s: np.ndarray, ops: dict, hw: dict) -> np.ndarray:
    """`spmv`'s last step on the sums (bias added): saturate to acc_bits, scale by
    2^-shift rounding half to even, saturate to act_bits, ReLU.

    A left shift (shift < 0) of a large sum would leave int64; any |s| >= 2^act_bits
    saturates the result whatever the shift, so s is clamped there first (exact).
    """
    s = sat(s, hw["acc_bits"])
    if ops["shift"] < 0:
        s = np.clip(s, -(2 ** hw["act_bits"]), 2 ** hw["act_bits"])
    y = sat(round_half_even_shift(s, ops["shift"]), hw["act_bits"])
    return np.maximum(y, 0) if ops["relu"] else y


class _Block:
    """One column block of one layer: its columns and its weights as a dense code matrix."""

    def __init__(self, container: Container, hw: dict, layer: int, block: int, rows: int):
        entry = container.header["layers"][layer]["blocks"][block]
        self.col0, self.col1 = int(entry["col_start"]), int(entry["col_end"])
        n = hw["num_pes"]
        ptr = container.sections[f"L{layer}.B{block}.ptr"].astype(np.int64)
        spmat = container.sections[f"L{layer}.B{block}.spmat"].astype(np.int64)
        codebook = container.sections[f"L{layer}.codebook"].astype(np.int64)
        v_mask = 2 ** hw["index_bits"] - 1
        ncols = self.col1 - self.col0
        if ptr.shape != (n, ncols + 1):
            raise OracleError(f"L{layer}.B{block}.ptr has shape {ptr.shape}")
        self.codes = np.zeros((rows, ncols), dtype=np.int64)
        base = 0  # PE k's entries follow those of PEs 0..k-1
        for k in range(n):
            count = int(ptr[k, -1])
            words = spmat[base : base + count]
            base += count
            v = words & v_mask
            z = words >> hw["index_bits"]
            # Column of each entry, from the pointers.
            col = np.repeat(np.arange(ncols), np.diff(ptr[k]))
            # Within a column: row starts at k; each entry moves it by z*N, lands, then
            # moves it by N. So entry e's local row is (sum of z+1 over the column's
            # entries up to e) - 1.
            steps = z + 1
            total = np.cumsum(steps)
            before = np.concatenate(([0], total))[ptr[k, :-1]]  # consumed before each column
            local = total - 1 - before[col]
            row = k + local * n
            if row.size and row.max() >= rows:
                raise OracleError(f"L{layer}.B{block}: an entry of PE {k} lies past row {rows}")
            np.add.at(self.codes, (row, col), codebook[v])
        if base != spmat.size:
            raise OracleError(f"L{layer}.B{block}.spmat holds {spmat.size} entries, not {base}")


def _exact_product(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """a @ w.T exactly in integers: in float64 while the bound stays below 2^53."""
    bound = float(np.abs(a).max(initial=0)) * float(np.abs(w).max(initial=0)) * a.shape[1]
    if bound < 2.0**53:
        return (a.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)
    return a @ w.T


def run(container: Container, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Execute the program once per input vector; the outputs by symbol name."""
    if container.target != "eie":
        raise OracleError(f"target {container.target}, not eie")
    header = container.header
    hw = header["hw"]
    symbols = header["symbols"]
    layers = header["layers"]

    def fmt(entry) -> FixedFormat:
        return FixedFormat(*entry)

    memory = {k: np.asarray(v) for k, v in inputs.items()}
    segments = HostSegments(container, memory)
    buf: list[np.ndarray | None] = [None] * 4  # codes [vectors, n]
    lead: list[tuple] = [()] * 4
    acc: dict[int, np.ndarray] = {}
    blocks: dict[tuple[int, int], _Block] = {}
    loaded: set[tuple[int, int]] = set()

    for word in container.sections["text"].tolist():
        instr, ops = EIE_ISA.decode(int(word))
        m = instr.mnemonic
        if m == "end":
            break
        if m == "barrier":
            continue
        if m == "dma.in":
            sym = symbols[ops["sym"]]
            host = memory[sym["name"]]
            buf[ops["buf"]] = to_codes(host.reshape(-1, host.shape[-1]), fmt(sym["format"]))
            lead[ops["buf"]] = host.shape[:-1]
        elif m == "dma.out":
            sym = symbols[ops["sym"]]
            codes = buf[ops["buf"]]
            values = from_codes(codes, fmt(sym["format"]))
            memory[sym["name"]] = values.reshape(*lead[ops["buf"]], codes.shape[1])
        elif m == "load":
            key = (ops["layer"], ops["block"])
            if key not in blocks:
                blocks[key] = _Block(container, hw, *key, layers[ops["layer"]]["rows"])
            if not header["resident"]:
                loaded.clear()
            loaded.add(key)
        elif m == "spmv":
            layer = ops["layer"]
            lay = layers[layer]
            key = (layer, ops["block"])
            if key not in loaded:
                raise OracleError(f"spmv of layer {layer} block {ops['block']} before its load")
            blk = blocks[key]
            a = buf[ops["src"]]
            if a.shape[1] != lay["cols"]:
                raise OracleError(f"layer {layer} reads {a.shape[1]} elements, not {lay['cols']}")
            if ops["first"]:
                acc[layer] = np.zeros((a.shape[0], lay["rows"]), dtype=np.int64)
            acc[layer] += _exact_product(a[:, blk.col0 : blk.col1], blk.codes)
            if ops["last"]:
                s = acc.pop(layer)
                if ops["bias"]:
                    s = s + container.sections[f"L{layer}.bias"].astype(np.int64)
                buf[ops["dst"]] = finish(s, ops, hw)
                lead[ops["dst"]] = lead[ops["src"]]
        elif m == "host":
            segments.run(ops["seg"])
        else:
            raise OracleError(f"no rule for {m}")
    return {s["name"]: memory[s["name"]] for s in symbols if s["kind"] == "output"}
