"""Regenerate the exporter-produced ONNX test models in ``tests/models/exported/``.

The test-suite must check that ONNX files written by *real* exporters (PyTorch's
TorchScript exporter, PyTorch's dynamo exporter and skl2onnx) import and run
correctly, but torch cannot be a test dependency. So the small models are
exported once by this script and the results are committed. The tests only need
``onnx``/``onnxruntime``/``numpy``.

For every model the script writes

* ``exported/<name>.onnx`` - the exported model (weights inline, no external data);
* ``exported/<name>.npz``  - one float32 sample input with batch 3, stored under the
  graph input name(s) of the ONNX model (so ``dict(np.load(path))`` is an
  onnxruntime feed);
* ``exported/README.md``   - per file: exporter and version, opset, op types in
  graph order, shape-arithmetic subgraphs and weights that are not fed directly
  from initializers (generated from the graphs themselves), plus export failures.

and checks each model in onnxruntime against the source framework.

Recreate the scratch virtualenv (outside the repository; never install torch into
the project's own ``.venv``) and run the script from the repository root::

    python3.11 -m venv /tmp/exportvenv
    /tmp/exportvenv/bin/pip install torch==2.13.0
    /tmp/exportvenv/bin/pip install torch==2.13.0 onnx==1.23.2 onnxruntime==1.32.0 \\
        onnxscript==0.7.2 onnx-ir==1.1.0 skl2onnx==1.20.0 scikit-learn==1.9.1 numpy==2.4.6
    /tmp/exportvenv/bin/python tests/models/export_models.py

(``torch==2.13.0`` resolves to the CPU build ``2.13.0+cpu``; it is repeated in the
second command so that no other package can pull in a different torch.)

Output is deterministic: weights come from ``torch.manual_seed`` / fixed
``random_state``s, sample inputs from a seeded numpy generator, the ``.npz`` files
are written with fixed zip timestamps, and the only non-reproducible part of the
dynamo exporter's output - the per-node ``pkg.torch.onnx.stack_trace`` metadata,
which holds absolute file paths of this script and of the virtualenv - is dropped.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper
from torch import nn

HERE = Path(__file__).resolve().parent
OUT = HERE / "exported"
BATCH = 3
MAX_BYTES = 300 * 1024

# Metadata keys dropped from the dynamo exporter's nodes (absolute paths -> not reproducible).
DROPPED_METADATA_KEYS = ("pkg.torch.onnx.stack_trace",)


# --------------------------------------------------------------------------- models


class MLP(nn.Sequential):
    """64-32-16-10 with ReLU, final log_softmax."""

    def __init__(self) -> None:
        super().__init__(
            nn.Linear(64, 32),
            nn.ReLU(),
            nn.Linear(32, 16),
            nn.ReLU(),
            nn.Linear(16, 10),
            nn.LogSoftmax(dim=1),
        )


class RNNHead(nn.Module):
    """LSTM/GRU (input 8, hidden 16, batch_first) + Linear(16*dirs, 4) on the last step.

    The RNN is called WITHOUT initial states, so the exporters have to build the
    zero initial states from the (dynamic) batch dimension of the input.
    """

    def __init__(self, cell: str, num_layers: int, bidirectional: bool = False) -> None:
        super().__init__()
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn_cls(
            input_size=8,
            hidden_size=16,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
        )
        self.fc = nn.Linear(16 * (2 if bidirectional else 1), 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc(out[:, -1, :])


# --------------------------------------------------------------------------- records


@dataclass
class Record:
    name: str
    description: str
    exporter: str
    ok: bool = True
    error: str = ""
    check: str = ""
    notes: list[str] = field(default_factory=list)


RECORDS: list[Record] = []


def versions() -> dict[str, str]:
    import onnxscript
    import skl2onnx
    import sklearn

    try:
        import onnx_ir

        onnx_ir_version = onnx_ir.__version__
    except Exception:  # pragma: no cover - informational only
        onnx_ir_version = "n/a"
    return {
        "torch": torch.__version__,
        "onnxscript": onnxscript.__version__,
        "onnx_ir": onnx_ir_version,
        "skl2onnx": skl2onnx.__version__,
        "scikit-learn": sklearn.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
    }


# --------------------------------------------------------------------------- writing


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez, but with fixed zip timestamps so the bytes are reproducible."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def finalize_onnx(path: Path) -> onnx.ModelProto:
    """Reload an exported file, strip non-reproducible metadata, check, and rewrite it."""
    model = onnx.load(str(path))  # loads external data too, if an exporter wrote any
    for node in model.graph.node:
        keep = [p for p in node.metadata_props if p.key not in DROPPED_METADATA_KEYS]
        del node.metadata_props[:]
        node.metadata_props.extend(keep)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    stray = [p for p in path.parent.iterdir() if p.name.startswith(path.name) and p != path]
    for p in stray:  # external-data side files (should not exist: external_data=False)
        p.unlink()
    size = path.stat().st_size
    assert size < MAX_BYTES, f"{path.name} is {size} bytes (limit {MAX_BYTES})"
    return model


def run_ort(path: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def graph_input_names(model: onnx.ModelProto) -> list[str]:
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


# --------------------------------------------------------------------------- exporters


def export_torch(
    name: str,
    description: str,
    model: nn.Module,
    x_np: np.ndarray,
    *,
    dynamo: bool,
    opset: int | None = None,
) -> None:
    path = OUT / f"{name}.onnx"
    if dynamo:
        exporter = "torch.onnx.export(dynamo=True) [torch.export + onnxscript torchlib]"
    else:
        exporter = "torch.onnx.export(dynamo=False) [TorchScript exporter]"
    rec = Record(name, description, exporter)
    RECORDS.append(rec)
    model.eval()
    x = torch.from_numpy(x_np)
    for p in OUT.glob(f"{name}.*"):
        p.unlink()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if dynamo:
                batch = torch.export.Dim("batch")
                kwargs = {} if opset is None else {"opset_version": opset}
                torch.onnx.export(
                    model,
                    (x,),
                    str(path),
                    dynamo=True,
                    input_names=["x"],
                    output_names=["y"],
                    dynamic_shapes=({0: batch},),
                    external_data=False,
                    **kwargs,
                )
            else:
                torch.onnx.export(
                    model,
                    (x,),
                    str(path),
                    dynamo=False,
                    input_names=["x"],
                    output_names=["y"],
                    dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                    opset_version=opset,
                    do_constant_folding=True,
                )
    except Exception as exc:
        rec.ok = False
        text = re.sub(r"\x1b\[[0-9;]*m", "", f"{type(exc).__name__}: {exc}").strip()
        rec.error = text
        cause = exc.__cause__ or exc.__context__
        if cause is not None:
            rec.notes.append(f"caused by {type(cause).__name__}: {cause}".strip())
        for p in OUT.glob(f"{name}.*"):
            p.unlink()
        print(f"[{name}] EXPORT FAILED: {rec.error.splitlines()[0]}")
        return

    onnx_model = finalize_onnx(path)
    (inp,) = graph_input_names(onnx_model)
    write_npz(OUT / f"{name}.npz", {inp: x_np})
    with torch.no_grad():
        ref = model(x).numpy()
    (got,) = run_ort(path, {inp: x_np})
    # Also run with a different batch size to prove the batch dim really is dynamic.
    x5 = np.concatenate([x_np, x_np[:2]], axis=0)
    (got5,) = run_ort(path, {inp: x5})
    with torch.no_grad():
        ref5 = model(torch.from_numpy(x5)).numpy()
    err = float(np.max(np.abs(got - ref)))
    err5 = float(np.max(np.abs(got5 - ref5)))
    if not (
        np.allclose(got, ref, atol=1e-5, rtol=1e-4)
        and np.allclose(got5, ref5, atol=1e-5, rtol=1e-4)
    ):
        raise AssertionError(f"{name}: onnxruntime disagrees with torch ({err}, {err5})")
    rec.check = (
        f"onnxruntime {ort.__version__} on the npz sample (batch {BATCH}) matches torch: "
        f"max abs err {err:.1e}; batch 5 also runs (max abs err {err5:.1e})"
    )
    print(f"[{name}] ok, {path.stat().st_size} bytes, max err {err:.1e}")


def export_sklearn() -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    digits = load_digits()
    X = digits.data.astype(np.float32)
    y = digits.target
    sample = X[:BATCH].copy()

    def make_mlp() -> MLPClassifier:
        return MLPClassifier(hidden_layer_sizes=(32,), max_iter=30, random_state=0)

    clf = make_mlp()
    pipe = Pipeline([("scaler", StandardScaler()), ("mlp", make_mlp())])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        pipe.fit(X, y)

    cases = [
        (
            "skl_mlp",
            "sklearn MLPClassifier(hidden_layer_sizes=(32,), max_iter=30, random_state=0) "
            "trained on load_digits (raw pixel values 0..16); options zipmap=False",
            clf,
            clf,
        ),
        (
            "skl_scaler_mlp",
            "sklearn Pipeline(StandardScaler, MLPClassifier(hidden_layer_sizes=(32,), max_iter=30, "
            "random_state=0)) trained on load_digits; options zipmap=False on the classifier",
            pipe,
            pipe.named_steps["mlp"],
        ),
    ]
    for name, desc, est, mlp in cases:
        rec = Record(name, desc, "skl2onnx.convert_sklearn(target_opset=15)")
        RECORDS.append(rec)
        path = OUT / f"{name}.onnx"
        onx = convert_sklearn(
            est,
            name=name,
            initial_types=[("X", FloatTensorType([None, 64]))],
            target_opset=15,
            options={id(mlp): {"zipmap": False}},
        )
        path.write_bytes(onx.SerializeToString())
        onnx_model = finalize_onnx(path)
        declared = ", ".join(
            f"{o.domain or 'ai.onnx'} {o.version}" for o in onnx_model.opset_import
        )
        rec.notes.append(
            f"target_opset=15 was requested; skl2onnx declares only the opsets its converters "
            f"need ({declared}). The batch dim from FloatTensorType([None, 64]) is a dim with "
            "neither dim_value nor dim_param (shown as `?`). Without zipmap=False the "
            "probabilities output would be a ZipMap (ai.onnx.ml) seq(map(int64, float))."
        )
        (inp,) = graph_input_names(onnx_model)
        write_npz(OUT / f"{name}.npz", {inp: sample})
        label, proba = run_ort(path, {inp: sample})
        ref_label = est.predict(sample)
        ref_proba = est.predict_proba(sample)
        err = float(np.max(np.abs(proba - ref_proba)))
        if not (np.array_equal(label, ref_label) and np.allclose(proba, ref_proba, atol=1e-5)):
            raise AssertionError(f"{name}: onnxruntime disagrees with sklearn")
        acc = float(np.mean(est.predict(X) == y))
        rec.check = (
            f"onnxruntime {ort.__version__} on the npz sample (digits rows 0..2): labels "
            f"{label.tolist()} equal sklearn's, probabilities max abs err {err:.1e} "
            f"(training accuracy {acc:.3f})"
        )
        print(f"[{name}] ok, {path.stat().st_size} bytes, labels {label.tolist()}")


# --------------------------------------------------------------------------- analysis

RNN_OPS = {"LSTM", "GRU", "RNN"}
RNN_INPUT_NAMES = {
    "LSTM": ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"],
    "GRU": ["X", "W", "R", "B", "sequence_lens", "initial_h"],
    "RNN": ["X", "W", "R", "B", "sequence_lens", "initial_h"],
}
DTYPE = {
    onnx.TensorProto.FLOAT: "f32",
    onnx.TensorProto.INT64: "i64",
    onnx.TensorProto.INT32: "i32",
    onnx.TensorProto.BOOL: "bool",
    onnx.TensorProto.DOUBLE: "f64",
    onnx.TensorProto.STRING: "str",
}


def dom(node: onnx.NodeProto) -> str:
    return node.domain or "ai.onnx"


def fmt_values(arr: np.ndarray) -> str:
    if arr.dtype.kind == "f":
        flat = ", ".join(f"{v:.6g}" for v in arr.reshape(-1).tolist())
    else:
        flat = ", ".join(str(v) for v in arr.reshape(-1).tolist())
    return flat if arr.ndim == 0 else f"[{flat}]"


def fmt_tensor(t: onnx.TensorProto, name: str | None = None, always_name: bool = False) -> str:
    """`name:f32[4, 16]`; tensors with at most 8 elements by value (`i64[1]=[0]`, `f32:0`)."""
    arr = numpy_helper.to_array(t)
    dt = DTYPE.get(t.data_type, str(t.data_type))
    shape = f"[{', '.join(str(d) for d in arr.shape)}]"
    if arr.size <= 8:
        text = f"{dt}{shape}={fmt_values(arr)}" if arr.ndim else f"{dt}:{fmt_values(arr)}"
        return f"{name}:{text}" if (name and always_name) else text
    return f"{name}:{dt}{shape}" if name else f"{dt}{shape}"


def fmt_attr(a: onnx.AttributeProto) -> str:
    v = helper.get_attribute_value(a)
    if isinstance(v, onnx.TensorProto):
        return f"{a.name}={fmt_tensor(v)}"
    if isinstance(v, bytes):
        return f"{a.name}={v.decode()!r}"
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return f"{a.name}={[x.decode() for x in v]}"
    if isinstance(v, float):
        return f"{a.name}={v:g}"
    if isinstance(v, list) and len(v) > 8:
        head = ", ".join(f"{x:.6g}" if isinstance(x, float) else str(x) for x in v[:3])
        return f"{a.name}=[{len(v)} values: {head}, ...]"
    return f"{a.name}={v}"


def fmt_type(vi: onnx.ValueInfoProto) -> str:
    t = vi.type
    if t.HasField("tensor_type"):
        dt = DTYPE.get(t.tensor_type.elem_type, str(t.tensor_type.elem_type))
        dims = [
            d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?")
            for d in t.tensor_type.shape.dim
        ]
        return f"{vi.name}: {dt}[{', '.join(dims)}]"
    return f"{vi.name}: NON-TENSOR {t}"


class GraphInfo:
    def __init__(self, model: onnx.ModelProto) -> None:
        g = model.graph
        self.model = model
        self.inits = {t.name: t for t in g.initializer}
        self.inputs = {i.name for i in g.input if i.name not in self.inits}
        self.producer: dict[str, onnx.NodeProto] = {}
        for n in g.node:
            for o in n.output:
                if o:
                    self.producer[o] = n
        # const: computable from initializers/Constant nodes alone.
        # shape: data independent, but depends on a Shape/Size of a runtime tensor.
        self.const: set[str] = set(self.inits)
        self.shape: set[str] = set()
        for n in g.node:  # graph.node is topologically sorted
            ins = [i for i in n.input if i]
            if n.op_type in ("Shape", "Size") and dom(n) == "ai.onnx":
                kind = "const" if all(i in self.const for i in ins) else "shape"
            elif all(i in self.const for i in ins):
                kind = "const"
            elif all(i in self.const or i in self.shape for i in ins):
                kind = "shape"
            else:
                kind = "data"
            for o in n.output:
                if kind == "const":
                    self.const.add(o)
                elif kind == "shape":
                    self.shape.add(o)

    def is_leaf_const(self, v: str) -> bool:
        return v in self.inits or (v in self.producer and self.producer[v].op_type == "Constant")

    def render(self, v: str, depth: int = 0) -> str:
        if v == "":
            return "<none>"
        if v in self.inits:
            return fmt_tensor(self.inits[v], v)
        if v in self.inputs:
            return v
        n = self.producer[v]
        if n.op_type == "Constant" and dom(n) == "ai.onnx":
            return (
                "Constant(" + ", ".join(fmt_attr(a)[len(a.name) + 1 :] for a in n.attribute) + ")"
            )
        if v not in self.const and v not in self.shape:
            return f"%{v}<{n.op_type}>"  # runtime data: do not descend
        if depth > 25:
            return f"%{v}<{n.op_type}...>"
        args = [self.render(i, depth + 1) for i in n.input]
        attrs = [fmt_attr(a) for a in n.attribute]
        op = n.op_type if dom(n) == "ai.onnx" else f"{n.domain}.{n.op_type}"
        out = ""
        if len(n.output) > 1:
            out = f"#{list(n.output).index(v)}"
        return f"{op}{out}(" + ", ".join(args + attrs) + ")"

    def indirect_weights(self) -> list[str]:
        """Constant-derived inputs of data nodes that are not plain initializers/Constants."""
        lines = []
        for n in self.model.graph.node:
            if n.output and n.output[0] in (self.const | self.shape):
                continue
            for k, i in enumerate(n.input):
                if i and i in self.const and not self.is_leaf_const(i):
                    lines.append(
                        f"{n.op_type} {n.name or n.output[0]!r} input {k} = {self.render(i)}"
                    )
        return lines

    def consumers(self, v: str) -> list[tuple[onnx.NodeProto, int]]:
        return [(n, k) for n in self.model.graph.node for k, i in enumerate(n.input) if i == v]

    def where(self, n: onnx.NodeProto, k: int) -> str:
        role = ""
        if n.op_type in RNN_OPS and k < len(RNN_INPUT_NAMES[n.op_type]):
            role = f" ({RNN_INPUT_NAMES[n.op_type][k]})"
        return f"{n.op_type} {n.name or n.output[0]!r} input {k}{role}"

    def shape_feeds(self) -> list[str]:
        """Shape-derived inputs of data nodes (the shape-arithmetic subgraphs), one per value."""
        lines = []
        seen: set[str] = set()
        for n in self.model.graph.node:
            if n.output and n.output[0] in (self.const | self.shape):
                continue
            for i in n.input:
                if i and i in self.shape and i not in seen:
                    seen.add(i)
                    users = [
                        self.where(m, k)
                        for m, k in self.consumers(i)
                        if not (m.output and m.output[0] in (self.const | self.shape))
                    ]
                    lines.append(f"{' & '.join(users)} = {self.render(i)}")
        return lines

    def rnn_summary(self) -> list[str]:
        graph_outputs = {o.name for o in self.model.graph.output}
        lines = []
        for n in self.model.graph.node:
            if n.op_type not in RNN_OPS:
                continue
            attrs = ", ".join(fmt_attr(a) for a in n.attribute)
            parts = []
            for k, i in enumerate(n.input):
                role = RNN_INPUT_NAMES[n.op_type][k]
                if not i:
                    parts.append(f"{role}=<absent>")
                elif i in self.inits:
                    parts.append(f"{role}=initializer {fmt_tensor(self.inits[i], i)}")
                elif i in self.const:
                    parts.append(f"{role}=const-derived")
                elif i in self.shape:
                    parts.append(f"{role}=shape-derived")
                else:
                    src = self.producer[i].op_type if i in self.producer else "graph input"
                    parts.append(f"{role}=data %{i}<{src}>")
            outs = []
            for k, o in enumerate(n.output):
                label = ["Y", "Y_h", "Y_c"][k]
                if not o:
                    outs.append(f"{label}=<not produced>")
                elif self.consumers(o) or o in graph_outputs:
                    outs.append(label)
                else:
                    outs.append(f"{label}(produced, never consumed)")
            lines.append(
                f"{n.op_type} {n.name or n.output[0]!r} [{attrs}]: "
                + "; ".join(parts)
                + f" -> {', '.join(outs)}"
            )
        return lines

    def dump(self) -> list[str]:
        """One line per node: `outs = domain.Op[attrs](ins)`; initializers as `$name`."""
        lines = []
        for n in self.model.graph.node:
            ins = []
            for i in n.input:
                if not i:
                    ins.append("<none>")
                elif i in self.inits:
                    ins.append(f"${i}")
                else:
                    ins.append(f"%{i}")
            attrs = ", ".join(fmt_attr(a) for a in n.attribute)
            op = n.op_type if dom(n) == "ai.onnx" else f"{n.domain}.{n.op_type}"
            outs = ", ".join(f"%{o}" if o else "<none>" for o in n.output)
            lines.append(f"{outs} = {op}" + (f"[{attrs}]" if attrs else "") + f"({', '.join(ins)})")
        return lines


def describe(name: str, extra: list[str]) -> list[str]:
    path = OUT / f"{name}.onnx"
    npz = OUT / f"{name}.npz"
    model = onnx.load(str(path))
    g = model.graph
    info = GraphInfo(model)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    ops = [f"{dom(n)}:{n.op_type}" for n in g.node]
    counts = Counter(ops)
    sample = np.load(npz)
    out = [
        f"- files: `{path.name}` ({path.stat().st_size} bytes, sha256 {sha}...), "
        f"`{npz.name}` ({npz.stat().st_size} bytes; keys {sorted(sample.files)}, "
        + ", ".join(f"{k} {sample[k].dtype}{list(sample[k].shape)}" for k in sorted(sample.files))
        + ")",
        f"- producer: {model.producer_name} {model.producer_version}; ir_version {model.ir_version}; "
        f"opset_import: {opsets}",
        "- inputs: " + "; ".join(fmt_type(i) for i in g.input if i.name in info.inputs),
        "- outputs: " + "; ".join(fmt_type(o) for o in g.output),
        f"- initializers: {len(g.initializer)} ("
        + ", ".join(fmt_tensor(t, t.name, always_name=True) for t in g.initializer)
        + ")",
        f"- nodes ({len(ops)}), in graph order: " + ", ".join(f"`{o}`" for o in ops),
        "- op counts: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())),
    ]
    if model.functions:
        out.append(f"- local functions: {[f.name for f in model.functions]}")
    rnn = info.rnn_summary()
    if rnn:
        out.append("- RNN nodes:")
        out += [f"  - `{line}`" for line in rnn]
    sf = info.shape_feeds()
    out.append(
        "- shape-arithmetic feeds (data-independent values built from Shape of a runtime tensor):"
    )
    out += [f"  - `{line}`" for line in sf] or ["  - none"]
    iw = info.indirect_weights()
    out.append(
        "- weights not fed directly from an initializer/Constant (constant-foldable subgraphs):"
    )
    out += [f"  - `{line}`" for line in iw] or [
        "  - none: every weight is an initializer used as-is"
    ]
    out += extra
    out += [
        "",
        "<details><summary>graph listing (`$name` = initializer, `%name` = value)</summary>",
        "",
        "```",
        *info.dump(),
        "```",
        "",
        "</details>",
    ]
    return out


# --------------------------------------------------------------------------- README

HAND_NOTES = """\
## Reading the sketches

