"""Malformed inputs for every command of `dlhwc`, and the oracle that judges its answers.

Each category of input has a *mutator*: a function of a `random.Random` and the valid
seed artifacts (a small MLP as ONNX, saved IR, compressed IR, an EIE program, its
assembly, an input file, a hardware config) that returns a `Case`: files to write, the
command line to run, and what is known of the input (certainly invalid, or possibly
valid). The same mutators drive the hypothesis tests (tests/test_fuzz.py, where
hypothesis chooses and shrinks the random choices) and the long benchmark run
(benchmarks/fuzz_malformed.py, a seeded corpus of thousands of cases).

`run_case` runs one case in-process and checks what must hold for any input:

- the command ends within `TIMEOUT` seconds (no hang, no exponential backtracking);
- it exits 0, or 1 with exactly one line `dlhwc: error: ...` on stderr: never an
  internal error (status 70), a traceback or another status;
- a certainly invalid input never exits 0;
- after a failure no output file exists (or a pre-existing one is unchanged), and no
  temporary file is left in the directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import signal
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TIMEOUT = 30.0
"""Seconds a single command may take: a case that takes longer is a hang."""


@dataclass
class Case:
    """One command line over files written in a fresh directory.

    ``argv`` entries starting with '@' name files of that directory; "&&" chains two
    commands as in a shell. ``invalid`` is True
    when the input is certainly malformed (the command must fail), None when the
    mutation may have left it valid. ``outputs`` must not exist after a failure;
    ``keep`` files must be unchanged after any run.
    """

    category: str
    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    invalid: bool | None = None
    outputs: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)
    symlinks: dict[str, str] = field(default_factory=dict)
    directories: list[str] = field(default_factory=list)

    def describe(self) -> str:
        names = ", ".join(f"{k} ({len(v)} bytes)" for k, v in self.files.items())
        return f"[{self.category}] dlhwc {' '.join(self.argv)}  files: {names}"


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str
    seconds: float


class FuzzTimeout(BaseException):
    """The command ran past `TIMEOUT` (a BaseException: the CLI must not catch it)."""


# -- the seed artifacts -------------------------------------------------------------------


@dataclass
class Seeds:
    """Valid inputs of every kind, built once; mutators start from them."""

    model: bytes
    ir: str
    comp_ir: str
    program: bytes
    asm: str
    eie_ir: str
    ese_ir: str
    input: bytes
    hw: str


_SEEDS: Seeds | None = None


def tiny_mlp() -> bytes:
    """An 8 -> 6 -> 4 MLP (Gemm, Relu, Gemm, Softmax) with a symbolic batch."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((6, 8)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.standard_normal((4, 6)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1, name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["z"], transB=1, name="fc2"),
        helper.make_node("Softmax", ["z"], ["y"], axis=1, name="softmax"),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def seeds(workdir: Path) -> Seeds:
    """The seed artifacts (built in ``workdir`` the first time)."""
    global _SEEDS
    if _SEEDS is not None:
        return _SEEDS
    from dlhwc.compiler.cli import main

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "m.onnx").write_bytes(tiny_mlp())
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, x=x)
    (workdir / "x.npz").write_bytes(buf.getvalue())
    hw = "num_pes = 4\nfifo_depth = 4\n[energy]\nmac = 1.0\n"
    (workdir / "hw.toml").write_text(hw)
    (workdir / "lstm.onnx").write_bytes(_lstm_model())
    steps = [
        ["compile", "m.onnx", "-o", "m.mlir"],
        ["compile", "m.onnx", "-p", "share-weights{bits=4},quantize", "-o", "c.mlir"],
        ["compile", "m.onnx", "--target", "eie", "--hw", "hw.toml", "-o", "p.dlhw"],
        ["disasm", "p.dlhw", "-o", "p.s"],
        ["compile", "m.onnx", "--target", "eie", "--emit", "eie", "-o", "eie.mlir"],
        ["compile", "lstm.onnx", "--target", "ese", "--emit", "ese", "-o", "ese.mlir"],
    ]
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            for argv in steps:
                assert main(argv) == 0, argv
    finally:
        os.chdir(cwd)
    _SEEDS = Seeds(
        model=(workdir / "m.onnx").read_bytes(),
        ir=(workdir / "m.mlir").read_text(),
        comp_ir=(workdir / "c.mlir").read_text(),
        program=(workdir / "p.dlhw").read_bytes(),
        asm=(workdir / "p.s").read_text(),
        eie_ir=(workdir / "eie.mlir").read_text(),
        ese_ir=(workdir / "ese.mlir").read_text(),
        input=(workdir / "x.npz").read_bytes(),
        hw=hw,
    )
    return _SEEDS


