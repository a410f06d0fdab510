"""convert-onnx-to-eie: fully connected and convolution layers to `eie.fc`; the rest
stays for the host."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import (
    DenseArrayBase,
    Float32Type,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    UnitAttr,
    i64,
)
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern
from xdsl.rewriter import InsertPoint

from dlhwc.backends.fc import Epilogue, check_act_bits, is_constant, match_epilogue
from dlhwc.backends.program import constant_value
from dlhwc.compiler.passes.weights import PATCHES, is_conv
from dlhwc.compiler.rewriting import LoweringPattern, apply_once
from dlhwc.dialects import comp, eie
from dlhwc.dialects import onnx as onnx_d
from dlhwc.dialects.comp import value_format
from dlhwc.dialects.onnx import HOST_REASON, CancelTransposes
from dlhwc.spec.eie.config import EIEConfig
from dlhwc.spec.eie.isa import EIE_ISA
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.fixedpoint import FixedFormat, frac_bits_for, quantize

MIN_WEIGHT_BITS = 8
"""The fewest bits (sign included) the largest codebook entry may keep when the lowering
gives up weight precision to keep a layer's range inside the accumulator."""


@dataclass(frozen=True)
class ConvertOnnxToEiePass(ModulePass):
    """Lower each fully connected or convolution layer EIE can run to one `eie.fc`.

    A layer is `Gemm(x, W, b)`, `MatMul(x, W)` or `Conv(x, W, b)`, then for Gemm and
    MatMul optionally an `Add` of a constant bias, then optionally a single-use `Relu`,
    where
      - x is an activation in a fixed-point format: the result of a `comp.quantize`
        (from the `quantize` pass) or of an earlier `eie.fc`, possibly through
        layout-only ops (Transpose, Reshape, Squeeze, ...) that run on the host;
      - W is a weight-shared, quantized `comp.weight` whose codebook fits the machine's
        index bits and has the value 0.0 (the filler code; it is moved to index 0, or
        added when the codebook has room);
      - the layer's result is quantized by a `comp.quantize` (its output format).
    Weights are stored [rows = outputs, cols = inputs] (transposed when needed).

    Token-wise layers: MatMul's x may be [..., in]; every leading index is one vector
    (a Transformer's tokens, an RNN output layer's time steps), and `eie.fc` keeps the
    leading dimensions. A MatMul whose both operands are activations stays on the host.

    Gemm: alpha is folded into the codebook (rounded to the weight format), beta into
    the bias; transA=1 transposes x on the host first. The bias may be a scalar, [N],
    [1, N] or absent; it is stored as [N].

    Conv (2-D, group 1): W [out, in, kh, kw] becomes the matrix [out, in*kh*kw] that
    multiplies patch vectors. The host forms the patches, [N, Ho, Wo, in*kh*kw] in
    im2col order, with pads, strides and dilations (an `onnx.Node` Conv of group `in`
    with a one-hot kernel: every output is one input element, exactly), and they reach
    the PEs as the layer's input vectors (one `dma.in` per image, Ho*Wo vectors). A 1x1
    convolution with stride 1 and no padding needs no patches: x is only transposed to
    channels-last. The result [N, Ho, Wo, out] is transposed back to [N, out, Ho, Wo]
    on the host. Grouped (depthwise) and 1-D/3-D convolutions stay on the host.

    Every other op stays as it is and later runs on the host, in ONNX segments.

    Options:
      hw   a TOML file of EIE hardware parameters (default: the paper's machine).
    """

    name: ClassVar[str] = "convert-onnx-to-eie"

    hw: str | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        config = EIEConfig.load(self.hw) if self.hw else EIEConfig()
        apply_once(op, LowerLayer(config))
        apply_once(op, CancelTransposes())


@dataclass
class LowerLayer(LoweringPattern):
    """A Gemm, MatMul or Conv starting a layer EIE can run, with the ops it fuses, to
    one `eie.fc`; any other such op is marked with why it stays on the host."""

    config: EIEConfig

    @op_type_rewrite_pattern
    def match_and_rewrite(
        self, op: onnx_d.GemmOp | onnx_d.MatMulOp | onnx_d.NodeOp, rewriter: PatternRewriter
    ) -> None:
        if isinstance(op, onnx_d.NodeOp) and not is_conv(op):
            return
        self.run(_lower, op, self.config, rewriter)


