"""A second executor of ESE program containers, the test oracle.

Written from the hardware guide (backends/ese/README.md: "Programs", "Step arithmetic")
and the ISA table (spec/ese/isa.py) alone: it imports the ground layer (the container
file, the ISA table, the fixed-point formats) and numpy, nothing of the compiler, the
back ends or the simulator; host segments run in onnxruntime. Only values, no cycles.

Plain on purpose: a column block becomes a dense matrix of weight codes by walking the
PE streams, a product is one exact integer matrix product, the step arithmetic is the
guide's formulas line by line on whole batches.

    outputs = run(Container.read("prog.dlhw"), {"X": x})
"""

from __future__ import annotations

import numpy as np

from dlhwc.spec.container import Container
from dlhwc.spec.ese.isa import ESE_ISA
from dlhwc.spec.fixedpoint import FixedFormat, from_codes, to_codes
from tests.oracle.host import HostSegments, OracleError

# -- the guide's arithmetic --------------------------------------------------------------------


def sat16(v):
    return np.clip(v, -32768, 32767)


def rnd(v, a: int, b: int):
    """v at frac a to frac b: round half to even when bits go (divmod), exact when they come."""
    v = np.asarray(v, dtype=np.int64)
    if a <= b:
        return v * 2 ** (b - a)
    quotient, remainder = np.divmod(v, 2 ** (a - b))
    half = 2 ** (a - b - 1)
    return quotient + ((remainder > half) | ((remainder == half) & (quotient % 2 == 1)))


class _Cell:
    """One layer direction's element-wise units: formats, biases, peepholes, tables."""

    def __init__(self, container: Container, layer: int, d: int):
        lay = container.header["layers"][layer]
        sec = container.sections
        self.f = {k: int(v) for k, v in lay["formats"].items()}
        self.kind, self.hidden = lay["kind"], lay["hidden"]
        self.acts = list(lay["activations"][d])
        self.clip = lay["clip"]
        self.input_forget = bool(lay["input_forget"])
        self.lbr = bool(lay["linear_before_reset"])
        self.segments = int(lay["lut_segments"])
        self.b = sec[f"L{layer}.bias"].astype(np.int64)[d]
        self.rb_h = sec[f"L{layer}.rb_h"].astype(np.int64)[d] if lay["rb_h"] else None
        self.peep = sec[f"L{layer}.peep"].astype(np.int64)[d] if lay["peepholes"] else None
        self.tables = {fn: sec[f"L{layer}.lut.{fn}"].astype(np.int64) for fn in ("Sigmoid", "Tanh")}

    def cl(self, p):
        p = sat16(p)
        return p if self.clip is None else np.clip(p, -self.clip, self.clip)

    def table(self, fn: str, p):
        fl = self.f["fl"]
        p = sat16(np.asarray(p, dtype=np.int64))
        s = (p + 32768) >> (16 - int(np.log2(self.segments)))
        slopes, icpts = self.tables[fn]
        return sat16(rnd(slopes[s] * p, 16 + fl, 15) + icpts[s])

    def A(self, fn: str, p):
        """A gate activation of p (frac fl) and its frac."""
        if fn == "Relu":
            return np.maximum(p, 0), self.f["fl"]
        return self.table(fn, p), 15

    def pre(self, acc_w, acc_r, rows: slice):
        f = self.f
        return (
            rnd(acc_w[:, rows], f["fx"] + f["fw"], f["fl"])
            + rnd(acc_r[:, rows], f["fh"] + f["fr"], f["fl"])
            + self.b[rows]
        )

    def reset_gate(self, acc_w, acc_r, h):
        """`gates`: r and rh = sat16(rnd(r * h -> fh))."""
        hh, f = self.hidden, self.f
        r, fr = self.A(self.acts[0], self.cl(self.pre(acc_w, acc_r, slice(hh, 2 * hh))))
        return sat16(rnd(r * h, fr + f["fh"], f["fh"]))

    def step(self, acc, h, c):
        """`cell`: (h', c')."""
        f, hh = self.f, self.hidden
        fl, fc, fh = f["fl"], f["fc"], f["fh"]
        acc_w, acc_r = acc[0], acc[1]
        if self.kind == "LSTM":
            p_i, p_o, p_f, p_c = (self.pre(acc_w, acc_r, slice(g * hh, (g + 1) * hh))
                                  for g in range(4))  # fmt: skip
            if self.peep is not None:
                p_i = p_i + rnd(self.peep[:hh] * c, f["fp"] + fc, fl)
                p_f = p_f + rnd(self.peep[2 * hh :] * c, f["fp"] + fc, fl)
            i, fi = self.A(self.acts[0], self.cl(p_i))
            g, fg = self.A(self.acts[1], self.cl(p_c))
            if self.input_forget:
                fgt = 2**fi - i
            else:
                fgt, _ = self.A(self.acts[0], self.cl(p_f))
            c2 = sat16(rnd(fgt * c, fi + fc, fc) + rnd(i * g, fi + fg, fc))
            if self.peep is not None:
                p_o = p_o + rnd(self.peep[hh : 2 * hh] * c2, f["fp"] + fc, fl)
            o, fo = self.A(self.acts[0], self.cl(p_o))
            t, ft = self.A(self.acts[2], sat16(rnd(c2, fc, fl)))
            return sat16(rnd(o * t, fo + ft, fh)), c2
        if self.kind == "GRU":
            z, fz = self.A(self.acts[0], self.cl(self.pre(acc_w, acc_r, slice(0, hh))))
            r, fr = self.A(self.acts[0], self.cl(self.pre(acc_w, acc_r, slice(hh, 2 * hh))))
            if self.lbr:
                inner = rnd(acc_r[:, 2 * hh :], fh + f["fr"], fl) + self.rb_h
                term = rnd(r * inner, fr + fl, fl)
            else:
                term = rnd(acc[2], fh + f["fr"], fl)
            p_n = rnd(acc_w[:, 2 * hh :], f["fx"] + f["fw"], fl) + self.b[2 * hh :] + term
            n, fn = self.A(self.acts[1], self.cl(p_n))
            n_h = rnd(n, fn, fh)
            return sat16(n_h + rnd(z * (h - n_h), fz + fh, fh)), c
        p = self.cl(self.pre(acc_w, acc_r, slice(0, hh)))
        if self.acts[0] == "Relu":
            return sat16(rnd(np.maximum(p, 0), fl, fh)), c
        return sat16(rnd(self.table(self.acts[0], p), 15, fh)), c


