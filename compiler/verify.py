"""`dlhwc verify`: the same inputs through every level of the toolchain, compared tensor by
tensor, so that a divergence between levels cannot go unnoticed.

Stages, in order:

    onnxruntime      the ONNX model, every layer-boundary tensor fetched as an output: the
                     reference every other stage is measured against
    import           the imported IR in the reference interpreter
    <pass>           the IR after each pass of the target's pipeline (fold-constants, the
                     compression passes, the lowering; after the lowering the interpreter
                     runs the target's golden model)
    simulator        the compiled container in the target's simulator

Layer boundaries are the outputs of the model's layers (Gemm, MatMul, Conv, LSTM, GRU, RNN,
with the bias Add and activation that follow a Gemm/MatMul/Conv) and the model's outputs,
named by
the layer's node name (outputs by their own name). A stage holds a boundary under the
ONNX tensor's name: from `quantize` on, its fixed-point value (`<name>_q`); in the
simulator, what the accelerator wrote for the layer, or the host memory symbol.

Each (stage, boundary) gets the max abs error and SQNR against onnxruntime, and top-1
agreement for the model's outputs (compiler/evaluate.py's metrics). A stage *jumps* at a
boundary when

- simulator, on a value the accelerator produced: it differs at all from the golden
  model on the same inputs (the layer op replayed on the inputs the simulator fed it,
  where the simulator keeps them; else the golden stage's value): the two must agree
  bit for bit. Its other differences from the golden stage (host segments, which the
  program runs in onnxruntime) are judged as a float stage's;
- any other stage that is not lossy: its SQNR falls more than `tolerance_db` below
  min(the stage before's SQNR, FLOAT_CAP_DB) -- float rounding differences between
  onnxruntime and numpy sit far above FLOAT_CAP_DB;
- a lossy pass (compression: prune, share-weights, quantize, retrain; a pass class with
  `lossy = True`): only when `lossy_tolerance_db` is given, by the same rule; otherwise
  its loss is reported, not judged -- it is what compression costs;
- any stage: a NaN or infinity the reference does not have.

`verify` names the first stage (in pipeline order) and, within it, the first boundary
(in program order) that jumps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from dlhwc.compiler.evaluate import _metrics
from dlhwc.dialects import onnx as onnx_d
from dlhwc.spec.errors import DlhwcError

FLOAT_CAP_DB = 80.0
"""SQNR above which a float stage counts as equal to the reference."""

_LAYER_OPS = (onnx_d.GemmOp, onnx_d.MatMulOp, onnx_d.LSTMOp, onnx_d.GRUOp, onnx_d.RNNOp)


@dataclass(frozen=True)
class Boundary:
    """A tensor compared at every stage."""

    label: str  # the layer's node name, or the output's name
    hint: str  # the value's name hint in the IR (the sanitized ONNX name)
    onnx_name: str  # the tensor's name in the ONNX model
    output: bool  # a model output
    layer: str | None = None  # the node name of the layer that produces it
    conv: bool = False  # a convolution's output: [N, C, H, W] (accelerators hold NHWC)


@dataclass
class Stage:
    name: str
    kind: str  # reference, float, lossy, simulator
    values: dict[str, np.ndarray] = field(default_factory=dict)  # by boundary label
    # For the labels the accelerator produced: 0 when its layer was replayed, -1 when
    # its value must equal the golden stage's.
    differ: dict[str, int] = field(default_factory=dict)
    # Per accelerator layer (simulator): values unlike the golden layer on the same inputs.
    replay: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, dict] = field(default_factory=dict)


@dataclass
class Jump:
    stage: str
    label: str
    reason: str


@dataclass
class Report:
    boundaries: list[Boundary]
    stages: list[Stage]
    jump: Jump | None
    tolerance_db: float
    lossy_tolerance_db: float | None

    def to_json(self) -> dict:
        return {
            "tolerance_db": self.tolerance_db,
            "lossy_tolerance_db": self.lossy_tolerance_db,
            "boundaries": [
                {"label": b.label, "tensor": b.onnx_name, "output": b.output}
                for b in self.boundaries
            ],
            "stages": [{"name": s.name, "kind": s.kind, "metrics": s.metrics} for s in self.stages],
            "jump": None if self.jump is None else vars(self.jump),
        }


# -- boundaries ------------------------------------------------------------------------------


def find_boundaries(module: ModuleOp, model: onnx.ModelProto) -> list[Boundary]:
    """The layer outputs and model outputs of the imported ``module``, in program order."""
    from dlhwc.compiler.frontend.onnx_importer import _name_hint
    from dlhwc.compiler.functions import main_function, output_names
    from dlhwc.compiler.passes.quantize import layer_output
    from dlhwc.compiler.passes.weights import is_conv

    by_hint: dict[str, str] = {}
    for node in model.graph.node:
        for name in node.output:
            if name:
                by_hint.setdefault(_name_hint(name) or name, name)
    fn = main_function(module)
    found: list[Boundary] = []
    seen: set[str] = set()

    def add(label: str, value: SSAValue, layer: str, conv: bool = False) -> None:
        hint = value.name_hint
        if hint and hint in by_hint and hint not in seen:
            seen.add(hint)
            found.append(Boundary(label, hint, by_hint[hint], False, layer, conv))

    for op in fn.body.block.ops:
        conv = is_conv(op)
        if not (conv or isinstance(op, _LAYER_OPS)) or not op.results:
            continue
        label = op.node_name or op.name
        if conv or isinstance(op, onnx_d.GemmOp | onnx_d.MatMulOp):
            add(label, layer_output(op.results[0]), label, conv)
        else:
            for role, r in zip(("Y", "Y_h", "Y_c"), op.results, strict=False):
                if r.uses:
                    add(f"{label}:{role}", r, label)
    returned = next(o for o in fn.body.block.ops if isinstance(o, func.ReturnOp))
    for name, value in zip(output_names(fn), returned.operands, strict=True):
        hint = value.name_hint
        if hint in seen:  # a layer's output that is also the model's output
            i = next(i for i, b in enumerate(found) if b.hint == hint)
            b = found[i]
            found[i] = Boundary(name, hint, b.onnx_name, True, b.layer, b.conv)
        else:
            seen.add(hint or name)
            found.append(Boundary(name, hint or name, name, True))
    return found


# -- the stages' values ------------------------------------------------------------------------


def run_onnxruntime(
    model: onnx.ModelProto, chunks: list[dict[str, np.ndarray]], boundaries: list[Boundary]
) -> dict[str, np.ndarray]:
    """Every boundary tensor as onnxruntime computes it (fetched as extra outputs)."""
    import onnxruntime as ort

    model = onnx.ModelProto.FromString(model.SerializeToString())
    present = {o.name for o in model.graph.output}
    for b in boundaries:
        if b.onnx_name not in present:
            model.graph.output.append(onnx.ValueInfoProto(name=b.onnx_name))
    try:
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
    except Exception as e:  # noqa: BLE001 - onnxruntime's own refusal of the model
        raise DlhwcError(f"onnxruntime cannot load the model: {' '.join(str(e).split())}") from None
    names = [b.onnx_name for b in boundaries]
    parts: dict[str, list[np.ndarray]] = {}
    for chunk in chunks:
        feeds = {i.name: chunk[i.name] for i in session.get_inputs() if i.name in chunk}
        for b, value in zip(boundaries, session.run(names, feeds), strict=True):
            parts.setdefault(b.label, []).append(np.asarray(value))
    return _joined(parts)


def run_ir(
    module: ModuleOp, chunks: list[dict[str, np.ndarray]], boundaries: list[Boundary]
) -> dict[str, np.ndarray]:
    """Every boundary tensor the IR computes in the reference interpreter: by name hint,
    the quantized value (`<hint>_q`) where there is one; outputs by output name."""
    from dlhwc.compiler.functions import main_function, output_names
    from dlhwc.compiler.interpreters.interpreter import Interpreter, check_inputs

    fn = main_function(module)
    by_hint = {b.hint: b.label for b in boundaries if not b.output}

    def base_hint(value: SSAValue) -> str:
        hint = (value.name_hint or "").removesuffix("_nhwc")
        return hint[:-2] if hint.endswith("_q") else hint

    interpreter = Interpreter(fn, watch=lambda value: base_hint(value) in by_hint)
    outputs = {b.label for b in boundaries if b.output}
    parts: dict[str, list[np.ndarray]] = {}
    found: dict[str, np.ndarray] = {}

    def observe(value: SSAValue, array) -> None:
        hint = value.name_hint or ""
        channels_last = hint.endswith("_nhwc")  # a lowered convolution's own result
        hint = hint.removesuffix("_nhwc")
        base = hint[:-2] if hint.endswith("_q") else hint
        if base in by_hint and (hint.endswith("_q") or by_hint[base] not in found):
            array = np.asarray(array)
            found[by_hint[base]] = np.moveaxis(array, -1, 1) if channels_last else array

    for chunk in chunks:
        found.clear()
        results = interpreter.run(check_inputs(fn, chunk), observe)
        for name, value in zip(output_names(fn), results, strict=True):
            if name in outputs:
                found[name] = np.asarray(value)
        for label, value in found.items():
            parts.setdefault(label, []).append(value)
    return _joined(parts)


def run_simulator(
    container,
    chunks: list[dict[str, np.ndarray]],
    boundaries: list[Boundary],
    golden: ModuleOp | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, int], dict[str, int]]:
    """Every boundary the program's run shows: what the accelerator wrote for a layer
    (by layer name), else the host memory symbol of the boundary's tensor.

    Returns the values; for each boundary the accelerator produced, 0 when its layer
    was replayed (below), -1 when its value is to be compared with the golden stage's;
    and for each replayed layer (by name, in program order) how many of its output
    values differ from the golden model's on the same inputs. Where the simulator keeps
    a layer's inputs (EIE), the golden model's layer op (from ``golden``, the IR after the
    lowering) is replayed on exactly those inputs: host segments run in onnxruntime in
    the program but in the reference interpreter at the IR level, and their float
    rounding may differ.
    """
    from dlhwc.spec.container import Container
    from dlhwc.spec.targets import simulator_module

    container = Container.from_bytes(container.to_bytes(), "<program>")
    sim = simulator_module(container.target).Simulator(container)
    sim.record_layers = True
    by_hint = {b.hint: b.label for b in boundaries}
    labels = {b.label for b in boundaries}
    layer_ops = _layer_ops(golden) if golden is not None else {}
    # A layer's output is a boundary's value when the lowered op's result is that
    # boundary's tensor (its bias and ReLU fused as the boundary's are).
    by_output = {}
    for name, op in layer_ops.items():
        hint = (op.results[0].name_hint or "").removesuffix("_nhwc")
        base = hint[:-2] if hint.endswith("_q") else hint
        if base in by_hint:
            by_output[name] = by_hint[base]
    convs = {b.label for b in boundaries if b.conv}
    formats = {s.name: s.format for s in sim.symbols}
    parts: dict[str, list[np.ndarray]] = {}
    differ: dict[str, int] = {}
    mismatched: dict[str, int] = {}  # layer name -> values unlike the replayed golden layer
    constants: dict[str, list] = {}  # layer name -> its weight and bias values
    for chunk in chunks:
        names = [s.name for s in sim.symbols if s.kind == "input"]
        sim.run({k: v for k, v in chunk.items() if k in names})
        found: dict[str, np.ndarray] = {}
        for name, value in sim.last_host_memory.items():
            base = name[:-2] if name.endswith("_q") else name
            label = by_hint.get(base) or (name if name in labels else None)
            if label is not None and (name.endswith("_q") or label not in found):
                found[label] = np.asarray(value)
                if formats.get(name) is not None:
                    differ.setdefault(label, -1)  # compared with the golden stage
        replayed = _replay(layer_ops, sim, constants)
        for name, value in getattr(sim, "last_layer_outputs", {}).items():
            if name in replayed:
                count = int(np.count_nonzero(value != replayed[name].reshape(value.shape)))
                mismatched[name] = mismatched.get(name, 0) + count
            label = by_output.get(name)
            if label is None:
                continue
            if label in convs:
                value = np.moveaxis(value, -1, 1)
            found.setdefault(label, value)
            if name in replayed:
                differ[label] = 0  # judged by the replay above
            else:
                differ.setdefault(label, -1)
        for label, value in found.items():
            parts.setdefault(label, []).append(value)
    return _joined(parts), differ, mismatched


def _layer_ops(module: ModuleOp) -> dict[str, Operation]:
    """The accelerator's layer ops of the golden module (those with a `layer_name`)."""
    ops: dict[str, Operation] = {}
    for op in module.walk():
        name = getattr(op, "layer_name", None)
        if name and op.name.split(".")[0] not in ("onnx", "comp", "func", "builtin"):
            ops[name] = op
    return ops


