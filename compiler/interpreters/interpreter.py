"""Run a module's `@main` function on numpy arrays.

The ops dlhwc runs itself have their implementations in xDSL `InterpreterFunctions`
classes, one `@impl(OpClass)` method per op class taking the op and its operand values
and returning its result values: `CompFunctions` (comp.py), `OnnxFunctions` (onnx.py)
and each registered target's golden model (`Target.golden`). `functions()` collects
them; an xDSL `Interpreter` dispatches each op to its method.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, cast

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, TensorType
from xdsl.interpreter import Interpreter as XdslInterpreter
from xdsl.interpreter import InterpreterFunctions
from xdsl.ir import Operation, SSAValue
from xdsl.utils.exceptions import InterpretationError

from dlhwc.compiler.functions import input_names, main_function, output_names
from dlhwc.compiler.interpreters.segments import DATA_OPS, Segment, partition, segment_module
from dlhwc.spec.errors import DlhwcError


@cache
def functions() -> tuple[InterpreterFunctions, ...]:
    """The implementations of every op the interpreter runs itself: comp, onnx, and the
    golden model of every registered target."""
    from dlhwc.compiler.interpreters.comp import CompFunctions
    from dlhwc.compiler.interpreters.onnx import OnnxFunctions
    from dlhwc.spec.targets import targets

    found: list[InterpreterFunctions] = [CompFunctions(), OnnxFunctions()]
    for target in targets().values():
        if target.golden is None:
            continue
        cls = target.golden.load()
        if not (isinstance(cls, type) and issubclass(cls, InterpreterFunctions)):
            raise DlhwcError(
                f"target '{target.name}': its golden model {target.golden.path} is not an "
                "xDSL InterpreterFunctions class"
            )
        found.append(cls())
    return tuple(found)


@cache
def dispatcher() -> XdslInterpreter:
    """The xDSL interpreter that dispatches each op to its implementation among
    `functions()`. No implementation looks a symbol up, so it holds no module of its own."""
    interpreter = XdslInterpreter(ModuleOp([]))
    for impls in functions():
        interpreter.register_implementations(impls)
    return interpreter


def check_inputs(
    fn: func.FuncOp, inputs: Mapping[str, np.ndarray], source: str | None = None
) -> list[np.ndarray]:
    """The input arrays in argument order, after checking names, dtypes and shapes."""
    from dlhwc.dialects import onnx as onnx_d
    from dlhwc.dialects.onnx import numpy_dtype

    names = input_names(fn)
    missing = [n for n in names if n not in inputs]
    if missing:
        raise DlhwcError(
            f"missing input(s) {', '.join(repr(n) for n in missing)}; the model takes "
            f"{', '.join(repr(n) for n in names)}",
            file=source,
        )
    symbols: dict[str, int] = {}
    arrays = []
    for i, (name, arg) in enumerate(zip(names, fn.body.block.args, strict=True)):
        typ = arg.type
        if isinstance(typ, onnx_d.OpaqueType):
            arrays.append(inputs[name])  # a sequence (list), map or optional (None) as it is
            continue
        array = np.asarray(inputs[name])
        if isinstance(typ, TensorType):
            dtype = numpy_dtype(typ.get_element_type())
            shape = typ.get_shape()
            params = _dim_params(fn, i)
            expected = (
                "["
                + ", ".join((params[k] or "?") if d < 0 else str(d) for k, d in enumerate(shape))
                + f"] {dtype}"
            )
            got = f"{list(array.shape)} {array.dtype}"
            if array.dtype != dtype:
                raise DlhwcError(
                    f"input '{name}' has dtype {array.dtype}, expected {expected}", file=source
                )
            if array.ndim != len(shape) or any(
                d >= 0 and d != a for d, a in zip(shape, array.shape, strict=True)
            ):
                raise DlhwcError(
                    f"input '{name}' has shape {got}, expected {expected}", file=source
                )
            for k, d in enumerate(shape):
                if d < 0 and params[k]:
                    seen = symbols.setdefault(params[k], array.shape[k])
                    if seen != array.shape[k]:
                        raise DlhwcError(
                            f"input '{name}': dimension '{params[k]}' is {array.shape[k]} here "
                            f"but {seen} in another input",
                            file=source,
                        )
        arrays.append(array)
    return arrays


def static_batches(
    fn: func.FuncOp, inputs: Mapping[str, np.ndarray]
) -> list[dict[str, np.ndarray]]:
    """``inputs`` cut into the pieces ``fn`` accepts: a model exported with a static batch
    (an input typed [1, 64], say) takes data of any number of samples in chunks of that
    batch, cut along the one axis where the data's size differs from the static size,
    provided every axis before it is static too (a batch axis comes before the features;
    [N, 64] data of [100, 32] is an error, not a batch). When the samples do not fill
    the last chunk, it wraps around to the first samples.
    Inputs that already fit (or that differ elsewhere, for check_inputs to report) come
    back whole.
    """
    names = input_names(fn)
    cuts: dict[str, tuple[int, int]] = {}  # name -> (axis, static size)
    for name, arg in zip(names, fn.body.block.args, strict=True):
        array = inputs.get(name)
        if array is None or not isinstance(arg.type, TensorType):
            continue
        shape = arg.type.get_shape()
        array = np.asarray(array)
        if array.ndim != len(shape):
            return [dict(inputs)]
        differ = [k for k, d in enumerate(shape) if d >= 0 and array.shape[k] != d]
        if len(differ) > 1 or (differ and shape[differ[0]] == 0):
            return [dict(inputs)]
        if differ and any(d < 0 for d in shape[: differ[0]]):
            return [dict(inputs)]
        if differ:
            cuts[name] = (differ[0], shape[differ[0]])
    if not cuts:
        return [dict(inputs)]
    samples = {np.shape(inputs[n])[axis] for n, (axis, _) in cuts.items()}
    sizes = {size for _, size in cuts.values()}
    if len(samples) != 1 or len(sizes) != 1:
        return [dict(inputs)]
    n, size = samples.pop(), sizes.pop()
    chunks = []
    for start in range(0, n, size):
        rows = np.arange(start, start + size) % n
        chunks.append(
            {
                name: np.take(np.asarray(array), rows, axis=cuts[name][0])
                if name in cuts
                else array
                for name, array in inputs.items()
            }
        )
    return chunks


def _dim_params(fn: func.FuncOp, index: int) -> list[str]:
    # Asked for tensor arguments only (check_inputs).
    rank = len(cast(TensorType, fn.body.block.args[index].type).get_shape())
    if fn.arg_attrs is None:
        return [""] * rank
    entry = fn.arg_attrs.data[index].data.get("onnx.dim_params")
    if not isinstance(entry, ArrayAttr):
        return [""] * rank
    return [s.data for s in entry.data]


def run_function(
    fn: func.FuncOp,
    args: list,
    observe: Callable[[SSAValue, Any], None] | None = None,
    watch: Callable[[SSAValue], bool] | None = None,
) -> list:
    """Interpret ``fn`` on ``args``; returns the values `func.return` returns.

    ``observe(value, array)``, if given, sees the arguments and the op results ``watch``
    accepts (all of them by default), in program order. To run a function many times,
    make one `Interpreter` and call its `run`: its onnxruntime sessions are built once.
    """
    if observe is None:
        return Interpreter(fn).run(args)
    return Interpreter(fn, watch=watch or (lambda value: True)).run(args, observe)


class Interpreter:
    """Runs one function, any number of times.

    The standard ONNX ops run in onnxruntime: the function is cut the way the compiler
    cuts a program into host segments (segments.py), and every maximal region of ONNX
    ops becomes one session, built on first use with the static shapes and types the IR
    knows. dlhwc's own ops (comp, eie, ese: fixed point and the accelerators' golden
    models) run on their implementation functions, as do the few ONNX ops onnxruntime
    cannot run or exchange (`runs_in_onnxruntime`). Constants and weights are computed
    once per interpreter.

    ``watch`` selects the arguments and op results `run` shows its ``observe``
    callback (none when None); a region outputs the ones it computes inside. ``per_op`` runs every op
    by itself on its implementation function (a dedicated ONNX op on its numpy kernel,
    a generic `onnx.Node` as a one-node onnxruntime model): the reference kernels'
    conformance tests and the passes that evaluate single ops use that path.

    Float arithmetic follows IEEE 754 as onnxruntime's does: NaN and infinities
    propagate without warnings.
    """

    def __init__(
        self,
        fn: func.FuncOp,
        *,
        watch: Callable[[SSAValue], bool] | None = None,
        per_op: bool = False,
    ):
        self.fn = fn
        self.watch = watch
        self.per_op = per_op
        own = (lambda op: True) if per_op else (lambda op: not runs_in_onnxruntime(op))
        self.steps = partition(fn.body.block, own)
        self._regions: dict[int, _Region] = {}
        self._data: dict[SSAValue, Any] = {}
        ret = fn.body.block.last_op
        if not isinstance(ret, func.ReturnOp):
            raise DlhwcError("the function has no func.return")
        self._returned = list(ret.operands)
        self._last_use = self._last_uses()

    def _last_uses(self) -> dict[SSAValue, int]:
        """The index of the last step that reads each value (values read by
        `func.return` are kept to the end)."""
        last: dict[SSAValue, int] = {}
        for index, step in enumerate(self.steps):
            ops = step.ops if isinstance(step, Segment) else [step]
            for op in ops:
                for v in op.operands:
                    last[v] = index
        for v in self._returned:
            last[v] = len(self.steps)
        return last

    def run(self, args: list, observe: Callable[[SSAValue, Any], None] | None = None) -> list:
        """The values `func.return` returns for ``args`` (in argument order)."""
        with np.errstate(all="ignore"):
            return self._run(args, observe)

    def _run(self, args: list, observe: Callable[[SSAValue, Any], None] | None) -> list:
        block = self.fn.body.block
        env: dict[SSAValue, Any] = dict(zip(block.args, args, strict=True))
        seen: dict[SSAValue, Any] = {}
        keep = observe is not None

        def shown(value: SSAValue) -> bool:
            return keep and self.watch is not None and self.watch(value)

        for value, array in env.items():
            if shown(value):
                seen[value] = array
        for index, step in enumerate(self.steps):
            if isinstance(step, Segment):
                produced = self._region(index, step).run(env, self._value)
            else:
                operands = [self._value(env, v) for v in step.operands]
                results = _apply(step, operands)
                produced = dict(zip(step.results, results, strict=False))
            for value, result in produced.items():
                env[value] = result
                if shown(value):
                    seen[value] = result
            for value in [v for v in env if self._last_use.get(v, -1) <= index]:
                del env[value]  # read by no later step (observed values are in `seen`)
        outputs = [self._value(env, v) for v in self._returned]
        if observe is not None:
            for value in block.args:
                if value in seen:
                    observe(value, seen[value])
            for op in block.ops:
                for value in op.results:
                    if value in seen:
                        observe(value, seen[value])
                    elif shown(value) and isinstance(op, DATA_OPS):
                        observe(value, self._value(env, value))
        return outputs

    def _value(self, env: dict[SSAValue, Any], value: SSAValue) -> Any:
        """``value`` from the environment, or a data op's value (computed once)."""
        if value in env:
            return env[value]
        owner = value.owner
        if isinstance(owner, DATA_OPS):
            if value not in self._data:
                self._data[value] = _apply(owner, [])[0]
            return self._data[value]
        raise DlhwcError(f"value {value.name_hint or ''} is read before it is computed")

    def _region(self, index: int, segment) -> _Region:
        if index not in self._regions:
            self._regions[index] = _Region(self.fn, segment, self.watch)
        return self._regions[index]


