"""Semantics of the `onnx` dialect for the reference interpreter.

Dedicated ops call their numpy kernel (onnx_ops.py, onnx_rnn.py) with the op's ONNX
attributes as keyword arguments. A generic `onnx.Node` runs in onnxruntime as a one-node
model built from the op, with the module's opset imports; its session is cached per op.
"""

from __future__ import annotations

import weakref
from typing import cast

import numpy as np
from xdsl.dialects.builtin import IntegerAttr
from xdsl.interpreter import Interpreter, InterpreterFunctions, PythonValues, impl, register_impls
from xdsl.ir import Operation

import dlhwc.compiler.interpreters.onnx_ops  # noqa: F401 - registers kernels
import dlhwc.compiler.interpreters.onnx_rnn  # noqa: F401 - registers kernels
from dlhwc.compiler.interpreters.registry import KERNELS
from dlhwc.dialects import onnx as onnx_d


def _dedicated(ft: InterpreterFunctions, interpreter: Interpreter, op: onnx_d.OnnxOp,
               args: PythonValues) -> PythonValues:  # fmt: skip
    """Call the op's numpy kernel; trailing None inputs are omitted, and outputs the
    kernel does not produce (optional ones) are None."""
    while args and args[-1] is None:
        args = args[:-1]
    outputs = tuple(KERNELS[op.onnx_type](*args, **op.onnx_attributes()))[: len(op.results)]
    return outputs + (None,) * (len(op.results) - len(outputs))


# Sessions per op and per input signature; dropped with the op.
_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _generic_node(ft: InterpreterFunctions, interpreter: Interpreter, op: onnx_d.NodeOp,
                  args: PythonValues) -> PythonValues:  # fmt: skip
    """Run the node in onnxruntime as a one-node model."""
    import onnx
    import onnxruntime as ort

    from dlhwc.compiler.frontend.onnx_exporter import node_proto, opset_imports

    present = [i for i, a in enumerate(args) if a is not None]
    own = op.node_inputs
    in_names = [f"in{i}" if args[i] is not None else "" for i in range(own)]
    # Captured values keep the ONNX names the node's subgraphs read them by.
    in_names += op.capture_names
    out_names = [
        f"out{i}" if not isinstance(r.type, onnx_d.NoneType) else ""
        for i, r in enumerate(op.results)
    ]
    key = tuple((args[i].dtype.str, args[i].ndim) for i in present)
    sessions = _SESSIONS.setdefault(op, {})
    session = sessions.get(key)
    if session is None:
        graph_inputs = [
            onnx.helper.make_tensor_value_info(
                in_names[i],
                onnx.helper.np_dtype_to_tensor_dtype(args[i].dtype),
                [None] * args[i].ndim,
            )
            for i in present
        ]
        graph_outputs = [onnx.helper.make_value_info(n, onnx.TypeProto()) for n in out_names if n]
        graph = onnx.helper.make_graph(
            [node_proto(op, in_names[:own], out_names)], "node", graph_inputs, graph_outputs
        )
        # The node sits in a function's block: the outermost object is an operation.
        module = cast(Operation, op.get_toplevel_object())
        model = onnx.helper.make_model(graph, opset_imports=opset_imports(module))
        # The importer records the model's IR version as an integer attribute.
        ir = cast(IntegerAttr | None, module.attributes.get("onnx.ir_version"))
        model.ir_version = ir.value.data if ir is not None else onnx.IR_VERSION
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        sessions[key] = session
    feeds = {in_names[i]: np.asarray(args[i], order="C") for i in present}
    produced = session.run([n for n in out_names if n], feeds)
    it = iter(produced)
    return tuple(next(it) if n else None for n in out_names)


class OnnxFunctions(InterpreterFunctions):
    """Every onnx op: a dedicated op on its numpy kernel, `onnx.Node` in onnxruntime."""

    @impl(onnx_d.ConstantOp)
    def run_constant(self, interpreter: Interpreter, op: onnx_d.ConstantOp, args: PythonValues):
        """The constant's bytes as a numpy array."""
        return (op.to_array(),)

    @impl(onnx_d.NoValueOp)
    def run_no_value(self, interpreter: Interpreter, op: onnx_d.NoValueOp, args: PythonValues):
        """An omitted input: None."""
        return (None,)

    run_node = impl(onnx_d.NodeOp)(_generic_node)


for _cls in onnx_d.DEDICATED_OPS:
    if _cls not in (onnx_d.ConstantOp, onnx_d.NoValueOp):
        setattr(OnnxFunctions, f"run_{_cls.__name__}", impl(_cls)(_dedicated))
register_impls(OnnxFunctions)