@dataclass
class _Conv:
    """A 2-D convolution's geometry, with explicit pads [top, left, bottom, right]."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    dilations: tuple[int, int]
    out_shape: list[int]  # [N, out, Ho, Wo]
    opset: int

    @property
    def pointwise(self) -> bool:
        return self.kernel == (1, 1) and self.strides == (1, 1) and not any(self.pads)


@dataclass
class _Layer:
    x: SSAValue
    weight: comp.WeightOp
    transpose: bool  # the stored weight is [in, out]
    ops: Epilogue  # the ops fused and replaced, the bias among them
    alpha: float = 1.0
    beta: float = 1.0
    trans_a: bool = False
    conv: _Conv | None = None
    host_ops: list[Operation] = field(default_factory=list)


def _lower(op: onnx_d.OnnxOp, config: EIEConfig, rewriter: PatternRewriter) -> None:
    layer = _match(op)
    if isinstance(layer, str):
        op.attributes[HOST_REASON] = StringAttr(layer)
        return
    name = op.node_name or layer.weight.node_name or "fc"
    in_format = value_format(layer.x)
    if in_format is None:
        op.attributes[HOST_REASON] = StringAttr("its input has no fixed-point format")
        return
    ops = layer.ops
    out_format = ops.quantize.format.format
    check_act_bits(name, in_format, out_format, config.act_bits, "the EIE machine")
    rows = layer.weight.shape[0 if (layer.conv or not layer.transpose) else 1]
    bias = None
    if ops.bias is not None:
        bias = np.broadcast_to(constant_value(ops.bias).reshape(-1), (rows,)) * layer.beta
        bias = bias.astype(np.float32)
    for what, values in (("weight", layer.weight.dense()), ("bias", bias)):
        if values is not None and not np.all(np.isfinite(values)):
            tensor = layer.weight.node_name if what == "weight" else ops.bias.name_hint
            raise DlhwcError(
                f"layer '{name}': its {what} '{tensor or name}' has NaN or infinite values"
            )
    codebook, weight_format = _scaled_codebook(layer.weight, layer.alpha)
    fmt = range_safe_weight_format(
        name, codebook, weight_format, bias, in_format, out_format, config
    )
    weight = _eie_weight(layer.weight, codebook, layer, name, config, fmt)
    weight.output.name_hint = layer.weight.output.name_hint
    first = InsertPoint.before(ops.chain[0])
    rewriter.insert(weight, first)
    bias_value = ops.bias
    if bias is not None and (layer.beta != 1.0 or list(ops.bias.type.get_shape()) != [rows]):
        bias_op = onnx_d.ConstantOp(bias, f"{name}.bias")
        rewriter.insert(bias_op, first)
        bias_value = bias_op.results[0]
    x = _host_input(layer, name, rewriter)
    result_type = ops.quantize.output.type
    if layer.conv is not None:
        n, out, ho, wo = layer.conv.out_shape
        result_type = TensorType(Float32Type(), [n, ho, wo, out])
    fc = eie.FCOp(
        x, weight.output, bias_value, result_type, in_format, out_format, ops.relu,
        config.acc_bits, name,
    )  # fmt: skip
    rewriter.insert(fc, InsertPoint.before(ops.quantize))
    result = fc.output
    if layer.conv is not None:
        back = _transpose(fc.output, [0, 3, 1, 2], ops.quantize.output.type, f"{name}.nchw")
        rewriter.insert(back, InsertPoint.before(ops.quantize))
        result = back.results[0]
        hint = ops.quantize.output.name_hint or ops.chain[-1].results[0].name_hint
        fc.output.name_hint = f"{hint}_nhwc" if hint else None
    ops.replace(rewriter, result, layer.weight, bias_value)


def _scaled_codebook(w: comp.WeightOp, alpha: float) -> tuple[np.ndarray, FixedFormat | None]:
    """The codebook times Gemm's alpha, in the format that holds it (rounded to it)."""
    codebook, fmt = w.codebook_array(), w.fixed_format
    if alpha == 1.0 or fmt is None or not codebook.size:
        return codebook, fmt
    scaled = codebook.astype(np.float64) * alpha
    fmt = FixedFormat(fmt.bits, frac_bits_for(float(np.abs(scaled).max()), fmt.bits))
    return quantize(scaled, fmt), fmt