# -- running a case ------------------------------------------------------------------------


def run_case(case: Case, workdir: Path) -> Outcome:
    """Write the case's files in ``workdir`` (empty), run it there, return what happened."""
    import time

    from dlhwc.compiler.cli import main

    for name in case.directories:
        (workdir / name).mkdir()
    for name, data in case.files.items():
        (workdir / name).write_bytes(data)
    for name, target in case.symlinks.items():
        (workdir / name).symlink_to(target)
    argv = [str(workdir / a[1:]) if a.startswith("@") else a for a in case.argv]
    commands, current = [], []
    for a in argv:  # "&&" chains commands, as in a shell
        if a == "&&":
            commands.append(current)
            current = []
        else:
            current.append(a)
    commands.append(current)

    def expire(signum, frame):
        raise FuzzTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    start = time.monotonic()
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        for command in commands:
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                status = main(command)
            if status != 0:
                break
    except FuzzTimeout:
        status = -1
    except SystemExit as e:  # argparse: a usage error
        status = e.code if isinstance(e.code, int) else 2
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.chdir(cwd)
    return Outcome(status, out.getvalue(), err.getvalue(), time.monotonic() - start)


def check(case: Case, outcome: Outcome, workdir: Path) -> None:
    """Assert the oracle's rules (module docstring) for ``case`` and its ``outcome``."""
    what = case.describe()
    assert outcome.status != -1, f"hang (> {TIMEOUT} s): {what}"
    assert "Traceback" not in outcome.stderr, f"traceback: {what}\n{outcome.stderr}"
    assert outcome.status != 70, f"internal error: {what}\n{outcome.stderr}"
    assert outcome.status in (0, 1, 2), f"exit status {outcome.status}: {what}"
    if outcome.status == 2:  # argparse's usage error: a usage line and an error line
        assert "error:" in outcome.stderr, what
    if outcome.status == 1:
        lines = outcome.stderr.splitlines()
        errors = [line for line in lines if line.startswith("dlhwc: error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], (
            f"not one error line: {what}\n{outcome.stderr}"
        )
    if case.invalid:
        assert outcome.status != 0, f"exit 0 on invalid input: {what}"
    if outcome.status != 0:
        for name in case.outputs:
            path = workdir / name
            assert not path.exists() or name in case.files, f"{name} left behind: {what}"
    for name in case.keep:
        assert (workdir / name).read_bytes() == case.files[name], f"{name} changed: {what}"
    temporary = [p.name for p in workdir.iterdir() if p.name.startswith(".")]
    assert not temporary, f"temporary files {temporary}: {what}"


# -- mutations of bytes and text --------------------------------------------------------------


def truncate(rng: random.Random, data: bytes) -> tuple[bytes, int]:
    cut = rng.randrange(len(data))
    return data[:cut], cut


def flip_bytes(rng: random.Random, data: bytes, count: int = 3) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, count)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


NASTY_NUMBERS = [0, -1, 1, 2, 7, 255, 256, 65535, 2**31, 2**63 - 1, -(2**31), 10**12]
NASTY_VALUES = [*NASTY_NUMBERS, 0.5, -0.0, 1e308, "nan", "inf", "-inf", '""', "x", "[]", "{}"]


def mutate_text(rng: random.Random, text: str) -> tuple[str, bool | None]:
    """A text edit: (the new text, True if it is certainly invalid)."""
    lines = text.splitlines(keepends=True)
    kind = rng.choice(["truncate", "char", "delete-line", "duplicate-line", "number", "nest"])
    if kind == "truncate":
        cut = rng.randrange(len(text))
        return text[:cut], None
    if kind == "char":
        i = rng.randrange(len(text))
        return text[:i] + rng.choice('"{}[]()<>:,=%@#\\\x00é0xZ ') + text[i + 1 :], None
    if kind == "delete-line" and len(lines) > 1:
        del lines[rng.randrange(len(lines))]
        return "".join(lines), None
    if kind == "duplicate-line":
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
        return "".join(lines), None
    if kind == "number":
        import re

        numbers = list(re.finditer(r"-?\d+(\.\d+)?", text))
        if numbers:
            m = rng.choice(numbers)
            return text[: m.start()] + str(rng.choice(NASTY_VALUES)) + text[m.end() :], None
    depth = rng.choice([200, 2000, 20000])
    opener, closer = rng.choice([("[", "]"), ("{", "}"), ("(", ")"), ("<", ">")])
    i = rng.randrange(len(text))
    return text[:i] + opener * depth + closer * depth + text[i:], None