def _replay(layer_ops: dict, sim, constants: dict) -> dict[str, np.ndarray]:
    """Each recorded layer's golden output on the inputs the simulator fed it. A layer's
    other operands (its weight and bias) are constants of the golden module: the layer
    op alone is evaluated, not the model; ``constants`` keeps their values across chunks."""
    from dlhwc.compiler.interpreters.interpreter import evaluate_op
    from dlhwc.compiler.interpreters.segments import DATA_OPS

    replayed = {}
    for name, x in getattr(sim, "last_layer_inputs", {}).items():
        op = layer_ops.get(name)
        if op is None or not all(isinstance(v.owner, DATA_OPS) for v in op.operands[1:]):
            continue
        if name not in constants:
            constants[name] = [evaluate_op(v.owner, [])[0] for v in op.operands[1:]]
        args = [x, *constants[name]]
        replayed[name] = np.asarray(evaluate_op(op, args)[0])
    return replayed


def _joined(parts: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: v[0] if len(v) == 1 else np.concatenate(v, axis=0) for k, v in parts.items()}


# -- comparing -------------------------------------------------------------------------------


def measure(stages: list[Stage], boundaries: list[Boundary]) -> None:
    """Fill each stage's metrics against the reference (the first stage)."""
    reference = stages[0].values
    for stage in stages:
        for b in boundaries:
            ref, got = reference.get(b.label), stage.values.get(b.label)
            if ref is None or got is None:
                continue
            got = np.asarray(got)
            if got.size != ref.size:
                stage.metrics[b.label] = {
                    "error": f"shape {list(got.shape)}, not {list(ref.shape)}"
                }
                continue
            m = _metrics(np.asarray(ref), got.reshape(ref.shape), None)
            entry = {"max_abs_error": m["max_abs_error"], "sqnr_db": m["sqnr_db"]}
            entry["top1_agreement"] = m["top1_agreement"] if b.output else None
            entry["nonfinite"] = (
                int(np.count_nonzero(~np.isfinite(got))) if got.dtype.kind == "f" else 0
            )
            stage.metrics[b.label] = entry


