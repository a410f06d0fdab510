"""The EIE target's descriptor: what dlhwc needs to compile for EIE and simulate it.

Registered through the entry-point group `dlhwc.targets` (pyproject.toml), as any
out-of-tree target is (spec/targets.py).
"""

from __future__ import annotations

from pathlib import Path

from dlhwc.spec.eie.config import EIEConfig
from dlhwc.spec.eie.container import EIELayer
from dlhwc.spec.eie.isa import EIE_ISA
from dlhwc.spec.targets import Ref, Target


def default_passes(config: EIEConfig) -> str:
    """Compression when `-p` is not given: a float model runs as it is, weight-shared at
    the machine's index bits (index 0 reserved for the filler zero) in its fixed point."""
    return ",".join(required_passes(config))


def required_passes(config: EIEConfig) -> list[str]:
    """Passes the lowering needs; appended to a `-p` pipeline that lacks them."""
    return [
        f"share-weights{{bits={config.index_bits} zero-code=true}}",
        f"quantize{{weight-bits={config.weight_bits} act-bits={config.act_bits}}}",
    ]


TARGET = Target(
    name="eie",
    summary="EIE: sparse fully connected layers on a PE array (Han et al., ISCA 2016)",
    config=EIEConfig,
    isa=EIE_ISA,
    dialect=Ref("dlhwc.dialects.eie:EIE"),
    passes={"convert-onnx-to-eie": Ref("dlhwc.backends.eie.lowering:ConvertOnnxToEiePass")},
    lowering="convert-onnx-to-eie",
    builder=Ref("dlhwc.backends.eie.program:build_program"),
    simulator=Ref("dlhwc.runtime.eie.sim"),
    default_passes=default_passes,
    required_passes=required_passes,
    golden=Ref("dlhwc.backends.eie.golden:EieFunctions"),
    layer_record=EIELayer,
    guide=Path(__file__).with_name("README.md"),
)