def _apply(op: Operation, operands: list) -> tuple:
    """``op``'s implementation on ``operands``; errors name the op."""
    try:
        return tuple(dispatcher().run_op(op, tuple(operands)))
    except DlhwcError:
        raise
    except InterpretationError as e:
        if "Could not find interpretation function" in str(e):
            raise DlhwcError(f"the reference interpreter has no semantics for {op.name}") from None
        raise DlhwcError(f"{_describe(op)}: {' '.join(str(e).split())}") from None
    except Exception as e:  # noqa: BLE001 - numpy/onnxruntime errors on bad data
        raise DlhwcError(
            f"{_describe(op)}: {type(e).__name__}: {' '.join(str(e).split())}"
        ) from None


def runs_in_onnxruntime(op: Operation) -> bool:
    """Whether a region of onnxruntime may run ``op``: an ONNX op, but not one of the
    forms onnxruntime refuses (batch-first recurrent layers, `layout` 1) or one whose
    values onnxruntime's Python API cannot pass (float8, 4- and 2-bit tensors, kept as
    opaque types), which the numpy kernels run."""
    from dlhwc.dialects import onnx as onnx_d

    if not isinstance(op, onnx_d.OnnxOp) or isinstance(op, DATA_OPS):
        return False
    if isinstance(op, onnx_d.NodeOp):
        return True
    if isinstance(op, onnx_d.LSTMOp | onnx_d.GRUOp | onnx_d.RNNOp):
        layout = op.onnx_attributes().get("layout", 0)
        if layout:
            return False
    values = [*op.operands, *op.results]
    return not any(
        isinstance(v.type, onnx_d.OpaqueType) and v.type.spelling.data.startswith("tensor(")
        for v in values
    )


