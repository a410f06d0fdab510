"""The ESE target's descriptor: what dlhwc needs to compile for ESE and simulate it.

Registered through the entry-point group `dlhwc.targets` (pyproject.toml), as any
out-of-tree target is (spec/targets.py).
"""

from __future__ import annotations

from pathlib import Path

from dlhwc.spec.ese.config import ESEConfig
from dlhwc.spec.ese.container import ESELayer
from dlhwc.spec.ese.isa import ESE_ISA
from dlhwc.spec.targets import Ref, Target


def default_passes(config: ESEConfig) -> str:
    """Compression when `-p` is not given: a float model runs as it is, in the machine's
    fixed point. No weight sharing: ESE stores linear-quantized weights, not codebook
    indices."""
    return ",".join(required_passes(config))


def required_passes(config: ESEConfig) -> list[str]:
    """Passes the lowering needs; appended to a `-p` pipeline that lacks them."""
    return [f"quantize{{weight-bits={config.weight_bits} act-bits={config.act_bits}}}"]


TARGET = Target(
    name="ese",
    summary="ESE: sparse LSTM, GRU and RNN layers on a PE array (Han et al., FPGA 2017)",
    config=ESEConfig,
    isa=ESE_ISA,
    dialect=Ref("dlhwc.dialects.ese:ESE"),
    passes={"convert-onnx-to-ese": Ref("dlhwc.backends.ese.lowering:ConvertOnnxToEsePass")},
    lowering="convert-onnx-to-ese",
    builder=Ref("dlhwc.backends.ese.program:build_program"),
    simulator=Ref("dlhwc.runtime.ese.sim"),
    default_passes=default_passes,
    required_passes=required_passes,
    golden=Ref("dlhwc.backends.ese.golden:EseFunctions"),
    layer_record=ESELayer,
    guide=Path(__file__).with_name("README.md"),
)
