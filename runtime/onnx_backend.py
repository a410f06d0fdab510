"""dlhwc as an `onnx.backend.base.Backend`: how dlhwc is checked against the ONNX backend tests.

The ONNX package ships a conformance suite, `onnx.backend.test.BackendTest`, that runs
its test cases (models with inputs and expected outputs: one-node models, small graphs,
PyTorch-converted modules and real networks) through any class implementing the
`onnx.backend.base.Backend` interface. `DlhwcBackend` is that class for dlhwc: `prepare`
imports the model with dlhwc's importer (`compiler.frontend.onnx_importer.import_model`)
and the returned `DlhwcBackendRep` runs the imported module in dlhwc's reference
interpreter (`runtime.interpreters.interpreter.Interpreter`), which runs its regions of
standard ONNX ops in onnxruntime, one session per region, and dlhwc's own ops on their
own implementation functions.

`KernelBackend` runs every op by itself instead, a dedicated op on its numpy kernel
(compiler/interpreters/onnx_ops.py, onnx_rnn.py): the kernels' conformance tests use it.

    from onnx.backend.test import BackendTest
    globals().update(BackendTest(DlhwcBackend, __name__).include("^test_gemm_").test_cases)

`DlhwcBackendRep.generic_ops()` lists the op types that were imported as generic
`onnx.Node` ops, which tells whether a test exercised the numpy kernels at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, Device, DeviceType, namedtupledict
from xdsl.dialects.builtin import ModuleOp

from dlhwc.compiler.frontend.onnx_importer import import_model
from dlhwc.compiler.functions import input_names, main_function, output_names
from dlhwc.compiler.interpreters.interpreter import Interpreter, check_inputs
from dlhwc.dialects import onnx as onnx_d


class DlhwcBackendRep(BackendRep):
    """A model imported into the `onnx` dialect, ready to run in the reference interpreter."""

    def __init__(self, module: ModuleOp, source: str = "<model>", per_op: bool = False):
        self.module = module
        self.source = source
        self.fn = main_function(module)
        self.input_names = input_names(self.fn)
        self.output_names = output_names(self.fn)
        self.interpreter = Interpreter(self.fn, per_op=per_op)

    def generic_ops(self) -> list[str]:
        """The `domain:op_type` of every op imported as a generic `onnx.Node`, in order."""
        return [
            f"{op.onnx_domain or 'ai.onnx'}:{op.onnx_type}"
            for op in self.module.walk()
            if isinstance(op, onnx_d.NodeOp)
        ]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Run on ``inputs`` (a mapping by input name, a sequence in input order, or one
        array); returns the outputs in graph order as a named tuple."""
        if isinstance(inputs, Mapping):
            feeds = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray) or not isinstance(inputs, Sequence):
                inputs = [inputs]
            if len(inputs) != len(self.input_names):
                raise ValueError(
                    f"{len(inputs)} inputs given, the model takes {len(self.input_names)}: "
                    f"{', '.join(self.input_names)}"
                )
            feeds = dict(zip(self.input_names, inputs, strict=True))
        results = self.interpreter.run(check_inputs(self.fn, feeds, self.source))
        # Sequences (lists) and optionals (None) keep their types.
        values = [r if isinstance(r, list) or r is None else np.asarray(r) for r in results]
        # A namedtuple class (annotated as type[tuple]): one argument per output.
        outputs = cast(Callable[..., tuple[Any, ...]], namedtupledict("Outputs", self.output_names))
        return outputs(*values)


class DlhwcBackend(Backend):
    """The ONNX backend interface over dlhwc's importer and reference interpreter (CPU only)."""

    per_op = False

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> DlhwcBackendRep:
        """Import ``model`` (checked by the ONNX checker inside the importer)."""
        if not cls.supports_device(device):
            raise ValueError(f"dlhwc's reference interpreter does not run on device {device}")
        source = model.graph.name or "<model>"
        return DlhwcBackendRep(import_model(model, source), source, per_op=cls.per_op)

    @classmethod
    def run_node(
        cls,
        node: onnx.NodeProto,
        inputs: Any,
        device: str = "CPU",
        outputs_info: Sequence[tuple[np.dtype, tuple[int, ...]]] | None = None,
        **kwargs: Any,
    ) -> tuple[Any, ...]:
        """Run one node on ``inputs`` (in the node's input order) as a one-node model."""
        arrays = [None if a is None else np.asarray(a) for a in inputs]
        names = [
            name for name, a in zip(node.input, arrays, strict=False) if name and a is not None
        ]
        present = [a for a in arrays if a is not None]
        graph_inputs = [
            onnx.helper.make_tensor_value_info(
                name, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape
            )
            for name, a in zip(names, present, strict=True)
        ]
        outputs = [o for o in node.output if o]
        if outputs_info is not None:
            graph_outputs = [
                onnx.helper.make_tensor_value_info(
                    o, onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), shape
                )
                for o, (dtype, shape) in zip(outputs, outputs_info, strict=True)
            ]
        else:  # typed by shape inference below
            graph_outputs = [onnx.helper.make_value_info(o, onnx.TypeProto()) for o in outputs]
        graph = onnx.helper.make_graph([node], node.op_type or "node", graph_inputs, graph_outputs)
        opset = kwargs.get("opset_version", onnx.defs.onnx_opset_version())
        opsets = [onnx.helper.make_opsetid("", opset)]
        if node.domain not in ("", "ai.onnx"):
            opsets.append(onnx.helper.make_opsetid(node.domain, 1))
        model = onnx.helper.make_model(graph, opset_imports=opsets)
        if outputs_info is None:
            model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
            untyped = [o.name for o in model.graph.output if not o.type.WhichOneof("value")]
            if untyped:
                raise ValueError(
                    f"shape inference cannot type output(s) {', '.join(untyped)} of "
                    f"{node.op_type}; pass outputs_info"
                )
        return cls.prepare(model, device).run(present)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        """Only the CPU: the interpreter runs numpy kernels on the host."""
        try:
            return Device(device).type == DeviceType.CPU
        except AttributeError:
            return False


class KernelBackend(DlhwcBackend):
    """`DlhwcBackend` with every op run by itself: dedicated ops on their numpy kernels."""

    per_op = True


prepare = DlhwcBackend.prepare
run_model = DlhwcBackend.run_model
run_node = DlhwcBackend.run_node
supports_device = DlhwcBackend.supports_device