# -- the categories ---------------------------------------------------------------------------

RUN_MODEL = ["run", "@m.onnx", "--input", "@x.npz", "--output", "@out.npz"]


def onnx_case(rng: random.Random, s: Seeds) -> Case:
    """ONNX files: truncated, bit-flipped, or with a proto field made inconsistent."""
    import onnx

    kind = rng.choice(["truncate", "flip", "proto", "proto", "garbage", "rnn"])
    invalid: bool | None = None
    if kind == "truncate":
        data, _ = truncate(rng, s.model)
    elif kind == "flip":
        data = flip_bytes(rng, s.model)
    elif kind == "garbage":
        data = rng.randbytes(rng.randrange(1, 200))
    elif kind == "rnn":
        return _rnn_case(rng, s)
    else:
        model = onnx.load_from_string(s.model)
        data, invalid = _mutate_proto(rng, model)
    command = rng.choice([
        ["compile", "@m.onnx", "-o", "@out.mlir"],
        ["compile", "@m.onnx", "--target", "eie", "-o", "@out.dlhw"],
        RUN_MODEL,
        ["export", "@m.onnx", "-o", "@out.onnx"],
        ["eval", "@m.onnx", "--data", "@x.npz", "-p", "prune{sparsity=0.5}"],
    ])  # fmt: skip
    return Case("onnx", command, {"m.onnx": data, "x.npz": s.input}, invalid,
                outputs=["out.mlir", "out.dlhw", "out.npz", "out.onnx"])  # fmt: skip


def _rnn_case(rng: random.Random, s: Seeds) -> Case:
    """The LSTM with an attribute or a weight shape changed, for the interpreter and ESE."""
    import onnx

    model = onnx.load_from_string(_lstm_model())
    node = model.graph.node[0]
    name, value = rng.choice([
        ("hidden_size", rng.choice([0, -1, 3, 5, 10**6])),
        ("direction", rng.choice(["bidirectional", "reverse", "sideways", ""])),
        ("layout", rng.choice([1, 2, -1])),
        ("input_forget", rng.choice([1, 7])),
        ("clip", rng.choice([0.0, -1.0, 1e30])),
        ("activations", rng.choice([["Relu", "Tanh", "Tanh"], ["Nope"], ["Tanh"]])),
        ("activation_alpha", [0.5]),
    ])  # fmt: skip
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(onnx.helper.make_attribute(name, value))
    if rng.random() < 0.3:
        w = model.graph.initializer[rng.randrange(2)]
        w.dims[rng.randrange(3)] += rng.choice([-1, 1])
    command = rng.choice([
        ["compile", "@l.onnx", "-o", "@out.mlir"],
        ["compile", "@l.onnx", "--target", "ese", "-o", "@out.dlhw"],
        ["run", "@l.onnx", "--input", "@xs.npz", "--output", "@out.npz"],
        ["export", "@l.onnx", "-o", "@out.onnx"],
    ])  # fmt: skip
    files = {"l.onnx": model.SerializeToString(), "xs.npz": _lstm_input()}
    return Case("onnx", command, files, None, outputs=["out.mlir", "out.dlhw", "out.npz"])