# -- the container ---------------------------------------------------------------------------


def _block(container: Container, layer: int, d: int, mat: int, block: int) -> tuple:
    """(col_start, col_end, dense codes [rows, cols of the block])."""
    hw = container.header["hw"]
    n, wbits = hw["num_pes"], hw["weight_bits"]
    (m,) = [
        m for m in container.header["layers"][layer]["matrices"]
        if m["dir"] == d and m["mat"] == mat
    ]  # fmt: skip
    entry = m["blocks"][block]
    col0, col1 = int(entry["col_start"]), int(entry["col_end"])
    prefix = f"L{layer}.D{d}.{m['name']}.B{block}"
    ptr = container.sections[f"{prefix}.ptr"].astype(np.int64)
    spmat = container.sections[f"{prefix}.spmat"].astype(np.int64)
    ncols, rows = col1 - col0, m["rows"]
    codes = np.zeros((rows, ncols), dtype=np.int64)
    base = 0
    for k in range(n):
        words = spmat[base : base + ptr[k, -1]]
        base += int(ptr[k, -1])
        w = words & (2**wbits - 1)
        w = np.where(w >= 2 ** (wbits - 1), w - 2**wbits, w)  # two's complement
        z = words >> wbits
        col = np.repeat(np.arange(ncols), np.diff(ptr[k]))
        total = np.cumsum(z + 1)
        before = np.concatenate(([0], total))[ptr[k, :-1]]
        row = k + (total - 1 - before[col]) * n
        if row.size and row.max() >= rows:
            raise OracleError(f"{prefix}: an entry of PE {k} lies past row {rows}")
        np.add.at(codes, (row, col), w)
    return col0, col1, codes


def _product(a, w):
    bound = float(np.abs(a).max(initial=0)) * float(np.abs(w).max(initial=0)) * a.shape[1]
    if bound < 2.0**53:
        return (a.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)
    return a @ w.T


