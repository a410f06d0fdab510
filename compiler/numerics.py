"""Which layers' fixed-point formats are at risk when they were not calibrated.

Without calibration data, `quantize` gives every activation the default format
(fixed<16,8> at 16 bits): a guess. Nothing was measured, so the best the compiler can do
is to look at the weights. For a fully connected layer y = W x + b fed inputs of unit RMS
(what a normalization layer produces), an output's RMS is about the RMS over rows of
||W_r||_2 (uncorrelated inputs), its peak a few times that. `uncalibrated_risks` names
the layers where, under that assumption,

- the peak (4x the RMS) exceeds the output format's largest value: the layer may
  saturate;
- the RMS is below 16 steps of the output format (fewer than ~4 significant bits): the
  layer's outputs may round to zero, as a classifier whose inputs are small does.

Recurrent layers are named when their input or output format is a guess, with no
estimate: their gates run through the hardware's own fixed formats.
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue

from dlhwc.compiler.passes.weights import find_weights
from dlhwc.dialects import comp
from dlhwc.dialects import onnx as onnx_d
from dlhwc.spec.fixedpoint import FixedFormat

PEAK_TO_RMS = 4.0
"""How far above its RMS a layer's largest output is taken to reach."""

UNDERFLOW_STEPS = 16
"""An output RMS below this many steps of its format counts as at risk of underflow."""


def uncalibrated_risks(module: ModuleOp) -> list[tuple[str, str]]:
    """(layer name, why) for every layer whose guessed formats look wrong for inputs of
    unit RMS (see the module docstring), in program order."""
    risks: list[tuple[str, str]] = []
    for slot in find_weights(module, role="matrix"):
        op = slot.consumer
        name = op.node_name or slot.name
        if isinstance(op, onnx_d.LSTMOp | onnx_d.GRUOp | onnx_d.RNNOp):
            if slot.operand == 1:
                risks.append((name, "recurrent layer: its input and hidden formats are guesses"))
            continue
        fmt = _output_format(op.results[0])
        if fmt is None:
            continue
        w = slot.to_rows(slot.value())[0].astype(np.float64)
        rms = float(np.sqrt(np.mean(np.sum(w * w, axis=1)))) if w.size else 0.0
        peak = PEAK_TO_RMS * rms
        if peak > fmt.max_value:
            risks.append(
                (
                    name,
                    f"may saturate: outputs reach ~{peak:.3g} for unit-RMS inputs, "
                    f"{fmt} holds +-{fmt.max_value:.3g}",
                )  # fmt: skip
            )
        elif rms < UNDERFLOW_STEPS * fmt.scale:
            risks.append(
                (
                    name,
                    f"may underflow: outputs ~{rms:.2g} RMS for unit-RMS inputs, under "
                    f"{UNDERFLOW_STEPS} steps of {fmt} ({fmt.scale:.2g})",
                )  # fmt: skip
            )
    return risks


def _output_format(value: SSAValue) -> FixedFormat | None:
    """The format the layer's result is quantized to, after its bias Add and activation."""
    from dlhwc.compiler.passes.quantize import layer_output

    for use in layer_output(value).uses:
        if isinstance(use.operation, comp.QuantizeOp):
            return use.operation.format.format
    return None


def uncalibrated_warning(module: ModuleOp) -> list[str]:
    """The lines `compile --target` prints when no activation format was calibrated (a
    comp.quantize with an overflow rate was measured); none when one was."""
    quantize_ops = [op for op in module.walk() if isinstance(op, comp.QuantizeOp)]
    if any(op.overflow_rate is not None for op in quantize_ops):
        return []
    formats = {str(op.format.format) for op in quantize_ops}
    lines = [
        "warning: no --calibration: activation formats are guesses, not measured "
        f"({', '.join(sorted(formats)) or 'none'}); compile with --calibration DATA.npz "
        "(inputs drawn like the real ones)"
    ]
    risks = uncalibrated_risks(module)
    if risks:
        lines.append("layers at risk (judged from the weights, for inputs of unit RMS):")
        lines += [f"  {name}: {why}" for name, why in risks]
    return lines