class _Region:
    """One region of ONNX ops exported as a model and run in one onnxruntime session.

    A boundary value the importer could not type (an ML op's output without shape
    inference) takes the dtype and rank of the array it has when the region first runs:
    the region keeps one session per such signature.
    """

    def __init__(self, fn: func.FuncOp, segment, watch: Callable[[SSAValue], bool] | None):
        from xdsl.dialects.builtin import NoneType

        from dlhwc.dialects import onnx as onnx_d

        self.fn = fn
        self.ops = segment.ops
        self.inputs, outputs = segment.boundary()
        if watch is not None:
            members = set(outputs)
            outputs += [
                r for op in segment.ops for r in op.results
                if r not in members and not isinstance(r.type, NoneType) and watch(r)
            ]  # fmt: skip
        self.outputs = outputs
        self.in_names = [f"in{i}" for i in range(len(self.inputs))]
        self.out_names = [f"out{i}" for i in range(len(outputs))]
        self.untyped = [
            i for i, v in enumerate(self.inputs)
            if isinstance(v.type, onnx_d.OpaqueType) and v.type.spelling.data == "unknown"
        ]  # fmt: skip
        self.sessions: dict[tuple, Any] = {}

    def session(self, feeds: list) -> Any:
        key = tuple((np.asarray(feeds[i]).dtype.str, np.ndim(feeds[i])) for i in self.untyped)
        if key not in self.sessions:
            self.sessions[key] = self._build(feeds)
        return self.sessions[key]

    def _build(self, feeds: list) -> Any:
        import onnxruntime as ort

        from dlhwc.compiler.frontend.onnx_exporter import export_module
        from dlhwc.dialects import onnx as onnx_d

        types = [v.type for v in self.inputs]
        for i in self.untyped:
            array = np.asarray(feeds[i])
            types[i] = onnx_d.tensor_type(array.dtype, [None] * array.ndim)
        module, _ = segment_module(
            self.ops,
            self.inputs,
            self.outputs,
            self.in_names,
            self.out_names,
            # The function's outermost object is an operation (its module).
            cast(Operation, self.fn.get_toplevel_object()).attributes,
            types,
        )
        try:
            model = export_module(module, quantize_as="float", check=False)
        except DlhwcError as e:
            raise DlhwcError(f"{_describe(self.ops[0])}: {e.reason}") from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # Q/DQ pairs mean what ONNX says, not a request to quantize.
        options.add_session_config_entry("session.disable_quant_qdq", "1")
        try:
            return ort.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
            raise DlhwcError(f"onnxruntime: {' '.join(str(e).split())}") from None

    def run(self, env: dict, value_of: Callable) -> dict[SSAValue, Any]:
        arrays = [value_of(env, v) for v in self.inputs]
        # np.asarray keeps 0-d scalars 0-d (np.ascontiguousarray makes them 1-d).
        feeds = {
            name: np.asarray(a, order="C") if isinstance(a, np.ndarray | np.generic) else a
            for name, a in zip(self.in_names, arrays, strict=True)
        }
        session = self.session(arrays)
        try:
            results = session.run(self.out_names, feeds)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
            raise DlhwcError(f"onnxruntime: {' '.join(str(e).split())}") from None
        return dict(zip(self.outputs, results, strict=True))


