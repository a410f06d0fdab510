"""convert-onnx-to-eie: fully connected layers to `eie.fc`; the rest stays for the host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from backends.eie.config import EIEConfig
from backends.eie.isa import EIE_ISA
from backends.program import constant_value
from compiler.errors import DlhwcError
from compiler.passes.weights import erase_weight
from dialects import comp, eie
from dialects import onnx as onnx_d
from dialects.comp import value_format
from dialects.onnx import HOST_REASON
from runtime.fixedpoint import FixedFormat, frac_bits_for, quantize

_ACTIVATIONS = (onnx_d.ReluOp,)

MIN_WEIGHT_BITS = 8
"""The fewest bits (sign included) the largest codebook entry may keep when the lowering
gives up weight precision to keep a layer's range inside the accumulator."""


@dataclass(frozen=True)
class ConvertOnnxToEiePass(ModulePass):
    """Lower each fully connected layer EIE can run to one `eie.fc`.

    A layer is `Gemm(x, W, b)` (transA=0, alpha=beta=1) or `MatMul(x, W)` followed by an
    `Add` of a constant bias, then optionally a single-use `Relu`, where
      - x is a 2-D activation [batch, in] in a fixed-point format: the result of a
        `comp.quantize` (from the `quantize` pass) or of an earlier `eie.fc`, possibly
        through layout-only ops (Transpose, Reshape, Squeeze, ...) that run on the host;
      - W is a weight-shared, quantized `comp.weight` whose codebook fits the machine's
        index bits and has the value 0.0 (the filler code; it is moved to index 0, or
        added when the codebook has room);
      - the layer's result is quantized by a `comp.quantize` (its output format).
    Weights are stored [rows = outputs, cols = inputs] (transposed when needed).

    Every other op stays as it is and later runs on the host, in ONNX segments.

    Options:
      hw   a TOML file of EIE hardware parameters (default: the paper's machine).
    """

    name: ClassVar[str] = "convert-onnx-to-eie"

    hw: str | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        config = EIEConfig.load(self.hw) if self.hw else EIEConfig()
        for fn in op.walk():
            if isinstance(fn, func.FuncOp):
                for layer in list(fn.body.block.ops):
                    if isinstance(layer, onnx_d.GemmOp | onnx_d.MatMulOp) and layer.parent:
                        _lower(layer, config)


@dataclass
class _Layer:
    x: SSAValue
    weight: comp.WeightOp
    transpose: bool
    bias: SSAValue | None
    relu: bool
    chain: list[Operation]  # the ops replaced, in order
    quantize: comp.QuantizeOp


def _lower(op: onnx_d.OnnxOp, config: EIEConfig) -> None:
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
                f"layer '{name}': {what} activations are {fmt.bits}-bit, the EIE machine "
                f"computes on {config.act_bits}-bit activations (quantize{{act-bits={config.act_bits}}})"
            )
    bias = None if layer.bias is None else constant_value(layer.bias).reshape(-1)
    for what, values in (("weight", layer.weight.dense()), ("bias", bias)):
        if values is not None and not np.all(np.isfinite(values)):
            tensor = layer.weight.node_name if what == "weight" else layer.bias.name_hint
            raise DlhwcError(
                f"layer '{name}': its {what} '{tensor or name}' has NaN or infinite values"
            )
    fmt = range_safe_weight_format(
        name, layer.weight.codebook_array(), layer.weight.fixed_format, bias, in_format,
        out_format, config,
    )  # fmt: skip
    weight = _eie_weight(layer.weight, layer.transpose, name, config, fmt)
    weight.output.name_hint = layer.weight.output.name_hint
    block = op.parent_block()
    block.insert_op_before(weight, layer.chain[0])
    fc = eie.FCOp(
        layer.x, weight.output, layer.bias, layer.quantize.output.type, in_format, out_format,
        layer.relu, config.acc_bits, name,
    )  # fmt: skip
    block.insert_op_before(fc, layer.quantize)
    fc.output.name_hint = layer.quantize.output.name_hint or layer.chain[-1].results[0].name_hint
    layer.quantize.output.replace_all_uses_with(fc.output)
    for dead in [layer.quantize, *reversed(layer.chain)]:
        dead.detach()
        dead.erase()
    if not layer.weight.output.uses:
        erase_weight(layer.weight)


def _match(op: onnx_d.OnnxOp) -> _Layer | None:
    operands = list(op.operands)
    if isinstance(op, onnx_d.GemmOp):
        attrs = op.onnx_attributes()
        if (
            attrs.get("transA", 0)
            or attrs.get("alpha", 1.0) != 1.0
            or attrs.get("beta", 1.0) != 1.0
        ):
            return "transA, alpha or beta differ from EIE's y = Wx + b"
        x, w = operands[0], operands[1]
        transpose = not attrs.get("transB", 0)
        bias = (
            operands[2]
            if len(operands) > 2 and not isinstance(operands[2].type, onnx_d.NoneType)
            else None
        )
    else:
        x, w = operands
        transpose, bias = True, None
    problem = _weight_problem(w)
    if problem:
        return problem
    if not isinstance(x.type, TensorType) or len(x.type.get_shape()) != 2:
        return "its input is not a 2-D [batch, features] tensor"
    chain: list[Operation] = [op]
    value = op.results[0]
    rows = w.type.get_shape()[0 if not transpose else 1]
    user = _sole_user(value)
    if bias is None and isinstance(user, onnx_d.AddOp):
        other = user.operands[1] if user.operands[0] is value else user.operands[0]
        if _is_constant(other) and _bias_shape_ok(other, rows):
            bias, value = other, user.results[0]
            chain.append(user)
            user = _sole_user(value)
    if bias is not None and not (_is_constant(bias) and _bias_shape_ok(bias, rows)):
        return "its bias is not a constant vector"
    relu = False
    if isinstance(user, _ACTIVATIONS):
        relu, value = True, user.results[0]
        chain.append(user)
        user = _sole_user(value)
    if not isinstance(user, comp.QuantizeOp):
        return "its result has no fixed-point format (no comp.quantize)"
    return _Layer(x, w.owner, transpose, bias, relu, chain, user)


def _weight_problem(w: SSAValue) -> str | None:
    """Why ``w`` cannot be an EIE matrix (the host reason), or None when it can."""
    if not _is_constant(w):
        return "its weight is computed at run time (EIE preloads its weights)"
    if not isinstance(w.type, TensorType) or len(w.type.get_shape()) != 2:
        return f"its weight is not a matrix ({w.type})"
    if not isinstance(w.owner, comp.WeightOp):
        return "its weight is not compressed (no compression pass reached it)"
    return None


def _sole_user(value: SSAValue) -> Operation | None:
    uses = list(value.uses)
    return uses[0].operation if len(uses) == 1 else None


def _is_constant(value: SSAValue) -> bool:
    return isinstance(value.owner, onnx_d.ConstantOp | comp.WeightOp)


def _bias_shape_ok(value: SSAValue, rows: int) -> bool:
    shape = value.type.get_shape()
    return int(np.prod(shape)) == rows and all(d == 1 for d in shape[:-1])


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
    w: comp.WeightOp, transpose: bool, name: str, config: EIEConfig, fmt: FixedFormat
) -> comp.WeightOp:
    """The weight as EIE stores it: [rows, cols], codebook[0] == 0.0, in ``fmt``."""
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
    mask, codebook, indices = w.mask_array(), w.codebook_array(), w.indices_array()
    codebook = quantize(codebook, fmt)
    # An entry that rounds to 0.0 at a coarser format prunes its weights.
    mask = mask & (codebook[indices] != 0)
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
    if transpose:
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