def _mutate_proto(rng: random.Random, model) -> tuple[bytes, bool | None]:
    import onnx

    graph = model.graph
    kind = rng.choice(["dims", "raw", "attr", "input", "external", "op", "output"])
    invalid: bool | None = True
    if kind == "dims":
        t = rng.choice(graph.initializer)
        t.dims[rng.randrange(len(t.dims))] = rng.choice([0, -1, 3, 10**9, 2**40])
    elif kind == "raw":
        t = rng.choice(graph.initializer)
        t.raw_data = t.raw_data[: rng.randrange(len(t.raw_data))]
    elif kind == "attr":
        node = rng.choice(graph.node)
        name = rng.choice(["axis", "transB", "transA", "alpha"])
        value = rng.choice([7, -9, 2, 1, 0])
        for a in list(node.attribute):
            if a.name == name:
                node.attribute.remove(a)
        node.attribute.append(onnx.helper.make_attribute(name, value))
        invalid = None
    elif kind == "input":
        node = rng.choice(graph.node)
        node.input[rng.randrange(len(node.input))] = "undefined_tensor"
    elif kind == "external":
        t = rng.choice(graph.initializer)
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        entry = t.external_data.add()
        entry.key = "location"
        entry.value = rng.choice(["missing.bin", "../../etc/passwd", "/etc/passwd", "x.npz"])
    elif kind == "op":
        rng.choice(graph.node).op_type = rng.choice(["Gemmm", "LSTM", "Conv", ""])
    else:
        graph.output[0].name = rng.choice(["nowhere", ""])
    return model.SerializeToString(), invalid


PASSES = ["prune", "share-weights", "quantize", "huffman", "fold-constants", "retrain",
          "convert-onnx-to-eie", "no-such-pass", ""]  # fmt: skip
OPTIONS = ["sparsity", "quality", "balance-pes", "bits", "init", "seed", "zero-code",
           "weight-bits", "act-bits", "mode", "overflow", "pes", "run-bits", "recipe",
           "calibration", "data", "max-elements", "nonsense"]  # fmt: skip


def pipeline_case(rng: random.Random, s: Seeds) -> Case:
    """Pass pipelines: random passes and options with nasty values and broken syntax."""
    parts = []
    for _ in range(rng.randint(1, 3)):
        name = rng.choice(PASSES)
        opts = [f"{rng.choice(OPTIONS)}={rng.choice(NASTY_VALUES)}"
                for _ in range(rng.randint(0, 2))]  # fmt: skip
        sep = rng.choice([" ", ",", ";"])
        parts.append(name + (f"{{{sep.join(opts)}}}" if opts else ""))
    pipeline = ",".join(parts)
    if rng.random() < 0.3:
        i = rng.randrange(len(pipeline) + 1)
        pipeline = pipeline[:i] + rng.choice("{}=,'\" ") + pipeline[i:]
    command = rng.choice([
        ["opt", "@m.mlir", "-p", pipeline, "-o", "@out.mlir"],
        ["compile", "@m.onnx", "-p", pipeline, "-o", "@out.mlir"],
        ["compile", "@m.onnx", "--target", "eie", "-p", pipeline, "-o", "@out.dlhw"],
    ])  # fmt: skip
    files = {"m.mlir": s.ir.encode(), "m.onnx": s.model}
    return Case("pipeline", command, files, None, outputs=["out.mlir", "out.dlhw"])


PLUGIN_HEAD = (
    "from dataclasses import dataclass\nfrom xdsl.passes import ModulePass\n\n"
    "@dataclass(frozen=True)\nclass Fuzz(ModulePass):\n    name = 'fuzz'\n\n"
    "    def apply(self, ctx, op):\n"
)
PLUGIN_BODIES = [
    "        raise {exc}('from apply')\n",
    "        import sys\n        sys.exit({code})\n",
    "        for o in list(op.walk()):\n            if o.name == 'onnx.Gemm':\n"
    "                o.detach()\n                break\n",
    "        pass\n",
]


def plugin_case(rng: random.Random, s: Seeds) -> Case:
    """Pass plugins that raise, exit, break the IR, or do not parse (at import or run)."""
    exc = rng.choice(["RuntimeError", "ValueError", "KeyError", "RecursionError", "MemoryError",
                      "AssertionError", "Exception"])  # fmt: skip
    code = rng.choice(["0", "1", "3", "None", "'bye'"])
    kind = rng.choice(["apply", "apply", "import-raise", "import-exit", "syntax", "no-name"])
    invalid: bool | None = True
    if kind == "apply":
        body = rng.choice(PLUGIN_BODIES).format(exc=exc, code=code)
        source = PLUGIN_HEAD + body
        invalid = None if body.strip() == "pass" else True
    elif kind == "import-raise":
        source = f"raise {exc}('at import')\n"
    elif kind == "import-exit":
        source = f"import sys\nsys.exit({code})\n"
    elif kind == "syntax":
        source = PLUGIN_HEAD + "        return (\n"
    else:
        source = PLUGIN_HEAD.replace("    name = 'fuzz'\n", "") + "        pass\n"
    command = rng.choice([
        ["passes", "--load-pass-plugin", "@plugin.py"],
        ["compile", "@m.onnx", "--load-pass-plugin", "@plugin.py", "-p", "fuzz", "-o",
         "@out.mlir"],
        ["opt", "@m.mlir", "--load-pass-plugin", "@plugin.py", "-p", "fuzz", "-o", "@out.mlir"],
    ])  # fmt: skip
    if command[0] == "passes" and kind in ("apply",):
        invalid = None  # the pass is only listed
    files = {"plugin.py": source.encode(), "m.onnx": s.model, "m.mlir": s.ir.encode()}
    return Case("plugin", command, files, invalid, outputs=["out.mlir"])


