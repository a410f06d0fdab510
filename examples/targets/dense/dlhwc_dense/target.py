"""The dense target's descriptor, registered through the entry-point group
`dlhwc.targets` by this package's pyproject.toml: nothing in dlhwc names it."""

from __future__ import annotations

from pathlib import Path

from dlhwc.spec.targets import Ref, Target
from dlhwc_dense.config import Config
from dlhwc_dense.container import DenseLayer
from dlhwc_dense.isa import ISA


def required_passes(config: Config) -> list[str]:
    """The lowering needs fixed point at the machine's bits; nothing else (no pruning or
    weight sharing: the array multiplies every weight)."""
    return [f"quantize{{weight-bits={config.weight_bits} act-bits={config.act_bits}}}"]


TARGET = Target(
    name="dense",
    summary="a dense weight-stationary R x C MAC array (the baseline of sparse designs)",
    config=Config,
    isa=ISA,
    dialect=Ref("dlhwc_dense.dialect:DENSE"),
    passes={"convert-onnx-to-dense": Ref("dlhwc_dense.lowering:ConvertOnnxToDensePass")},
    lowering="convert-onnx-to-dense",
    builder=Ref("dlhwc_dense.program:build_program"),
    simulator=Ref("dlhwc_dense.sim"),
    default_passes=lambda config: ",".join(required_passes(config)),
    required_passes=required_passes,
    golden=Ref("dlhwc_dense.golden:DenseFunctions"),
    layer_record=DenseLayer,
    guide=Path(__file__).resolve().parent.parent / "README.md",
)