def run(container: Container, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Execute the program on a batch of rows; the outputs by symbol name."""
    if container.target != "ese":
        raise OracleError(f"target {container.target}, not ese")
    header = container.header
    symbols, layers = header["symbols"], header["layers"]
    memory = {k: np.asarray(v) for k, v in inputs.items()}
    segments = HostSegments(container, memory)
    for s in symbols:
        if s["kind"] == "constant":
            memory[s["name"]] = container.sections[s["section"]]
    first = next(s for s in symbols if s["kind"] == "input" and s.get("batch_axis", 0) is not None)
    batch = memory[first["name"]].shape[first.get("batch_axis", 0)]
    buf: dict[int, np.ndarray] = {}
    blocks: dict[tuple, tuple] = {}
    cells: dict[tuple, _Cell] = {}
    program = [ESE_ISA.decode(int(w)) for w in container.sections["text"].tolist()]

    def fmt(sym) -> FixedFormat:
        return FixedFormat(*sym["format"])

    def execute(pc: int, loop: dict | None) -> int:
        """Execute instruction pc; the next pc."""
        instr, ops = program[pc]
        m = instr.mnemonic
        if m == "dma.in":
            sym = symbols[ops["sym"]]
            host = np.moveaxis(memory[sym["name"]], sym.get("batch_axis", 0), 0)
            buf[ops["buf"]] = to_codes(host, fmt(sym))
        elif m == "dma.out":
            sym = symbols[ops["sym"]]
            values = from_codes(buf[ops["buf"]], fmt(sym))
            memory[sym["name"]] = np.moveaxis(values, 0, sym.get("batch_axis", 0))
        elif m == "load":
            key = (ops["layer"], ops["dir"], ops["mat"], ops["block"])
            if key not in blocks:
                blocks[key] = _block(container, *key)
        elif m == "load.cell":
            key = (ops["layer"], ops["dir"])
            if key not in cells:
                cells[key] = _Cell(container, *key)
        elif m == "seq":
            return run_seq(pc, ops)
        elif m == "spmv":
            col0, col1, codes = blocks[(ops["layer"], ops["dir"], ops["mat"], ops["block"])]
            a = (loop["x_t"], loop["h"], loop.get("rh"))[ops["mat"]]
            if ops["first"]:
                loop["acc"][ops["mat"]] = np.zeros((batch, codes.shape[0]), dtype=np.int64)
            loop["acc"][ops["mat"]] += _product(a[:, col0:col1], codes)
        elif m == "gates":
            cell = cells[(ops["layer"], ops["dir"])]
            loop["rh"] = cell.reset_gate(loop["acc"][0], loop["acc"][1], loop["h"])
        elif m == "cell":
            cell = cells[(ops["layer"], ops["dir"])]
            h2, c2 = cell.step(loop["acc"], loop["h"], loop["c"])
            live = loop["live"]
            loop["h"] = np.where(live[:, None], h2, loop["h"])
            loop["c"] = np.where(live[:, None], c2, loop["c"])
            rows = np.flatnonzero(live)
            buf[loop["y"]][rows, loop["t"][rows], loop["dir"]] = loop["h"][rows]
        elif m == "host":
            segments.run(ops["seg"])
        elif m not in ("barrier", "end"):
            raise OracleError(f"no rule for {m}")
        return pc + 1

    def run_seq(pc: int, ops: dict) -> int:
        lay = layers[ops["layer"]]
        d, hidden, dirs = ops["dir"], lay["hidden"], lay["dirs"]
        x = buf[ops["x"]]
        steps = x.shape[1]
        lens = np.full(batch, steps, dtype=np.int64)
        if ops["has_lens"]:
            lens = buf[ops["lens"]].reshape(batch).astype(np.int64)
        if ops["fresh"]:
            buf[ops["y"]] = np.zeros((batch, steps, dirs, hidden), dtype=np.int64)
            buf[ops["yh"]] = np.zeros((batch, dirs, hidden), dtype=np.int64)
            buf[ops["yc"]] = np.zeros((batch, dirs, hidden), dtype=np.int64)
        zeros = np.zeros((batch, hidden), dtype=np.int64)
        loop = {
            "dir": d,
            "y": ops["y"],
            "h": buf[ops["h0"]][:, d].copy() if ops["has_h0"] else zeros,
            "c": buf[ops["c0"]][:, d].copy() if ops["has_c0"] else zeros.copy(),
        }
        rows = np.arange(batch)
        for s in range(steps):
            t = lens - 1 - s if ops["rev"] else np.full(batch, s)
            loop["t"] = np.clip(t, 0, steps - 1)
            loop["live"] = s < lens
            loop["x_t"] = x[rows, loop["t"]]
            loop["acc"], loop["rh"] = {}, None
            body = pc + 1
            while body < pc + 1 + ops["body"]:
                body = execute(body, loop)
        ended = (lens > 0)[:, None]
        buf[ops["yh"]][:, d] = np.where(ended, loop["h"], 0)
        if lay["kind"] == "LSTM":
            buf[ops["yc"]][:, d] = np.where(ended, loop["c"], 0)
        return pc + 1 + ops["body"]

    pc = 0
    while pc < len(program) and program[pc][0].mnemonic != "end":
        pc = execute(pc, None)
    return {s["name"]: memory[s["name"]] for s in symbols if s["kind"] == "output"}