`X:f32[1,64,8]` is an initializer (name, dtype, shape); tensors with at most 8
elements are shown by value (`i64[1]=[0]`, `f32:0.0` for a scalar).
`Constant(...)` is an `ai.onnx` Constant node. `%name<Op>` is a runtime (data)
tensor produced by `Op`; sketches stop there. `Op#k(...)` is output `k` of a
multi-output node. Lines are generated by `export_models.py` from the graphs.

*Shape-arithmetic feeds* are values that depend on the input only through
`Shape` (so they fold to constants once the batch size is known, or stay
symbolic with the dynamic batch dim). *Weights not fed directly* are values
computed from initializers/Constants only, i.e. what a constant-folding pass
can evaluate ahead of time.

## Patterns a constant-folding / shape-folding pass must handle (summary)

All committed torch exports have their weights already folded: TorchScript
(`do_constant_folding=True`, its default) and dynamo (`optimize=True`, its default,
which runs the onnxscript optimizer) both emit W/R/B of every LSTM/GRU as
initializers already in ONNX gate order and `[num_directions, ...]` layout. What is
left in the graphs is shape arithmetic for the zero initial states and, in dynamo
exports, for reshaping RNN outputs:

* TorchScript (opset 14): `h0 = c0 = ConstantOfShape(Concat(Constant([L*D]),
  Unsqueeze(Gather(Shape(x), Constant(0), axis=0), [0]), Constant([16])), value=0.0)`;
  with 2 layers each layer gets `Slice(h0, [l], [l+1], axes [0])`. Between layers /
  after the last layer: `Squeeze(Y, [1])` (1 direction) or
  `Reshape(Transpose(Y, [0,2,1,3]), Constant([0,0,-1]))` (bidirectional), then
  `Transpose([1,0,2])` back to batch-first and `Gather(axis=1, index=-1)`.
  Shape-arithmetic constants are `Constant` nodes, not initializers.
