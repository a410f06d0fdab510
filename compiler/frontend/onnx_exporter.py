"""`onnx` dialect -> ONNX protos (the inverse of the importer, where one is needed).

Used to run generic `onnx.Node` ops on the host as one-node models.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import AttributeProto, numpy_helper
from xdsl.dialects.builtin import (
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    TensorType,
    UnrankedTensorType,
)
from xdsl.ir import Attribute

from dialects import onnx as onnx_d


def attribute_proto(name: str, attr: Attribute) -> AttributeProto:
    """The ONNX attribute ``name`` with the value of builtin attribute ``attr``."""
    if isinstance(attr, onnx_d.ProtoAttr):
        proto = AttributeProto.FromString(bytes.fromhex(attr.hex.data))
        proto.name = name
        return proto
    if isinstance(attr, DenseIntOrFPElementsAttr):
        return onnx.helper.make_attribute(
            name, numpy_helper.from_array(np.array(onnx_d.array_from_dense(attr)))
        )
    if isinstance(attr, DenseArrayBase):
        values = list(attr.get_values())
        is_int = not isinstance(attr.elt_type, onnx_d.AnyFloat)
        kind = AttributeProto.INTS if is_int else AttributeProto.FLOATS
        return onnx.helper.make_attribute(name, values, attr_type=kind)
    if isinstance(attr, IntegerAttr | FloatAttr | StringAttr):
        return onnx.helper.make_attribute(name, onnx_d.attr_to_python(attr))
    value = onnx_d.attr_to_python(attr)
    if isinstance(value, list) and not value:
        return onnx.helper.make_attribute(name, value, attr_type=AttributeProto.STRINGS)
    return onnx.helper.make_attribute(name, value)


def type_proto(typ: Attribute) -> onnx.TypeProto:
    """The ONNX type of an IR value type (ranked or unranked tensors)."""
    if isinstance(typ, TensorType):
        dtype = onnx_d.numpy_dtype(typ.get_element_type())
        shape = [d if d >= 0 else None for d in typ.get_shape()]
        return onnx.helper.make_tensor_type_proto(
            onnx.helper.np_dtype_to_tensor_dtype(dtype), shape
        )
    if isinstance(typ, UnrankedTensorType):
        dtype = onnx_d.numpy_dtype(typ.element_type)
        return onnx.helper.make_tensor_type_proto(onnx.helper.np_dtype_to_tensor_dtype(dtype), None)
    raise ValueError(f"type {typ} has no ONNX tensor type")


def node_proto(op: onnx_d.OnnxOp, inputs: list[str], outputs: list[str]) -> onnx.NodeProto:
    """The ONNX node of ``op`` with the given input and output tensor names."""
    attrs = op.attrs.data if isinstance(op, onnx_d.NodeOp) and op.attrs else {}
    if not isinstance(op, onnx_d.NodeOp):
        attrs = op.properties
    node = onnx.helper.make_node(
        op.onnx_type, inputs, outputs, name=op.node_name or "", domain=op.onnx_domain or None
    )
    node.attribute.extend(attribute_proto(k, v) for k, v in sorted(attrs.items()))
    return node


def opset_imports(module) -> list[onnx.OperatorSetIdProto]:
    """The opset imports recorded on a module by the importer."""
    table = module.attributes.get("onnx.opset_import")
    if table is None:
        return [onnx.helper.make_opsetid("", onnx.defs.onnx_opset_version())]
    return [
        onnx.helper.make_opsetid("" if d == "ai.onnx" else d, v.value.data)
        for d, v in table.data.items()
    ]