def find_jump(
    stages: list[Stage],
    boundaries: list[Boundary],
    tolerance_db: float,
    lossy_tolerance_db: float | None,
) -> Jump | None:
    """The first (stage, boundary) that jumps (see the module docstring), or None."""
    reference = stages[0]
    last_sqnr: dict[str, float] = {}  # per boundary, the last stage's SQNR that has one
    last_stage: dict[str, str] = {}
    for before, stage in zip(stages, stages[1:], strict=False):
        for layer, differing in stage.replay.items():
            if differing:
                return Jump(
                    stage.name, layer,
                    f"{differing} values differ from the golden model ({before.name}) on the same "
                    "inputs; they must agree bit for bit",
                )  # fmt: skip
        for b in boundaries:
            m = stage.metrics.get(b.label)
            if m is None:
                continue
            if "error" in m:
                return Jump(stage.name, b.label, m["error"])
            ref_nonfinite = reference.metrics.get(b.label, {}).get("nonfinite", 0)
            if m["nonfinite"] > ref_nonfinite:
                return Jump(stage.name, b.label, f"{m['nonfinite']} NaN or infinite values")
            prev = last_sqnr.get(b.label, math.inf)
            prev_stage = last_stage.get(b.label, reference.name)
            last_sqnr[b.label], last_stage[b.label] = m["sqnr_db"], stage.name
            prior = before.values.get(b.label)
            count = stage.differ.get(b.label) if stage.kind == "simulator" else None
            if count == -1 and prior is not None:
                got = stage.values[b.label]
                same = got.size == prior.size and np.array_equal(got.reshape(prior.shape), prior)
                count = 0 if same else int(np.count_nonzero(got.reshape(-1) != prior.reshape(-1)))
            if count:
                return Jump(
                    stage.name, b.label,
                    f"{count} values differ from the golden model ({before.name}) on the same "
                    "inputs; they must agree bit for bit",
                )  # fmt: skip
            if count == 0 and stage.differ.get(b.label) == -1:
                continue
            tol = lossy_tolerance_db if stage.kind == "lossy" else tolerance_db
            if tol is None:
                continue
            if m["sqnr_db"] < min(prev, FLOAT_CAP_DB) - tol:
                return Jump(
                    stage.name, b.label,
                    f"SQNR {m['sqnr_db']:.2f} dB against onnxruntime, {_db(prev)} at "
                    f"{prev_stage} (tolerance {tol:g} dB)",
                )  # fmt: skip
    return None