def ir_case(rng: random.Random, s: Seeds) -> Case:
    """IR text at every level (onnx, comp, eie, ese), truncated (in hex payloads too) or
    edited."""
    text = rng.choice([s.ir, s.comp_ir, s.eie_ir, s.ese_ir])
    invalid: bool | None = None
    if rng.random() < 0.3 and 'dense<"0x' in text:
        start = text.index('dense<"0x') + 9
        cut = start + rng.randrange(0, 400)  # inside a hex payload: an open string
        text, invalid = text[:cut], True
    else:
        text, invalid = mutate_text(rng, text)
    command = rng.choice([
        ["opt", "@in.mlir", "-o", "@out.mlir"],
        ["opt", "@in.mlir", "-p", "quantize", "-o", "@out.mlir"],
        ["run", "@in.mlir", "--input", "@x.npz", "--output", "@out.npz"],
        ["export", "@in.mlir", "-o", "@out.onnx"],
        ["eval", "@m.onnx", "--data", "@x.npz", "--compressed", "@in.mlir"],
    ])  # fmt: skip
    files = {"in.mlir": text.encode(), "x.npz": s.input, "m.onnx": s.model}
    return Case("ir", command, files, invalid, outputs=["out.mlir", "out.npz", "out.onnx"])


def asm_case(rng: random.Random, s: Seeds) -> Case:
    """Assembly: the disassembly of a program, edited (operands, header, sections)."""
    lines = s.asm.splitlines(keepends=True)
    text_at = next(i for i, line in enumerate(lines) if line.strip() == ".text")
    kind = rng.choice(["operand", "operand", "header", "text"])
    invalid: bool | None = None
    if kind == "operand":
        import re

        i = rng.randrange(text_at + 1, len(lines))
        m = list(re.finditer(r"=(-?\d+)", lines[i]))
        if m:
            g = rng.choice(m)
            value = rng.choice([*NASTY_NUMBERS, 3, 4, 9])
            lines[i] = lines[i][: g.start(1)] + str(value) + lines[i][g.end(1) :]
        text = "".join(lines)
    elif kind == "header":
        header_line = lines[1]
        text_h, _ = mutate_text(rng, header_line)
        lines[1] = text_h if text_h.endswith("\n") else text_h + "\n"
        text = "".join(lines)
    else:
        text, invalid = mutate_text(rng, s.asm)
    return Case("asm", ["asm", "@p.s", "-o", "@out.dlhw"], {"p.s": text.encode()}, invalid,
                outputs=["out.dlhw"])  # fmt: skip


def container_case(rng: random.Random, s: Seeds) -> Case:
    """Containers: bit flips and truncations (the checksum), and headers rewritten with a
    valid checksum (what a crafted file can do)."""
    kind = rng.choice(["flip", "truncate", "header", "header", "header"])
    invalid: bool | None = True
    if kind == "flip":
        data = flip_bytes(rng, s.program)
    elif kind == "truncate":
        data, _ = truncate(rng, s.program)
    else:
        data, invalid = _mutate_header(rng, s.program)
    if rng.random() < 0.15:
        return _stats_case(rng, s)
    command = rng.choice([
        ["run", "@p.dlhw", "--input", "@x.npz", "--output", "@out.npz", "--stats", "@s.json"],
        ["report", "@p.dlhw"],
        ["report", "@p.dlhw", "--input", "@x.npz", "--html", "@out.html"],
        ["disasm", "@p.dlhw", "-o", "@out.s"],
    ])  # fmt: skip
    return Case("container", command, {"p.dlhw": data, "x.npz": s.input}, invalid,
                outputs=["out.npz", "s.json", "out.s", "out.html"])  # fmt: skip