* dynamo (opset 20): `zeros = Expand(f32 scalar 0, Concat([L], Shape(x, start=0,
  end=1), [16]))` and every layer `Slice(zeros, [l], [l+1], [0])` (the same value feeds
  initial_h and initial_c). After each LSTM/GRU: `Transpose(Y, [0,2,1,3])` then
  `Reshape(_, Concat(Slice(Shape(_),0,1), Slice(Shape(_),1,2), Reshape(Mul(Slice(Shape(_),2,3),
  Slice(Shape(_),3,4)), [-1])))`, i.e. a shape computed from the *runtime* tensor's
  Shape (foldable only with shape inference: it is `[seq, batch, D*16]`). Constants are
  initializers (`val_N`, often scalars/1-element int64), and Shape uses its
  `start`/`end` attributes (opset >= 15). LSTM/GRU nodes produce only `Y`.

Not committed, but observed with the same versions while writing the script:
TorchScript with `do_constant_folding=False` feeds every W/R/B through
`Unsqueeze(Concat(Slice(w, [0],[16]), Slice(w, [48],[64]), Slice(w, [16],[48])))`
(LSTM gate reorder i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,n via slices [16:32],[0:16],[32:48];
bias = Concat of the reordered bias_ih and bias_hh; bidirectional adds an outer Concat of
both directions). dynamo with `optimize=False` does the same reordering but computes the
slice bounds from `Shape(initial-state tensor, start=2, end=3) * k`, so its weights depend
(through Shape) on the input's batch dim and only fold after shape inference.
"""


def write_readme() -> None:
    v = versions()
    lines = [
        "# Exporter-produced ONNX test models",
        "",
        "Generated by `tests/models/export_models.py` (see its docstring for how to recreate",
        "the scratch virtualenv). Do not edit by hand: rerun the script.",
        "",
        "Versions used: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
        "Every `.npz` holds one float32 sample input (batch 3) under the graph input name;",
        "every model was checked in onnxruntime against torch / scikit-learn on that",
        "sample (and, for torch models, on a batch of 5 to prove the batch dim is dynamic).",
        "The dynamo exporter's per-node `pkg.torch.onnx.stack_trace` metadata was removed",
        "(it holds absolute paths); all other exporter output is as produced.",
        "",
        HAND_NOTES,
        "## Files",
        "",
        "| model | exporter | ok | bytes |",
        "| --- | --- | --- | --- |",
    ]
    for r in RECORDS:
        p = OUT / f"{r.name}.onnx"
        size = p.stat().st_size if p.exists() else "-"
        lines.append(
            f"| `{r.name}` | {r.exporter} | {'yes' if r.ok else 'EXPORT FAILED'} | {size} |"
        )
    lines.append("")
    for r in RECORDS:
        lines += [f"## {r.name}", "", f"- model: {r.description}", f"- exporter: {r.exporter}"]
        if not r.ok:
            lines += ["- **export failed**:", "", "```", r.error, *r.notes, "```", ""]
            continue
        lines += describe(r.name, [f"- check: {r.check}", *[f"- note: {n}" for n in r.notes]])
        lines += [""]
    (OUT / "README.md").write_text("\n".join(lines).rstrip() + "\n")


# --------------------------------------------------------------------------- main


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    x_mlp = rng.standard_normal((BATCH, 64), dtype=np.float32)
    x_seq = rng.standard_normal((BATCH, 8, 8), dtype=np.float32)

    def mlp() -> nn.Module:
        torch.manual_seed(0)
        return MLP()

    mlp_desc = "nn.Sequential(Linear(64,32), ReLU, Linear(32,16), ReLU, Linear(16,10), LogSoftmax(dim=1)), torch.manual_seed(0)"
    export_torch("torch_mlp_ts13", mlp_desc, mlp(), x_mlp, dynamo=False, opset=13)
    export_torch("torch_mlp_ts17", mlp_desc, mlp(), x_mlp, dynamo=False, opset=17)
    export_torch("torch_mlp_dynamo", mlp_desc, mlp(), x_mlp, dynamo=True)

    rnn_cases = [
        ("lstm1", "lstm", 1, False),
        ("lstm2", "lstm", 2, False),
        ("gru1", "gru", 1, False),
        ("gru2", "gru", 2, False),
    ]
    for tag, cell, layers, bidir in rnn_cases:
        desc = (
            f"nn.{cell.upper()}(input_size=8, hidden_size=16, num_layers={layers}, batch_first=True) "
            "called without initial states on x[batch, 8 (seq), 8], then Linear(16, 4) on out[:, -1, :]; "
            "torch.manual_seed(0)"
        )
        for suffix, dyn, opset in (("ts14", False, 14), ("dynamo", True, None)):
            torch.manual_seed(0)
            export_torch(
                f"torch_{tag}_{suffix}",
                desc,
                RNNHead(cell, layers, bidir),
                x_seq,
                dynamo=dyn,
                opset=opset,
            )

    desc = (
        "nn.LSTM(input_size=8, hidden_size=16, num_layers=1, batch_first=True, bidirectional=True) "
        "called without initial states on x[batch, 8 (seq), 8], then Linear(32, 4) on out[:, -1, :]; "
        "torch.manual_seed(0)"
    )
    torch.manual_seed(0)
    export_torch(
        "torch_bilstm1_ts14", desc, RNNHead("lstm", 1, True), x_seq, dynamo=False, opset=14
    )

    export_sklearn()
    write_readme()
    failed = [r.name for r in RECORDS if not r.ok]
    print(f"wrote {OUT}; failed exports: {failed or 'none'}")


if __name__ == "__main__":
    main()