def _db(x: float) -> str:
    return "inf dB" if math.isinf(x) and x > 0 else f"{x:.2f} dB"


# -- the whole run -----------------------------------------------------------------------------


def verify(
    model_path: str,
    target_name: str,
    inputs: Mapping[str, np.ndarray],
    pipeline: str | None,
    available: dict[str, Callable[[], type[ModulePass]]],
    hw: str | None = None,
    calibration: str | None = None,
    tolerance_db: float = 1.0,
    lossy_tolerance_db: float | None = None,
    on_compressed: Callable[[ModuleOp], None] | None = None,
) -> Report:
    """Compile ``model_path`` for ``target_name``, run ``inputs`` through every stage and
    compare (see the module docstring)."""
    from dlhwc.compiler.frontend.onnx_importer import load_model
    from dlhwc.compiler.functions import main_function
    from dlhwc.compiler.interpreters.interpreter import static_batches
    from dlhwc.compiler.passes.quantize import calibrating
    from dlhwc.compiler.pipeline import compile_for_target

    model = load_model(model_path)
    boundaries: list[Boundary] = []
    chunks: list[dict[str, np.ndarray]] = []
    stages: list[Stage] = []
    counts: dict[str, int] = {}

    def after(name: str, module: ModuleOp) -> None:
        nonlocal boundaries, chunks
        if name == "import":
            boundaries = find_boundaries(module, model)
            chunks = static_batches(main_function(module), inputs)
            stages.append(
                Stage("onnxruntime", "reference", run_onnxruntime(model, chunks, boundaries))
            )
        counts[name] = counts.get(name, 0) + 1
        label = name if counts[name] == 1 else f"{name}#{counts[name]}"
        cls = available[name]() if name in available else None
        kind = "lossy" if getattr(cls, "lossy", False) else "float"
        stages.append(Stage(label, kind, run_ir(module, chunks, boundaries)))

    lowered: list[ModuleOp] = []

    def after_pass(name: str, module: ModuleOp) -> None:
        after(name, module)
        if name.startswith("convert-onnx-to-"):
            lowered[:] = [module.clone()]

    container = compile_for_target(
        model_path, target_name, pipeline, available, "dlhw", hw, after_pass,
        calibrating(calibration),
        after_compression=on_compressed,
    )  # fmt: skip
    golden = lowered[0] if lowered else None
    values, differ, replay = run_simulator(container, chunks, boundaries, golden)
    stages.append(Stage("simulator", "simulator", values, differ, replay=replay))
    measure(stages, boundaries)
    jump = find_jump(stages, boundaries, tolerance_db, lossy_tolerance_db)
    return Report(boundaries, stages, jump, tolerance_db, lossy_tolerance_db)