_STATS: bytes | None = None


def _stats_case(rng: random.Random, s: Seeds) -> Case:
    """A stats file of `run`, edited, given back to `report --stats`."""
    global _STATS
    if _STATS is None:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            case = Case("stats", ["run", "@p.dlhw", "--input", "@x.npz", "--stats", "@s.json"],
                        {"p.dlhw": s.program, "x.npz": s.input})  # fmt: skip
            assert run_case(case, Path(d)).status == 0
            _STATS = (Path(d) / "s.json").read_bytes()
    text, _ = mutate_text(rng, _STATS.decode())
    if rng.random() < 0.5:
        stats = json.loads(_STATS)
        path = rng.choice(list(_json_paths(stats)))
        parent = stats
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = rng.choice([None, "x", -1, 1e308, [], {}, True])
        text = json.dumps(stats)
    files = {"p.dlhw": s.program, "s.json": text.encode()}
    argv = ["report", "@p.dlhw", "--stats", "@s.json", "--html", "@out.html"]
    return Case("container", argv, files, None, outputs=["out.html"])


def _mutate_header(rng: random.Random, program: bytes) -> tuple[bytes, bool | None]:
    (hlen,) = struct.unpack_from("<Q", program, 8)
    header = json.loads(program[16 : 16 + hlen])
    sections = program[16 + hlen : -32]
    paths = list(_json_paths(header))
    path = rng.choice(paths)
    parent = header
    for key in path[:-1]:
        parent = parent[key]
    value = rng.choice([*NASTY_NUMBERS, None, "x", [], {}, 1.5, float("inf"), True,
                        [[[[]]]], "../../etc/passwd"])  # fmt: skip
    if rng.random() < 0.2 and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * ((-(len(text) + 16)) % 8)
    body = program[:8] + struct.pack("<Q", len(text)) + text + sections
    return body + hashlib.sha256(body).digest(), None


def _json_paths(value, prefix=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*prefix, k)
            yield from _json_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:4]):
            yield (*prefix, i)
            yield from _json_paths(v, (*prefix, i))


def input_case(rng: random.Random, s: Seeds) -> Case:
    """Input data: wrong keys, shapes, dtypes, pickles, lying headers, broken zips."""
    kind = rng.choice(["shape", "dtype", "key", "object", "huge", "truncate", "flip", "npy"])
    invalid: bool | None = True
    arrays = {"x": np.ones((3, 8), np.float32)}
    if kind == "shape":
        shape = rng.choice([(3, 7), (8,), (0, 8), (3, 8, 1), ()])
        arrays["x"] = np.ones(shape, np.float32)
        # An empty batch is a valid tensor for the interpreter; programs refuse it.
        invalid = None if shape == (0, 8) else True
    elif kind == "dtype":
        arrays["x"] = np.ones((3, 8), rng.choice([np.float64, np.int32, np.bool_, np.complex64]))
    elif kind == "key":
        arrays = {"y": arrays["x"]}
    buf = io.BytesIO()
    if kind == "object":
        np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        name = "x.npy"
    elif kind == "huge":
        np.lib.format.write_array_header_1_0(
            buf, {"descr": "<f4", "fortran_order": False, "shape": (rng.choice([10**6, 10**12]), 8)}
        )
        buf.write(bytes(64))
        name = "x.npy"
    elif kind == "npy":
        np.save(buf, arrays["x"])
        name, invalid = "x.npy", None
    else:
        np.savez(buf, **arrays)
        name = "x.npz"
    data = buf.getvalue()
    if kind == "truncate":
        data, _ = truncate(rng, data)
    elif kind == "flip":
        data, invalid = flip_bytes(rng, data), None
    target = rng.choice([["@m.onnx"], ["@m.mlir"], ["@p.dlhw"]])
    command = ["run", *target, "--input", f"@{name}", "--output", "@out.npz"]
    if rng.random() < 0.3:
        labels = rng.choice([[], ["--labels", "x"], ["--labels", "nope"]])
        command = ["eval", "@m.onnx", "--data", f"@{name}", "-p", "prune{sparsity=0.5}", *labels]
    elif rng.random() < 0.2:
        command = ["report", "@p.dlhw", "--input", f"@{name}"]
    files = {name: data, "m.onnx": s.model, "m.mlir": s.ir.encode(), "p.dlhw": s.program}
    return Case("input", command, files, invalid, outputs=["out.npz"])


