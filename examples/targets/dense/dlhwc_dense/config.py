"""The dense machine's configuration: one object read by the lowering, the program
builder and the simulator, and recorded in every container (header `hw`).

An R x C grid of multiply-accumulate units (`array_rows` x `array_cols`) holds one tile
of weights stationary; activation vectors stream through it, `acc_depth` of them per
tile. Defaults: a 16 x 16 array at 800 MHz (EIE's clock, for a like-for-like
comparison), 16-bit weights and activations (EIE's too), 32-bit accumulators.

A TOML file given with `--hw FILE` overrides any field (spec/config.py reads it):

    array_rows = 32
    acc_depth = 1
    [energy]
    mac = 1.2
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

from dlhwc.spec.config import config_from_dict, load_config


@dataclass(frozen=True)
class Energy:
    """Energy per event, in picojoules (Horowitz, 45 nm, as EIE's table)."""

    mac: float = 0.95  # 16x16-bit multiply (~0.8), 32-bit add (0.1), two PE registers
    weight_read: float = 2.5  # one 16-bit weight from the weight SRAM (half a 32-bit read)
    act_read: float = 2.5  # one 16-bit element from the activation buffer
    act_write: float = 2.5  # one 16-bit element into the activation buffer
    acc_access: float = 5.0  # one 32-bit accumulator read or write (a 32-bit SRAM access)
    dram_word: float = 640.0  # one 32-bit DRAM word moved by DMA
    host_word: float = 640.0  # one 32-bit word crossing to or from the host


@dataclass(frozen=True)
class Config:
    """Parameters of the modeled dense weight-stationary array."""

    array_rows: int = 16  # R: inputs per tile (activations enter on the left edge)
    array_cols: int = 16  # C: outputs per tile (partial sums leave at the bottom)
    clock_mhz: float = 800.0
    weight_bits: int = 16
    act_bits: int = 16
    acc_bits: int = 32  # sums are exact and saturate once, to acc_bits, in `act`
    acc_depth: int = 256  # vectors of partial sums per array column: a tile's reuse
    weight_sram_bytes: int = 256 * 1024  # holds one layer's tiles, at least
    act_buffer_entries: int = 4096  # the longest activation vector a buffer holds
    dma_words_per_cycle: int = 4  # 32-bit words per cycle between DRAM and the chip
    host_words_per_cycle: int = 1  # 32-bit words per cycle between host and chip
    energy: Energy = field(default_factory=Energy)

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "array_rows": (1, 4096), "array_cols": (1, 4096), "clock_mhz": (1e-3, 1e6),
        "weight_bits": (2, 32), "act_bits": (2, 32), "acc_bits": (2, 62),
        "acc_depth": (1, 1 << 24), "weight_sram_bytes": (1, 1 << 40),
        "act_buffer_entries": (1, 1 << 24), "dma_words_per_cycle": (1, 1 << 16),
        "host_words_per_cycle": (1, 1 << 16),
    }  # fmt: skip
    """Each field's range: beyond them a size would overflow or a rate divide by zero."""

    def __post_init__(self):
        for name, (lo, hi) in self.LIMITS.items():
            value = getattr(self, name)
            kind = int if isinstance(self.__dataclass_fields__[name].default, int) else float
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or (kind is int and not isinstance(value, int)):
                raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}")
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ValueError(f"{name} must be in [{lo:g}, {hi:g}], got {value!r}")
        if self.acc_bits < self.act_bits + self.weight_bits:
            raise ValueError("acc_bits must be at least act_bits + weight_bits")
        if self.act_bits + self.weight_bits + self.act_buffer_entries.bit_length() > 63:
            # The simulator's exact int64 sums of a vector's products.
            raise ValueError("act_bits + weight_bits + log2(act_buffer_entries) must be <= 62")
        for e in dataclasses.fields(self.energy):
            value = getattr(self.energy, e.name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and 0 <= value <= 1e9):
                raise ValueError(f"energy.{e.name} must be in [0, 1e9] pJ, got {value!r}")

    @property
    def cycle_ns(self) -> float:
        return 1000.0 / self.clock_mhz

    @property
    def macs(self) -> int:
        """Multiply-accumulate units of the array."""
        return self.array_rows * self.array_cols

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "<config>") -> Config:
        """A config from a container header's `hw` (unknown keys are errors)."""
        return config_from_dict(cls, data, source)

    @classmethod
    def load(cls, path) -> Config:
        """A config from a TOML file of overrides."""
        return load_config(cls, path)