def _host_input(layer: _Layer, name: str, rewriter: PatternRewriter) -> SSAValue:
    """The value `eie.fc` reads: x, transposed for Gemm's transA, or a convolution's
    patch vectors (channels-last), made by host ops inserted before the layer."""
    x = layer.x
    first = InsertPoint.before(layer.ops.chain[0])
    if layer.trans_a:
        n_in, n_batch = x.type.get_shape()
        t = _transpose(x, [1, 0], TensorType(Float32Type(), [n_batch, n_in]), f"{name}.xT")
        rewriter.insert(t, first)
        return t.results[0]
    conv = layer.conv
    if conv is None:
        return x
    n, c, h, w = x.type.get_shape()
    _, _, ho, wo = conv.out_shape
    if conv.pointwise:
        t = _transpose(x, [0, 2, 3, 1], TensorType(Float32Type(), [n, h, w, c]), f"{name}.nhwc")
        rewriter.insert(t, first)
        return t.results[0]
    kh, kw = conv.kernel
    k = kh * kw
    # Output channel c*k + i*kw + j of group c is input channel c at kernel tap (i, j).
    onehot = np.zeros((c * k, 1, kh, kw), np.float32)
    taps = np.arange(c * k)
    onehot[taps, 0, (taps % k) // kw, taps % kw] = 1.0
    kernel = onnx_d.ConstantOp(onehot, f"{name}.patch_kernel")
    ints = lambda v: DenseArrayBase.from_list(i64, list(v))  # noqa: E731
    patches = onnx_d.NodeOp(
        "Conv", "", conv.opset, [x, kernel.results[0]],
        [TensorType(Float32Type(), [n, c * k, ho, wo])],
        {
            "group": IntegerAttr(c, i64), "kernel_shape": ints(conv.kernel),
            "strides": ints(conv.strides), "pads": ints(conv.pads),
            "dilations": ints(conv.dilations),
        },
        f"{name}.patches",
    )  # fmt: skip
    patches.attributes[PATCHES] = UnitAttr()
    t = _transpose(
        patches.results[0], [0, 2, 3, 1], TensorType(Float32Type(), [n, ho, wo, c * k]),
        f"{name}.patches_nhwc",
    )  # fmt: skip
    rewriter.insert([kernel, patches, t], first)
    if x.name_hint:
        patches.results[0].name_hint = f"{x.name_hint}_patches"
    return t.results[0]


def _transpose(value: SSAValue, perm: list[int], typ: TensorType, name: str) -> onnx_d.TransposeOp:
    return onnx_d.TransposeOp([value], [typ], {"perm": DenseArrayBase.from_list(i64, perm)}, name)


def _match(op: onnx_d.OnnxOp) -> _Layer | str:
    """The layer starting at ``op``, or why it stays on the host."""
    alpha = beta = 1.0
    trans_a = False
    conv = None
    bias = None
    if isinstance(op, onnx_d.GemmOp):
        attrs = op.onnx_attributes()
        x, w, bias = op.A, op.B, op.onnx_input(2)
        transpose = not attrs.get("transB", 0)
        trans_a = bool(attrs.get("transA", 0))
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    elif isinstance(op, onnx_d.MatMulOp):
        x, w = op.A, op.B
        transpose = True
    else:
        # Conv, a generic node: X, W and the optional B by their ONNX positions.
        x, w, bias = op.operands[0], op.operands[1], op.onnx_input(2)
        transpose = False
        conv = _conv_geometry(op, x, w)
        if isinstance(conv, str):
            return conv
    if not isinstance(w.owner, comp.WeightOp):
        if isinstance(op, onnx_d.MatMulOp) and not isinstance(w.owner, onnx_d.ConstantOp):
            return "both operands are activations (activation x activation)"
        if not is_constant(w):
            return "its weight is computed at run time (EIE preloads its weights)"
        return "its weight is not compressed (no compression pass reached it)"
    if conv is None and len(w.type.get_shape()) != 2:
        return "its weight is not a matrix"
    if not isinstance(x.type, TensorType) or len(x.type.get_shape()) < 2:
        return "its input is not a [batch, ..., features] tensor"
    if isinstance(op, onnx_d.GemmOp) and len(x.type.get_shape()) != 2:
        return "its input is not a 2-D [batch, features] tensor"
    if trans_a and x.type.get_shape()[1] >= 0:
        # x is [in, batch]: its batch must be the dynamic axis the program batches over.
        return "transA=1 with a static batch axis"
    rows = w.type.get_shape()[0 if (conv or not transpose) else 1]
    ops = match_epilogue(op, bias, rows, fuse_add=conv is None)
    if isinstance(ops, str):
        return ops
    return _Layer(x, w.owner, transpose, ops, alpha, beta, trans_a, conv)


def _conv_geometry(op: onnx_d.NodeOp, x: SSAValue, w: SSAValue) -> _Conv | str:
    """The convolution's geometry, or why EIE cannot run it."""
    attrs = op.onnx_attributes()
    w_shape = w.type.get_shape() if isinstance(w.type, TensorType) else []
    if len(w_shape) != 4:
        return f"a {max(len(w_shape) - 2, 0)}-D convolution (EIE runs 2-D ones)"
    if attrs.get("group", 1) != 1:
        return f"a grouped convolution (group {attrs['group']})"
    out = op.results[0].type
    if not isinstance(out, TensorType) or len(out.get_shape()) != 4:
        return "its output shape is unknown"
    out_shape = out.get_shape()
    x_shape = x.type.get_shape() if isinstance(x.type, TensorType) else []
    if len(x_shape) != 4 or any(d < 0 for d in [*x_shape[1:], *out_shape[1:]]):
        return "its input or output has dynamic spatial dimensions"
    kernel = tuple(attrs.get("kernel_shape") or w_shape[2:])
    strides = tuple(attrs.get("strides") or (1, 1))
    dilations = tuple(attrs.get("dilations") or (1, 1))
    pads = list(attrs.get("pads") or (0, 0, 0, 0))
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0, 0, 0, 0]
        for axis in range(2):
            total = max(
                (out_shape[2 + axis] - 1) * strides[axis]
                + (kernel[axis] - 1) * dilations[axis]
                + 1
                - x_shape[2 + axis],
                0,
            )
            small, large = total // 2, total - total // 2
            before, after = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
            pads[axis], pads[axis + 2] = before, after
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    opset = op.opset.value.data if isinstance(op, onnx_d.NodeOp) else 17
    # ONNX pads are [x1_begin, x2_begin, x1_end, x2_end].
    return _Conv(kernel, strides, tuple(pads), dilations, out_shape, opset)