HW_FIELDS = ["num_pes", "clock_mhz", "fifo_depth", "pipeline_stages", "spmat_sram_bytes",
             "spmat_entry_bits", "spmat_read_bits", "ptr_sram_bytes", "ptr_bits", "index_bits",
             "run_bits", "weight_bits", "act_bits", "acc_bits", "regfile_entries",
             "act_sram_bytes", "dma_words_per_cycle", "host_words_per_cycle", "energy.mac",
             "energy.dram_word", "lut_segments", "ew_lanes", "no_such_field"]  # fmt: skip
# (acc_bits up to 62 needs spec/fixedpoint's wide formats; 63 is out of range.)
HW_VALUES = ["0", "-1", "-4", "1", "3", "63", "100000000", "2.5", "nan", "inf", "-inf",
             "true", '"four"', "[1, 2]", "{a = 1}", "1e400"]  # fmt: skip


def hw_case(rng: random.Random, s: Seeds) -> Case:
    """Hardware configs: each field set to a wrong type, a non-finite or out-of-range
    value, or the file broken; or fields set to values inside their ranges, at the edges
    (a machine the compiler and simulator must handle or refuse in one line)."""
    if rng.random() < 0.5:
        return _hw_in_range(rng, s)
    lines = []
    for _ in range(rng.randint(1, 3)):
        name = rng.choice(HW_FIELDS)
        value = rng.choice(HW_VALUES)
        if name.startswith("energy."):
            lines.append(f"[energy]\n{name.split('.')[1]} = {value}\n")
        else:
            lines.insert(0, f"{name} = {value}\n")
    text = "".join(lines)
    if rng.random() < 0.15:
        text, _ = mutate_text(rng, text)
    certain = any(v in text for v in ("nan", "inf", "true", '"four"', "no_such_field", "-1 ", "-4"))
    target = rng.choice(["eie", "ese"])
    model = ["@m.onnx"] if target == "eie" else ["@lstm.onnx"]
    command = ["compile", *model, "--target", target, "--hw", "@hw.toml", "-o", "@out.dlhw"]
    files = {"hw.toml": text.encode(), "m.onnx": s.model, "lstm.onnx": _lstm_model()}
    return Case("hw", command, files, True if certain else None, outputs=["out.dlhw"])


def _hw_in_range(rng: random.Random, s: Seeds) -> Case:
    from dlhwc.spec.eie.config import EIEConfig
    from dlhwc.spec.ese.config import ESEConfig

    target = rng.choice(["eie", "ese"])
    limits = (EIEConfig if target == "eie" else ESEConfig).LIMITS
    lines = []
    for name in rng.sample(sorted(limits), rng.randint(1, 3)):
        lo, hi = limits[name]
        lo = lo if not isinstance(lo, str) else 4
        if name == "acc_bits":
            hi = min(hi, _widest_fixed())
        if isinstance(hi, float) or isinstance(lo, float):
            value = rng.choice([lo, hi, 1.0, 1e-3, 37.5])
        else:
            value = rng.choice([lo, lo + 1, hi, min(hi, lo + rng.randrange(64))])
        lines.append(f"{name} = {value}\n")
    model = ["@m.onnx"] if target == "eie" else ["@lstm.onnx"]
    command = ["compile", *model, "--target", target, "--hw", "@hw.toml", "-o", "@out.dlhw"]
    if rng.random() < 0.5:
        command = ["compile", *model, "--target", target, "--hw", "@hw.toml", "-o", "@p.dlhw"]
        command += ["&&", "run", "@p.dlhw", "--input", "@x.npz" if target == "eie" else "@xs.npz"]
    files = {"hw.toml": "".join(lines).encode(), "m.onnx": s.model, "lstm.onnx": _lstm_model(),
             "x.npz": s.input, "xs.npz": _lstm_input()}  # fmt: skip
    return Case("hw", command, files, None, outputs=["out.dlhw"])


def _widest_fixed() -> int:
    """The widest fixed-point format spec/fixedpoint.py makes (acc_bits goes up to 62
    where it allows 62 bits)."""
    from dlhwc.spec.fixedpoint import FixedFormat

    for bits in (62, 32):
        try:
            FixedFormat(bits, 0)
            return bits
        except ValueError:
            continue
    return 32


