"""The ESE target as the compile pipeline sees it: its passes and its back end."""

from __future__ import annotations

from dlhwc.spec.ese.config import ESEConfig
from dlhwc.spec.ese.container import ESELayer

LAYER_RECORD = ESELayer
"""The record of one layer in the container header (spec/ese/container.py)."""


def load_config(hw: str | None) -> ESEConfig:
    """The machine to compile for: the paper's, or a TOML file of overrides."""
    return ESEConfig.load(hw) if hw else ESEConfig()


def default_passes(config: ESEConfig) -> str:
    """Compression when `-p` is not given: a float model runs as it is, in the machine's
    fixed point. No weight sharing: ESE stores linear-quantized weights, not codebook
    indices."""
    return ",".join(required_passes(config))


def required_passes(config: ESEConfig) -> list[str]:
    """Passes the lowering needs; appended to a `-p` pipeline that lacks them."""
    return [f"quantize{{weight-bits={config.weight_bits} act-bits={config.act_bits}}}"]


def lowering_passes(hw: str | None) -> str:
    return "convert-onnx-to-ese" + (f"{{hw={hw}}}" if hw else "")


def build(module, config: ESEConfig):
    """The program container of an `ese`-level module."""
    from dlhwc.backends.ese.program import build_program

    return build_program(module, config)
