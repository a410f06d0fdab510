"""The IR's functions as the rest of dlhwc sees them: a module's `@main`, and the ONNX
names of a function's inputs and outputs (the `onnx.name` argument and result
attributes the importer writes)."""

from __future__ import annotations

from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, ModuleOp, StringAttr

from dlhwc.spec.errors import DlhwcError


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


def _names(attrs: ArrayAttr[DictionaryAttr] | None, count: int, prefix: str) -> list[str]:
    names = []
    for i in range(count):
        name = None
        if attrs is not None and i < len(attrs.data):
            entry = attrs.data[i].data.get("onnx.name")
            if isinstance(entry, StringAttr):
                name = entry.data
        names.append(name or f"{prefix}{i}")
    return names