def _lstm_input() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=np.random.default_rng(3).standard_normal((5, 1, 3)).astype(np.float32))
    return buf.getvalue()


_LSTM: bytes | None = None


def _lstm_model() -> bytes:
    global _LSTM
    if _LSTM is None:
        from onnx import TensorProto, helper, numpy_helper

        rng = np.random.default_rng(2)
        hidden, size = 4, 3
        w = numpy_helper.from_array(rng.standard_normal((1, 16, size)).astype(np.float32), "W")
        r = numpy_helper.from_array(rng.standard_normal((1, 16, hidden)).astype(np.float32), "R")
        node = helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=hidden, name="lstm")
        graph = helper.make_graph(
            [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, size])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 1, 1, hidden])], [w, r],
        )  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        _LSTM = model.SerializeToString()
    return _LSTM


def fs_case(rng: random.Random, s: Seeds) -> Case:
    """Output paths that must not be written: a directory, a missing directory, an input
    (also through a link), two outputs naming one file, a full device; and inputs that
    must not be read: a device that never ends, a directory."""
    commands = [
        (["compile", "@m.onnx", "-o", "{out}"], "m.onnx"),
        (["compile", "@m.onnx", "--target", "eie", "-o", "{out}"], "m.onnx"),
        (["compile", "@m.onnx", "-o", "@a.mlir", "--report-json", "{out}"], "m.onnx"),
        (["opt", "@m.mlir", "-o", "{out}"], "m.mlir"),
        (["run", "@m.onnx", "--input", "@x.npz", "--output", "{out}"], "x.npz"),
        (["run", "@p.dlhw", "--input", "@x.npz", "--stats", "{out}"], "p.dlhw"),
        (["asm", "@p.s", "-o", "{out}"], "p.s"),
        (["disasm", "@p.dlhw", "-o", "{out}"], "p.dlhw"),
        (["report", "@p.dlhw", "--html", "{out}"], "p.dlhw"),
        (["export", "@m.mlir", "-o", "{out}"], "m.mlir"),
        (["eval", "@m.onnx", "--data", "@x.npz", "-p", "prune{sparsity=0.5}", "--json", "{out}"],
         "x.npz"),
    ]  # fmt: skip
    argv, an_input = rng.choice(commands)
    kind = rng.choice(["dir", "missing", "input", "link", "twice", "full", "read-device",
                       "read-dir"])  # fmt: skip
    if kind.startswith("read-"):  # an input that is no regular file: it must not be read
        argv = [argv[0], "/dev/zero" if kind == "read-device" else "@sub", *argv[2:]]
    symlinks = {}
    if kind in ("dir", "read-device", "read-dir"):
        out = "@sub" if kind == "dir" else "@fresh.out"
    elif kind == "missing":
        out = "@no/such/dir/out"
    elif kind == "input":
        out = f"@{an_input}"
    elif kind == "link":
        out = "@link"
        symlinks["link"] = an_input
    elif kind == "twice":
        out = "@a.mlir" if "@a.mlir" in argv else f"@{an_input}"
    else:
        out = "/dev/full" if Path("/dev/full").exists() else "@sub"
    files = {"m.onnx": s.model, "m.mlir": s.ir.encode(), "x.npz": s.input,
             "p.dlhw": s.program, "p.s": s.asm.encode()}  # fmt: skip
    command = [a.replace("{out}", out) for a in argv]
    # With /dev/full, an output written before the failing one is complete and stays.
    outputs = ["no", "a.mlir"] if kind == "twice" else ["no", "fresh.out"]
    return Case("fs", command, files, True, outputs=outputs, keep=list(files),
                symlinks=symlinks, directories=["sub"])  # fmt: skip


CATEGORIES = {
    "onnx": onnx_case,
    "pipeline": pipeline_case,
    "plugin": plugin_case,
    "ir": ir_case,
    "asm": asm_case,
    "container": container_case,
    "input": input_case,
    "hw": hw_case,
    "fs": fs_case,
}
"""Every category of malformed input, by name."""


def corpus(seed: int, per_category: int, s: Seeds):
    """A reproducible corpus: ``per_category`` cases of every category."""
    rng = random.Random(seed)
    for make in CATEGORIES.values():
        for _ in range(per_category):
            yield make(random.Random(rng.getrandbits(64)), s)
