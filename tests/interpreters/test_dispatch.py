"""The interpreter's op implementations are xDSL `InterpreterFunctions`: dlhwc's own
(comp, onnx) and every registered target's golden model, dispatched by xDSL."""

from __future__ import annotations

from dataclasses import replace
from importlib.metadata import EntryPoint

import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, f32
from xdsl.interpreter import InterpreterFunctions
from xdsl.irdl import IRDLOperation, irdl_op_definition, operand_def, result_def

from dlhwc.backends.eie.target import TARGET as EIE_TARGET
from dlhwc.compiler.interpreters import interpreter as interp
from dlhwc.compiler.interpreters.comp import CompFunctions
from dlhwc.compiler.interpreters.onnx import OnnxFunctions
from dlhwc.spec import targets as registry
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.targets import Ref

NOT_FUNCTIONS = replace(EIE_TARGET, name="npu", golden=Ref("numpy:add"))


@irdl_op_definition
class NoSemanticsOp(IRDLOperation):
    name = "test.no_semantics"
    x = operand_def()
    y = result_def()


def test_every_registered_golden_model_is_dispatched_by_xdsl():
    found = interp.functions()
    assert all(isinstance(f, InterpreterFunctions) for f in found)
    kinds = {type(f).__name__ for f in found}
    assert {"CompFunctions", "OnnxFunctions", "EieFunctions", "EseFunctions"} <= kinds
    assert isinstance(found[0], CompFunctions) and isinstance(found[1], OnnxFunctions)


def test_an_op_without_semantics_is_one_line():
    t = TensorType(f32, [2])
    fn = func.FuncOp("main", ([t], [t]))
    op = NoSemanticsOp.create(operands=[fn.body.block.args[0]], result_types=[t])
    fn.body.block.add_ops([op, func.ReturnOp(op.results[0])])
    ModuleOp([fn])
    with pytest.raises(DlhwcError) as info:
        interp.Interpreter(fn).run([np.zeros(2, np.float32)])
    assert str(info.value) == "the reference interpreter has no semantics for test.no_semantics"


def test_a_golden_model_that_is_not_interpreter_functions(monkeypatch):
    point = EntryPoint("npu", "tests.interpreters.test_dispatch:NOT_FUNCTIONS",
                       registry.ENTRY_POINT_GROUP)  # fmt: skip
    real = registry.entry_points
    monkeypatch.setattr(registry, "entry_points", lambda group: [*real(group=group), point])
    registry.targets.cache_clear()
    interp.functions.cache_clear()
    interp.dispatcher.cache_clear()
    try:
        with pytest.raises(DlhwcError) as info:
            interp.functions()
        assert str(info.value) == (
            "target 'npu': its golden model numpy:add is not an xDSL InterpreterFunctions class"
        )
    finally:
        monkeypatch.undo()
        registry.targets.cache_clear()
        interp.functions.cache_clear()
        interp.dispatcher.cache_clear()
