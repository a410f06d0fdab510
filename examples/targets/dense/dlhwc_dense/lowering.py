"""convert-onnx-to-dense: fully connected layers to `dense.fc`; the rest stays for the host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType
from xdsl.ir import SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern
from xdsl.rewriter import InsertPoint

from dlhwc.backends.fc import Epilogue, check_act_bits, match_epilogue
from dlhwc.backends.program import constant_value
from dlhwc.compiler.rewriting import LoweringPattern, apply_once
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
        apply_once(op, LowerLayer(config))


@dataclass
class LowerLayer(LoweringPattern):
    """A Gemm or MatMul starting a layer the array can run, with the ops it fuses, to one
    `dense.fc`; any other such op is marked with why it stays on the host."""

    config: Config

    @op_type_rewrite_pattern
    def match_and_rewrite(
        self, op: onnx_d.GemmOp | onnx_d.MatMulOp, rewriter: PatternRewriter
    ) -> None:
        self.run(_lower, op, self.config, rewriter)


def _match(
    op: onnx_d.GemmOp | onnx_d.MatMulOp,
) -> tuple[SSAValue, comp.WeightOp, bool, Epilogue] | str:
    """The layer starting at ``op`` (x, weight, whether the weight is stored [in, out],
    the fused ops), or why it stays on the host."""
    x, w, bias, transpose = op.A, op.B, None, True
    if isinstance(op, onnx_d.GemmOp):
        attrs = op.onnx_attributes()
        if (
            attrs.get("transA", 0)
            or attrs.get("alpha", 1.0) != 1.0
            or attrs.get("beta", 1.0) != 1.0
        ):
            return "a Gemm with transA, alpha or beta (the array runs x @ W + b)"
        transpose, bias = not attrs.get("transB", 0), op.onnx_input(2)
    if not isinstance(w.owner, comp.WeightOp):
        return "its weight is not a constant matrix (the array holds its weights stationary)"
    if w.owner.fixed_format is None or len(w.owner.shape) != 2:
        return "its weight is not a quantized matrix (run quantize)"
    if not isinstance(x.type, TensorType) or len(x.type.get_shape()) != 2:
        return "its input is not a 2-D [batch, features] tensor"
    ops = match_epilogue(op, bias, w.owner.shape[1 if transpose else 0])
    return ops if isinstance(ops, str) else (x, w.owner, transpose, ops)


def _lower(op: onnx_d.GemmOp | onnx_d.MatMulOp, config: Config, rewriter: PatternRewriter) -> None:
    layer = _match(op)
    if isinstance(layer, str):
        op.attributes[HOST_REASON] = StringAttr(layer)
        return
    x, w, transpose, ops = layer
    name = op.node_name or w.node_name or "fc"
    in_format = value_format(x)
    if in_format is None:
        op.attributes[HOST_REASON] = StringAttr("its input has no fixed-point format")
        return
    out_format = ops.quantize.format.format
    check_act_bits(name, in_format, out_format, config.act_bits, "the dense array")
    if w.fixed_format.bits > config.weight_bits:
        raise DlhwcError(
            f"layer '{name}': weights are {w.fixed_format.bits}-bit, the dense array holds "
            f"{config.weight_bits}-bit weights (quantize{{weight-bits={config.weight_bits}}})"
        )
    dense = w.dense().T if transpose else w.dense()
    rows = dense.shape[0]
    bias = None
    if ops.bias is not None:
        bias = np.broadcast_to(constant_value(ops.bias).reshape(-1), (rows,)).astype(np.float32)
    if not np.all(np.isfinite(dense)) or (bias is not None and not np.all(np.isfinite(bias))):
        raise DlhwcError(f"layer '{name}': its weight or bias has NaN or infinite values")
    fmt = _weight_format(name, w.fixed_format, bias, in_format, out_format, config)
    values = from_codes(to_codes(dense, fmt), fmt)
    weight = comp.WeightOp.from_arrays(
        TensorType(w.output.type.get_element_type(), list(values.shape)), values != 0,
        values=values, fmt=fmt, node_name=w.node_name,
    )  # fmt: skip
    weight.output.name_hint = w.output.name_hint
    first = InsertPoint.before(ops.chain[0])
    rewriter.insert(weight, first)
    bias_value = None
    if bias is not None:
        bias_op = onnx_d.ConstantOp(bias, f"{name}.bias")
        rewriter.insert(bias_op, first)
        bias_value = bias_op.results[0]
    fc = FCOp(x, weight.output, bias_value, ops.quantize.output.type, in_format, out_format,
              ops.relu, config.acc_bits, name)  # fmt: skip
    rewriter.insert(fc, InsertPoint.before(ops.quantize))
    ops.replace(rewriter, fc.output, w, bias_value)


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