def run_module(
    module: ModuleOp, inputs: Mapping[str, np.ndarray], source: str | None = None
) -> dict[str, np.ndarray]:
    """Run `@main` on named inputs; returns the outputs by their ONNX names.

    A batch of more than `batching.CHUNK_ROWS` rows of a row-wise function
    (`batching.rowwise`) streams through the interpreter in chunks of that many rows.
    """
    from dlhwc.compiler.interpreters.batching import CHUNK_ROWS, rowwise

    fn = main_function(module)
    args = check_inputs(fn, inputs, source)
    interpreter = Interpreter(fn)
    rows = {np.shape(a)[0] for a in args if np.ndim(a)}
    if len(rows) == 1 and (n := rows.pop()) > CHUNK_ROWS and rowwise(fn):
        parts = [
            interpreter.run([a[start : start + CHUNK_ROWS] for a in args])
            for start in range(0, n, CHUNK_ROWS)
        ]
        results = [np.concatenate(column) for column in zip(*parts, strict=True)]
    else:
        results = interpreter.run(args)
    return dict(zip(output_names(fn), results, strict=True))


def _describe(op: Operation) -> str:
    name = getattr(op, "node_name", None)
    return f"{op.name} '{name}'" if name else op.name


def evaluate_op(op: Operation, args: list) -> tuple:
    """The result values of one op on the given operand values."""
    return tuple(dispatcher().run_op(op, tuple(args)))
