"""Run a module's `@main` function on numpy arrays, op by op.

Each op class has one implementation function, registered with `@impl(OpClass)`, that
takes the op and its operand values and returns its result values. The dialect modules
of this package register theirs when imported (see `_load_dialect_impls`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr, TensorType
from xdsl.ir import Operation, SSAValue

from compiler.errors import DlhwcError

Impl = Callable[[Any, list], tuple]
IMPLS: dict[type[Operation], Impl] = {}


def impl(op_class: type[Operation]) -> Callable[[Impl], Impl]:
    """Register ``fn(op, operand_values) -> result_values`` as ``op_class``'s semantics."""

    def register(fn: Impl) -> Impl:
        IMPLS[op_class] = fn
        return fn

    return register


def _load_dialect_impls() -> None:
    import runtime.interpreters.comp  # noqa: F401
    import runtime.interpreters.eie  # noqa: F401
    import runtime.interpreters.ese  # noqa: F401
    import runtime.interpreters.onnx  # noqa: F401


def main_function(module: ModuleOp) -> func.FuncOp:
    """The module's `@main` (or its only function)."""
    funcs = [op for op in module.ops if isinstance(op, func.FuncOp)]
    for f in funcs:
        if f.sym_name.data == "main":
            return f
    if len(funcs) == 1:
        return funcs[0]
    raise DlhwcError("the module has no @main function")


def input_names(fn: func.FuncOp) -> list[str]:
    """The ONNX names of the function's arguments (`onnx.name`), else arg0, arg1, ..."""
    return _names(fn.arg_attrs, len(fn.body.block.args), "arg")


def output_names(fn: func.FuncOp) -> list[str]:
    """The ONNX names of the function's results."""
    return _names(fn.res_attrs, len(fn.function_type.outputs.data), "result")


def _names(attrs: ArrayAttr | None, count: int, prefix: str) -> list[str]:
    names = []
    for i in range(count):
        name = None
        if attrs is not None and i < len(attrs.data):
            entry = attrs.data[i].data.get("onnx.name")
            if isinstance(entry, StringAttr):
                name = entry.data
        names.append(name or f"{prefix}{i}")
    return names


def check_inputs(
    fn: func.FuncOp, inputs: Mapping[str, np.ndarray], source: str | None = None
) -> list[np.ndarray]:
    """The input arrays in argument order, after checking names, dtypes and shapes."""
    from dialects.onnx import numpy_dtype

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
        array = np.asarray(inputs[name])
        typ = arg.type
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
    rank = len(fn.body.block.args[index].type.get_shape())
    if fn.arg_attrs is None:
        return [""] * rank
    entry = fn.arg_attrs.data[index].data.get("onnx.dim_params")
    if not isinstance(entry, ArrayAttr):
        return [""] * rank
    return [s.data for s in entry.data]


def run_function(
    fn: func.FuncOp,
    args: list[np.ndarray],
    observe: Callable[[SSAValue, Any], None] | None = None,
) -> list[np.ndarray]:
    """Interpret ``fn`` on ``args``; returns the values `func.return` returns.

    ``observe(value, array)``, if given, sees every argument and op result as it is computed.
    Float arithmetic follows IEEE 754 as onnxruntime's does: NaN and infinities propagate
    without warnings.
    """
    with np.errstate(all="ignore"):
        return _run_function(fn, args, observe)


def _run_function(
    fn: func.FuncOp,
    args: list[np.ndarray],
    observe: Callable[[SSAValue, Any], None] | None,
) -> list[np.ndarray]:
    _load_dialect_impls()
    env: dict[SSAValue, Any] = dict(zip(fn.body.block.args, args, strict=True))
    if observe is not None:
        for value, array in env.items():
            observe(value, array)
    for op in fn.body.block.ops:
        if isinstance(op, func.ReturnOp):
            return [env[v] for v in op.operands]
        fn_impl = IMPLS.get(type(op))
        if fn_impl is None:
            raise DlhwcError(f"the reference interpreter has no semantics for {op.name}")
        try:
            results = fn_impl(op, [env[v] for v in op.operands])
        except DlhwcError:
            raise
        except Exception as e:  # noqa: BLE001 - numpy/onnxruntime errors on bad data
            where = _describe(op)
            raise DlhwcError(f"{where}: {type(e).__name__}: {' '.join(str(e).split())}") from None
        for value, result in zip(op.results, results, strict=False):
            env[value] = result
            if observe is not None:
                observe(value, result)
    raise DlhwcError("the function has no func.return")


def _describe(op: Operation) -> str:
    name = getattr(op, "node_name", None)
    return f"{op.name} '{name}'" if name else op.name


def run_module(
    module: ModuleOp, inputs: Mapping[str, np.ndarray], source: str | None = None
) -> dict[str, np.ndarray]:
    """Run `@main` on named inputs; returns the outputs by their ONNX names."""
    fn = main_function(module)
    args = check_inputs(fn, inputs, source)
    results = run_function(fn, args)
    return dict(zip(output_names(fn), results, strict=True))


def evaluate_op(op: Operation, args: list) -> tuple:
    """The result values of one op on the given operand values."""
    _load_dialect_impls()
    return tuple(IMPLS[type(op)](op, args))