# -- presentation --------------------------------------------------------------------------------


def format_report(report: Report) -> str:
    """One table, stage x boundary, then the verdict."""
    from dlhwc.compiler.evaluate import _cell

    head = ["stage", "layer", "max abs error", "SQNR (dB)", "top-1"]
    rows = [head]
    for stage in report.stages[1:]:
        for b in report.boundaries:
            m = stage.metrics.get(b.label)
            label = b.label + (" (output)" if b.output else "")
            if m is None:
                rows.append([stage.name, label, "-", "-", "-"])
            elif "error" in m:
                rows.append([stage.name, label, m["error"], "", ""])
            else:
                rows.append([
                    stage.name, label, _cell("max_abs_error", m["max_abs_error"]),
                    _cell("sqnr_db", m["sqnr_db"]), _cell("top1_agreement", m["top1_agreement"]),
                ])  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["errors against onnxruntime, per stage and layer boundary:"]
    for r in rows:
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(r[2:], widths[2:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    if report.jump is None:
        judged = f"no stage jumps (tolerance {report.tolerance_db:g} dB"
        judged += ", simulator bit-exact with the golden model"
        if report.lossy_tolerance_db is None:
            judged += "; compression passes reported, not judged"
        lines.append(f"verify: {judged})")
    else:
        j = report.jump
        lines.append(f"verify: the error jumps at stage '{j.stage}', layer '{j.label}': {j.reason}")
    return "\n".join(lines) + "\n"
