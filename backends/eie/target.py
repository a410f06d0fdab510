"""The EIE target as the compile pipeline sees it: its passes and its back end."""

from __future__ import annotations

from dlhwc.spec.eie.config import EIEConfig
from dlhwc.spec.eie.container import EIELayer

LAYER_RECORD = EIELayer
"""The record of one layer in the container header (spec/eie/container.py)."""


def load_config(hw: str | None) -> EIEConfig:
    """The machine to compile for: the paper's, or a TOML file of overrides."""
    return EIEConfig.load(hw) if hw else EIEConfig()


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


def lowering_passes(hw: str | None) -> str:
    return "convert-onnx-to-eie" + (f"{{hw={hw}}}" if hw else "")


def build(module, config: EIEConfig):
    """The program container of an `eie`-level module."""
    from dlhwc.backends.eie.program import build_program

    return build_program(module, config)
