"""convert-onnx-to-ese: recurrent layers (LSTM, GRU, RNN) to `ese.rnn`; the rest stays."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, FloatAttr, IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.ir import Attribute, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern
from xdsl.rewriter import InsertPoint

from dlhwc.compiler.rewriting import LoweringPattern, apply_once
from dlhwc.dialects import comp, ese
from dlhwc.dialects import onnx as onnx_d
from dlhwc.dialects.comp import value_format
from dlhwc.dialects.onnx import HOST_REASON
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.ese.config import ESEConfig
from dlhwc.spec.ese.lut import HARDWARE_ACTIVATIONS, LUT_FUNCTIONS
from dlhwc.spec.fixedpoint import FixedFormat, frac_bits_for

Recurrent = onnx_d.LSTMOp | onnx_d.GRUOp | onnx_d.RNNOp
# Ops that move or relabel elements without changing a value: a fixed-point format
# survives them.
DEFAULT_ACTIVATIONS = {
    "LSTM": ("Sigmoid", "Tanh", "Tanh"),
    "GRU": ("Sigmoid", "Tanh"),
    "RNN": ("Tanh",),
}
# The hidden state's format when the activations bound it to (-1, 1) and no comp.quantize
# gives one: all 15 bits of a 16-bit code after the point.
BOUNDED_H_FORMAT = FixedFormat(16, 15)


@dataclass(frozen=True)
class ConvertOnnxToEsePass(ModulePass):
    """Lower each LSTM, GRU and RNN that ESE can run to one `ese.rnn`.

    ESE (Han et al., FPGA 2017) runs a whole recurrent layer -- every direction, every
    time step -- in 16-bit fixed point: weights in 12-bit linear quantization, gate
    pre-activations in fixed<16, lut_in_frac>, sigmoid and tanh from piecewise-linear
    tables (runtime/ese/arith.py). An `onnx.LSTM`, `onnx.GRU` or `onnx.RNN` becomes an
    `ese.rnn` with the same operands and results when
      - W and R are quantized `comp.weight`s (run `quantize` first) of at most the
        machine's `weight_bits` (12 by default);
      - B and P, when given, are constants (`onnx.Constant` or `comp.weight`);
      - every activation is Sigmoid, Tanh or Relu (the machine's activation units;
        activation_alpha/beta do not apply to them);
      - X has a known fixed-point format: walking back from X through layout-only ops
        (Transpose, Reshape, Squeeze, Unsqueeze, Identity, Flatten) reaches a
        `comp.quantize` (its format) or an earlier `ese.rnn` (its hidden-state format).
    The hidden state's format `h_format` (16 bits) has the widest range of
      - the formats of the `comp.quantize` ops that read Y and Y_h (calibrated by
        `quantize`; they stay after the `ese.rnn`, exact no-ops when their format is
        h_format);
      - +-1, fixed<16,15>, when the activations keep |h| < 1 (LSTM: f and h Sigmoid or
        Tanh; GRU: f Sigmoid, g Sigmoid or Tanh, no initial_h; RNN: Sigmoid or Tanh), so
        that a state calibrated below 1/2 does not saturate on other data;
      - initial_h's values (its comp.quantize format, or a constant's largest value).
    Without the first two the range is unknown: an error asks for quantize with
    calibration. The activation lists are spelled out (ONNX defaults per direction: LSTM
    Sigmoid, Tanh, Tanh; GRU Sigmoid, Tanh; RNN Tanh). `cell_frac`, `lut_in_frac` and
    `lut_segments` come from the hardware configuration.

    An op that ESE cannot run for another reason (an activation it has no unit for, W or
    R not constant, B or P computed at run time, X without a fixed-point format) stays
    as it is and later runs on the host; the reason is printed to stderr and kept on the
    op as the string attribute `ese.host_reason` for placement tables. Weights that are
    not quantized, or wider than the machine's, are errors.

    Options:
      hw   a TOML file of ESE hardware parameters (default: the paper's machine).
    """

    name: ClassVar[str] = "convert-onnx-to-ese"
    # Piecewise-linear tables replace sigmoid and tanh (their error is bounded in
    # backends/ese/README.md): `verify` reports this loss rather than flags it.
    lossy: ClassVar[bool] = True

    hw: str | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        config = ESEConfig.load(self.hw) if self.hw else ESEConfig()
        apply_once(op, LowerRecurrent(config))


@dataclass
class LowerRecurrent(LoweringPattern):
    """An LSTM, GRU or RNN that ESE can run to one `ese.rnn`; any other is marked with
    why it stays on the host."""

    config: ESEConfig

    @op_type_rewrite_pattern
    def match_and_rewrite(
        self, op: onnx_d.LSTMOp | onnx_d.GRUOp | onnx_d.RNNOp, rewriter: PatternRewriter
    ) -> None:
        self.run(_lower, op, self.config, rewriter)


class _StaysOnHost(Exception):
    """Raised while matching: the op is valid ONNX that ESE cannot run."""


def _lower(op: Recurrent, config: ESEConfig, rewriter: PatternRewriter) -> None:
    kind = op.onnx_type
    name = op.node_name or kind
    try:
        properties = _properties(op, kind, name, config)
    except _StaysOnHost as e:
        op.attributes[HOST_REASON] = StringAttr(str(e))
        label = f"{kind} '{op.node_name}'" if op.node_name else kind
        print(f"dlhwc: note: {label} stays on the host: {e}", file=sys.stderr)
        return
    rnn = ese.RNNOp(list(op.operands), [r.type for r in op.results], properties, op.node_name)
    rewriter.insert(rnn, InsertPoint.before(op))
    for old, new in zip(op.results, rnn.results, strict=True):
        new.name_hint = old.name_hint
        rewriter.replace_all_uses_with(old, new)
    rewriter.erase(op)


def _properties(op: Recurrent, kind: str, name: str, config: ESEConfig) -> dict[str, Attribute]:
    """The ese.rnn properties of ``op``; raises _StaysOnHost or DlhwcError."""
    attrs = op.onnx_attributes()
    direction = str(attrs.get("direction", "forward"))
    dirs = 2 if direction == "bidirectional" else 1
    activations = _activations(attrs.get("activations"), kind, dirs)
    missing = sorted({a for a in activations if a not in HARDWARE_ACTIVATIONS})
    if missing:
        raise _StaysOnHost(
            f"activation {', '.join(missing)} has no ESE unit "
            f"(ESE has {', '.join(HARDWARE_ACTIVATIONS)})"
        )
    for index, what in ((1, "W"), (2, "R"), (3, "B"), (7, "P")):
        value = op.onnx_input(index)
        if (value is not None or index < 3) and not _is_constant(value):
            raise _StaysOnHost(f"its {what} is computed at run time (ESE preloads weights)")
    # Unquantized weights mean quantize did not run: an error, before the input format
    # (which quantize provides too) would quietly keep the op on the host.
    for value, what in ((op.W, "W"), (op.R, "R")):
        _check_weight(value.owner, what, name, config)
    x_format = value_format(op.X)
    if x_format is None:
        raise _StaysOnHost(
            "its input X has no fixed-point format (no comp.quantize or ese.rnn before it "
            "through layout-only ops)"
        )
    if x_format.bits > 16:
        raise DlhwcError(
            f"layer '{name}': its input X is {x_format}, ESE reads 16-bit activations "
            "(quantize{act-bits=16})"
        )
    hidden = attrs.get("hidden_size") or op.R.type.get_shape()[-1]
    h_format = _hidden_format(op, kind, activations, name)
    props: dict[str, Attribute] = {
        "kind": StringAttr(kind),
        "direction": StringAttr(direction),
        "hidden_size": IntegerAttr(int(hidden), i64),
        "layout": IntegerAttr(int(attrs.get("layout", 0)), i64),
        "activations": ArrayAttr([StringAttr(a) for a in activations]),
        "input_forget": IntegerAttr(int(attrs.get("input_forget", 0)), i64),
        "linear_before_reset": IntegerAttr(int(attrs.get("linear_before_reset", 0)), i64),
        # An input of fewer bits is exact in 16 bits at the same frac.
        "x_format": comp.FixedAttr.get(FixedFormat(16, x_format.frac)),
        "h_format": comp.FixedAttr.get(h_format),
        "cell_frac": IntegerAttr(config.cell_frac, i64),
        "lut_in_frac": IntegerAttr(config.lut_in_frac, i64),
        "lut_segments": IntegerAttr(config.lut_segments, i64),
    }
    clip = op.properties.get("clip")
    if isinstance(clip, FloatAttr):
        props["clip"] = clip
    return props


def _activations(names: object, kind: str, dirs: int) -> list[str]:
    """The activation list spelled out for every direction, with canonical names."""
    per_dir = len(DEFAULT_ACTIVATIONS[kind])
    if not names:
        return list(DEFAULT_ACTIVATIONS[kind]) * dirs
    names = [str(n) for n in names]  # type: ignore[union-attr]
    if dirs == 1 and len(names) == 2 * per_dir:
        # A two-direction list on a one-direction op: its first half applies (as the
        # reference kernels and onnxruntime read it; the RNN schema's default is one).
        names = names[:per_dir]
    if len(names) != per_dir * dirs:
        raise DlhwcError(
            f"{kind} needs {per_dir} activation(s) per direction for {dirs} direction(s), "
            f"got {names}"
        )
    canonical = {a.lower(): a for a in HARDWARE_ACTIVATIONS}
    return [canonical.get(n.lower(), n) for n in names]


def _is_constant(value: SSAValue | None) -> bool:
    return value is not None and isinstance(value.owner, onnx_d.ConstantOp | comp.WeightOp)


def _check_weight(owner, what: str, name: str, config: ESEConfig) -> None:
    if not isinstance(owner, comp.WeightOp) or owner.fixed_format is None:
        raise DlhwcError(
            f"layer '{name}': ESE needs quantized weights, and {what} is not quantized "
            f"(run quantize{{weight-bits={config.weight_bits}}} before convert-onnx-to-ese)"
        )
    bits = owner.fixed_format.bits
    if bits > config.weight_bits:
        raise DlhwcError(
            f"layer '{name}': {what} is {bits}-bit, the ESE machine has "
            f"{config.weight_bits}-bit weights (quantize{{weight-bits={config.weight_bits}}})"
        )


def _hidden_format(op: Recurrent, kind: str, activations: list[str], name: str) -> FixedFormat:
    """h_format: the widest range of the formats Y and Y_h are quantized to, of +-1 when
    the activations bound |h| < 1, and of initial_h; an error when none is known."""
    fracs = []
    for result in op.results[:2]:
        for use in result.uses:
            if isinstance(use.operation, comp.QuantizeOp):
                fmt = use.operation.format.format
                if fmt.bits > 16:
                    raise DlhwcError(
                        f"layer '{name}': its output is quantized to {fmt}, ESE's hidden "
                        "state is 16-bit (quantize{act-bits=16})"
                    )
                # The 16-bit format with the same range.
                fracs.append(fmt.frac + 16 - fmt.bits)
    if _bounded_by_one(op, kind, activations):
        # |h| < 1 whatever the data: a state that stayed below 1/2 on calibration data
        # must not saturate on other data (+-1 costs a bit or two, far below the tables'
        # error).
        fracs.append(BOUNDED_H_FORMAT.frac)
    if not fracs:
        raise DlhwcError(
            f"layer '{name}': the range of its hidden state is unknown (activations "
            f"{', '.join(activations)} do not bound it, and no comp.quantize reads Y or "
            "Y_h); run quantize with calibration data before convert-onnx-to-ese"
        )
    # initial_h is held in h_format too: its range must fit.
    initial = _initial_h_frac(op)
    if initial is not None:
        fracs.append(initial)
    return FixedFormat(16, min(fracs))


def _initial_h_frac(op: Recurrent) -> int | None:
    """The 16-bit frac that holds initial_h's values, if known."""
    value = op.onnx_input(5)  # initial_h
    if value is None:
        return None
    if isinstance(value.owner, onnx_d.ConstantOp | comp.WeightOp):
        array = np.asarray(
            value.owner.dense()
            if isinstance(value.owner, comp.WeightOp)
            else value.owner.to_array()
        )
        return frac_bits_for(float(np.max(np.abs(array))) if array.size else 0.0, 16)
    fmt = value_format(value)
    return None if fmt is None else fmt.frac + 16 - fmt.bits


def _bounded_by_one(op: Recurrent, kind: str, activations: list[str]) -> bool:
    per_dir = len(DEFAULT_ACTIVATIONS[kind])
    for d in range(len(activations) // per_dir):
        acts = activations[d * per_dir : (d + 1) * per_dir]
        if kind == "LSTM":
            # h = f(.) * h(c): both factors in (-1, 1).
            ok = acts[0] in LUT_FUNCTIONS and acts[2] in LUT_FUNCTIONS
        elif kind == "GRU":
            # h' = (1-z)*n + z*h is a convex combination when z is a sigmoid; it stays
            # within (-1, 1) from a zero initial state.
            ok = acts[0] == "Sigmoid" and acts[1] in LUT_FUNCTIONS and op.onnx_input(5) is None
        else:
            ok = acts[0] in LUT_FUNCTIONS
        if not ok:
            return False
    return True
