"""convert-onnx-to-dense: fully connected layers to `dense.fc`; the rest stays for the host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from dlhwc.backends.program import constant_value
from dlhwc.compiler.passes.weights import erase_weight
from dlhwc.dialects import comp
from dlhwc.dialects import onnx as onnx_d
from dlhwc.dialects.comp import value_format
from dlhwc.dialects.onnx import HOST_REASON
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.fixedpoint import FixedFormat, frac_bits_for, from_codes, to_codes
from dlhwc_dense.config import Config
from dlhwc_dense.dialect import FCOp
from dlhwc_dense.isa import ISA


@dataclass(frozen=True)
class ConvertOnnxToDensePass(ModulePass):
    """Lower each fully connected layer the dense array can run to one `dense.fc`.

    A layer is `Gemm(x, W[, b])` (alpha = beta = 1, transA = 0) or `MatMul(x, W)`, then
    optionally an `Add` of a constant bias [N] (or [1, N], or a scalar), then optionally a
    single-use `Relu`, where x is a [batch, features] activation in a fixed-point format
    (a `comp.quantize`, or an earlier layer's result), W a quantized `comp.weight` (pruned
    or shared weights are run as the dense matrix they stand for), and the result is
    quantized by a `comp.quantize` (its output format). Weights are stored [rows =
    outputs, cols = inputs]. Every other op stays, with the reason, for the host.

    The accumulator saturates once, when the layer finishes; the weight format keeps
    fewer fraction bits where needed so that its range covers the output's (a sum the
    accumulator saturates would saturate the output too) and every bias fits it.

    Options:
      hw   a TOML file of the dense machine's parameters (default: the 16 x 16 array).
    """

    name: ClassVar[str] = "convert-onnx-to-dense"

    hw: str | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        config = Config.load(self.hw) if self.hw else Config()
        for fn in op.walk():
            if isinstance(fn, func.FuncOp):
                for layer in list(fn.body.block.ops):
                    if layer.parent and isinstance(layer, onnx_d.GemmOp | onnx_d.MatMulOp):
                        _lower(layer, config)


@dataclass
class _Layer:
    x: SSAValue
    weight: comp.WeightOp
    transpose: bool  # the stored weight is [in, out]
    bias: SSAValue | None
    relu: bool
    chain: list[Operation]  # the ops replaced, in order
    quantize: comp.QuantizeOp


def _match(op: onnx_d.OnnxOp) -> _Layer | str:
    """The layer starting at ``op``, or why it stays on the host."""
    operands = list(op.operands)
    x, w, bias = operands[0], operands[1], None
    transpose = True
    if isinstance(op, onnx_d.GemmOp):
        attrs = op.onnx_attributes()
        if (
            attrs.get("transA", 0)
            or attrs.get("alpha", 1.0) != 1.0
            or attrs.get("beta", 1.0) != 1.0
        ):
            return "a Gemm with transA, alpha or beta (the array runs x @ W + b)"
        transpose = not attrs.get("transB", 0)
        if len(operands) > 2 and not isinstance(operands[2].type, onnx_d.NoneType):
            bias = operands[2]
    if not isinstance(w.owner, comp.WeightOp):
        return "its weight is not a constant matrix (the array holds its weights stationary)"
    if w.owner.fixed_format is None or len(w.owner.shape) != 2:
        return "its weight is not a quantized matrix (run quantize)"
    if not isinstance(x.type, TensorType) or len(x.type.get_shape()) != 2:
        return "its input is not a 2-D [batch, features] tensor"
    rows = w.owner.shape[1 if transpose else 0]
    chain: list[Operation] = [op]
    user = _sole_user(op.results[0])
    if bias is None and isinstance(user, onnx_d.AddOp):
        other = [v for v in user.operands if v is not chain[-1].results[0]]
        if len(other) == 1 and _is_bias(other[0], rows):
            bias = other[0]
            chain.append(user)
            user = _sole_user(user.results[0])
    if bias is not None and not _is_bias(bias, rows):
        return "its bias is not a constant vector"
    relu = isinstance(user, onnx_d.ReluOp)
    if relu:
        chain.append(user)
        user = _sole_user(user.results[0])
    if not isinstance(user, comp.QuantizeOp):
        return "its result has no fixed-point format (no comp.quantize)"
    return _Layer(x, w.owner, transpose, bias, relu, chain, user)


def _sole_user(value: SSAValue) -> Operation | None:
    uses = list(value.uses)
    return uses[0].operation if len(uses) == 1 else None


def _is_bias(value: SSAValue, rows: int) -> bool:
    if not isinstance(value.owner, onnx_d.ConstantOp | comp.WeightOp):
        return False
    shape = value.type.get_shape()
    size = int(np.prod(shape))
    return size == 1 or (size == rows and all(d == 1 for d in shape[:-1]))


def _lower(op: onnx_d.OnnxOp, config: Config) -> None:
    layer = _match(op)
    if isinstance(layer, str):
        op.attributes[HOST_REASON] = StringAttr(layer)
        return
    name = op.node_name or layer.weight.node_name or "fc"
    in_format = value_format(layer.x)
    if in_format is None:
        op.attributes[HOST_REASON] = StringAttr("its input has no fixed-point format")
        return
    out_format = layer.quantize.format.format
    for what, fmt in (("input", in_format), ("output", out_format)):
        if fmt.bits != config.act_bits:
            raise DlhwcError(
                f"layer '{name}': {what} activations are {fmt.bits}-bit, the dense array "
                f"computes on {config.act_bits}-bit ones (quantize{{act-bits={config.act_bits}}})"
            )
    w = layer.weight
    if w.fixed_format.bits > config.weight_bits:
        raise DlhwcError(
            f"layer '{name}': weights are {w.fixed_format.bits}-bit, the dense array holds "
            f"{config.weight_bits}-bit weights (quantize{{weight-bits={config.weight_bits}}})"
        )
    dense = w.dense().T if layer.transpose else w.dense()
    rows = dense.shape[0]
    bias = None
    if layer.bias is not None:
        bias = np.broadcast_to(constant_value(layer.bias).reshape(-1), (rows,)).astype(np.float32)
    if not np.all(np.isfinite(dense)) or (bias is not None and not np.all(np.isfinite(bias))):
        raise DlhwcError(f"layer '{name}': its weight or bias has NaN or infinite values")
    fmt = _weight_format(name, w.fixed_format, bias, in_format, out_format, config)
    values = from_codes(to_codes(dense, fmt), fmt)
    weight = comp.WeightOp.from_arrays(
        TensorType(w.output.type.get_element_type(), list(values.shape)), values != 0,
        values=values, fmt=fmt, node_name=w.node_name,
    )  # fmt: skip
    weight.output.name_hint = w.output.name_hint
    block = op.parent_block()
    block.insert_op_before(weight, layer.chain[0])
    bias_value = None
    if bias is not None:
        bias_op = onnx_d.ConstantOp(bias, f"{name}.bias")
        block.insert_op_before(bias_op, layer.chain[0])
        bias_value = bias_op.results[0]
    fc = FCOp(layer.x, weight.output, bias_value, layer.quantize.output.type, in_format,
              out_format, layer.relu, config.acc_bits, name)  # fmt: skip
    block.insert_op_before(fc, layer.quantize)
    fc.output.name_hint = layer.quantize.output.name_hint or layer.chain[-1].results[0].name_hint
    layer.quantize.output.replace_all_uses_with(fc.output)
    for dead in [layer.quantize, *reversed(layer.chain)]:
        dead.detach()
        dead.erase()
    for old in (w, layer.bias.owner if layer.bias is not None else None):
        if isinstance(old, Operation) and old.parent and not old.results[0].uses:
            erase_weight(old)


def _weight_format(
    name: str,
    fmt: FixedFormat,
    bias: np.ndarray | None,
    fa: FixedFormat,
    fo: FixedFormat,
    config: Config,
) -> FixedFormat:
    """The weight format the layer runs at: ``fmt`` with fewer fraction bits where the
    accumulator (frac fa + fw, `acc_bits`) could not hold the output's range, a bias,
    or where the shift fa + fw - fo would leave the `act` instruction's field."""
    shift = ISA.by_mnemonic["act"].field("shift")
    frac = min(fmt.frac, fo.frac + config.acc_bits - config.act_bits - fa.frac,
               fo.frac + shift.max - fa.frac)  # fmt: skip
    if bias is not None and np.any(bias != 0):
        frac = min(frac, frac_bits_for(float(np.abs(bias).max()), config.acc_bits) - fa.frac)
    if fa.frac + frac - fo.frac < shift.min:
        raise DlhwcError(
            f"layer '{name}': output {fo} needs {fo.frac - fa.frac - frac} more fraction bits "
            f"than input {fa} times weights fixed<{fmt.bits},{frac}> give; the shift field "
            f"reaches {shift.min}"
        )
    return FixedFormat(fmt.bits, frac)
