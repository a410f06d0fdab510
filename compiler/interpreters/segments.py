"""Host segments: how a function is cut into runs of ops that one executor runs together.

Two places cut a function's body the same way:

- the program builder (backends/program.py) cuts a target-level `@main` into the
  accelerator's ops and host segments, each exported as one ONNX model the program's
  `host` instruction runs in onnxruntime;
- the reference interpreter (interpreter.py) cuts any `@main` into dlhwc's own ops
  (comp, eie, ese: semantics only dlhwc defines) and regions of standard ONNX ops, each
  run in one onnxruntime session.

A segment is a maximal run of consecutive ops, in program order, that are neither the
caller's own ops nor data ops (constants, weights, omitted inputs: they are cloned into
every segment that reads them). Its inputs are the values its ops read from outside
(not data ops); its outputs are the values its ops produce that are used outside it,
`func.return` included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, ModuleOp, StringAttr
from xdsl.ir import Attribute, Block, Operation, SSAValue

from dlhwc.dialects import comp
from dlhwc.dialects import onnx as onnx_d

DATA_OPS = (onnx_d.ConstantOp, comp.WeightOp, onnx_d.NoValueOp)
"""Ops that hold data, not computation: cloned into the segments that read them."""


@dataclass
class Segment:
    """A run of consecutive ops that one executor runs together."""

    ops: list[Operation] = field(default_factory=list)

    def boundary(self) -> tuple[list[SSAValue], list[SSAValue]]:
        """(inputs, outputs): the values read from outside the segment (data ops aside),
        in order of first use, and the results used outside it, in program order."""
        members = set(self.ops)
        inside = {r for op in self.ops for r in op.results}
        inputs: list[SSAValue] = []
        seen: set[SSAValue] = set()
        for op in self.ops:
            for v in op.operands:
                if v in inside or v in seen or isinstance(v.owner, DATA_OPS):
                    continue
                seen.add(v)
                inputs.append(v)
        outputs: list[SSAValue] = [
            r for op in self.ops for r in op.results
            if any(u.operation not in members for u in r.uses)
        ]  # fmt: skip
        return inputs, outputs


def partition(
    block: Block,
    own: Callable[[Operation], bool],
    skip: Callable[[Operation], bool] = lambda op: False,
) -> list[Operation | Segment]:
    """The ops of ``block`` in program order: each op ``own`` accepts by itself, every
    other op in the maximal `Segment` of its neighbours. Data ops, `func.return` and
    the ops ``skip`` accepts belong to neither (and do not cut a segment)."""
    steps: list[Operation | Segment] = []
    for op in block.ops:
        if isinstance(op, (func.ReturnOp, *DATA_OPS)) or skip(op):
            continue
        if own(op):
            steps.append(op)
            continue
        segment = steps[-1] if steps else None
        if not isinstance(segment, Segment):
            segment = Segment()
            steps.append(segment)
        segment.ops.append(op)
    return steps


def segment_module(
    ops: Sequence[Operation],
    inputs: Sequence[SSAValue],
    outputs: Sequence[SSAValue],
    in_names: Sequence[str],
    out_names: Sequence[str],
    attributes: dict,
    input_types: Sequence[Attribute] | None = None,
) -> tuple[ModuleOp, dict[SSAValue, SSAValue]]:
    """A module whose `@main` runs ``ops`` from ``inputs`` to ``outputs`` (named
    ``in_names`` / ``out_names``), with the data ops they read cloned in, and the map
    from each original value to its clone. ``attributes`` are the module's (the opset
    imports and IR version the export reads); ``input_types`` replace the inputs' own
    types (the interpreter types the values the importer left untyped from their data)."""
    mapping: dict[SSAValue, SSAValue] = {}
    if input_types is None:
        input_types = [v.type for v in inputs]
    fn = func.FuncOp(
        "main",
        (list(input_types), [v.type for v in outputs]),
        arg_attrs=ArrayAttr([_name_attr(n) for n in in_names]),
        res_attrs=ArrayAttr([_name_attr(n) for n in out_names]),
    )
    body = fn.body.block
    for v, arg in zip(inputs, body.args, strict=True):
        mapping[v] = arg
    for op in ops:
        for v in op.operands:
            if v not in mapping and isinstance(v.owner, DATA_OPS):
                data = v.owner.clone()
                body.add_op(data)
                mapping[v] = data.results[0]
        clone = op.clone(value_mapper=mapping)
        body.add_op(clone)
        for old, new in zip(op.results, clone.results, strict=True):
            mapping[old] = new
    body.add_op(func.ReturnOp(*[mapping[v] for v in outputs]))
    return ModuleOp([fn], attributes=dict(attributes)), mapping


def _name_attr(name: str) -> DictionaryAttr:
    return DictionaryAttr({"onnx.name": StringAttr(name)})