def range_safe_weight_format(
    name: str,
    codebook: np.ndarray,
    weight_format: FixedFormat | None,
    bias: np.ndarray | None,
    in_format: FixedFormat,
    out_format: FixedFormat,
    config: EIEConfig,
) -> FixedFormat:
    """The weight format the layer runs at: ``weight_format`` with fewer fraction bits
    where the accumulator could not hold the layer's range otherwise.

    The accumulator holds sums at frac fa + fw in `acc_bits` and saturates once, before
    the shift to the output format (frac fo). Three bounds on fw keep that exact:
      - output: the accumulator's range covers the output format's range,
        acc_bits - 1 - (fa + fw) >= act_bits - 1 - fo. Then a sum the accumulator
        saturates would saturate the output too, so the accumulator never changes a
        result, whatever the weights' worst case (the static reach, which the program's
        layer table records as `acc_reach_bits`);
        outputs saturate only as the output format (calibrated by `quantize`) allows.
        What this bound costs is bounded too: a weight rounded to 2^-fw moves a product
        with a full-scale input by at most 2^(act_bits - 2 - (acc_bits - act_bits))
        output steps (1/4 step on the default machine);
      - shift: fa + fw - fo fits the `spmv` instruction's shift field;
      - bias: every bias fits the accumulator at frac fa + fw. A bias larger than the
        output range (one the weights' sum cancels) can force fw lower still; when the
        largest codebook entry would then keep fewer than MIN_WEIGHT_BITS bits, the
        machine cannot run the layer: an error names the accumulator width that would.
    Lowering fw rounds the codebook to the coarser grid (half to even).
    """
    if not codebook.size or weight_format is None:
        return weight_format
    if not np.all(np.isfinite(codebook)):
        raise DlhwcError(f"layer '{name}': its codebook has NaN or infinite entries")
    shift = EIE_ISA.by_mnemonic["spmv"].field("shift")
    fa, fo, fw = in_format.frac, out_format.frac, weight_format.frac
    spare = config.acc_bits - config.act_bits
    frac = min(fw, fo + spare - fa, fo + shift.max - fa)
    if bias is not None and np.any(bias != 0):
        largest_bias = float(np.abs(bias).max())
        bias_frac = frac_bits_for(largest_bias, config.acc_bits) - fa
        largest = float(np.abs(codebook).max())
        keep = frac_bits_for(largest, MIN_WEIGHT_BITS) if largest > 0 else bias_frac
        if bias_frac < min(frac, keep):
            raise DlhwcError(
                f"layer '{name}': its range needs a {config.acc_bits + keep - bias_frac}-bit "
                f"accumulator (bias up to {largest_bias:.3g} at input {in_format}, weights up "
                f"to {largest:.3g} kept to {MIN_WEIGHT_BITS} bits); the machine has "
                f"{config.acc_bits} (acc_bits in --hw)"
            )
        frac = min(frac, bias_frac)
    if fa + frac - fo < shift.min:
        raise DlhwcError(
            f"layer '{name}': output {out_format} needs {fo - fa - frac} more fraction bits "
            f"than input {in_format} times weights fixed<{weight_format.bits},{frac}> "
            f"give; the shift field reaches {shift.min}"
        )
    return FixedFormat(weight_format.bits, frac)


def _eie_weight(
    w: comp.WeightOp,
    codebook: np.ndarray,
    layer: _Layer,
    name: str,
    config: EIEConfig,
    fmt: FixedFormat,
) -> comp.WeightOp:
    """The weight as EIE stores it: [rows, cols], codebook[0] == 0.0, in ``fmt``.

    ``codebook`` is the weight's codebook (times Gemm's alpha); a convolution kernel
    [out, in, kh, kw] becomes [out, in*kh*kw].
    """
    if not w.is_shared or w.fixed_format is None:
        raise DlhwcError(
            f"layer '{name}': EIE needs shared, quantized weights (run share-weights and "
            "quantize before convert-onnx-to-eie)"
        )
    if fmt.bits > config.weight_bits:
        raise DlhwcError(
            f"layer '{name}': weights are {fmt.bits}-bit, the EIE machine has "
            f"{config.weight_bits}-bit codebook entries"
        )
    mask, indices = w.mask_array(), w.indices_array()
    if layer.conv is not None:
        mask = mask.reshape(mask.shape[0], -1)
        indices = indices.reshape(indices.shape[0], -1)
    codebook = quantize(codebook, fmt)
    # An entry that rounds to 0.0 at a coarser format prunes its weights.
    zero = codebook == 0
    if zero.any():
        mask = mask & ~zero[indices]
    zero = np.flatnonzero(codebook == 0.0)
    if zero.size:
        # Swap the zero centroid into index 0.
        perm = np.arange(len(codebook))
        perm[[0, zero[0]]] = perm[[zero[0], 0]]
        codebook = codebook[perm]
        indices = np.argsort(perm).astype(np.uint8)[indices]
    elif len(codebook) < config.codebook_entries:
        codebook = np.concatenate([[0.0], codebook]).astype(np.float32)
        indices = (indices.astype(np.int64) + 1).astype(np.uint8)
    else:
        raise DlhwcError(
            f"layer '{name}': its codebook has {len(codebook)} non-zero entries, but EIE needs "
            f"index 0 for 0.0 (the filler code) within {config.codebook_entries} entries: use "
            f"share-weights{{bits={config.index_bits} zero-code=true}}"
        )
    if len(codebook) > config.codebook_entries:
        raise DlhwcError(
            f"layer '{name}': {len(codebook)} codebook entries, the EIE machine has "
            f"{config.index_bits}-bit indices ({config.codebook_entries} entries)"
        )
    if layer.transpose and layer.conv is None:
        mask, indices = mask.T, indices.T
    indices = np.where(mask, indices, 0).astype(np.uint8)
    rows, cols = mask.shape
    return comp.WeightOp.from_arrays(
        TensorType(w.output.type.get_element_type(), [rows, cols]),
        mask,
        codebook=codebook,
        indices=indices,
        index_bits=config.index_bits,
        fmt=fmt,
        node_name=w.node_name,
    )
