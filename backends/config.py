"""Loading hardware configs: a frozen dataclass with an `energy` sub-dataclass, from a dict
(a container header) or a TOML file of overrides. Shared by every target."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import TypeVar

from compiler.errors import DlhwcError

C = TypeVar("C")


class SparseMachineConfig:
    """Sizes every sparse accelerator derives the same way from its fields (num_pes,
    clock_mhz, run_bits, spmat_* and ptr_* of a frozen config dataclass), and its I/O."""

    @property
    def max_run(self) -> int:
        """The largest zero run one entry can skip (15 for 4-bit runs)."""
        return (1 << self.run_bits) - 1

    @property
    def entries_per_read(self) -> int:
        return self.spmat_read_bits // self.spmat_entry_bits

    @property
    def spmat_entries(self) -> int:
        """Entries one PE's sparse-matrix SRAM holds."""
        return self.spmat_sram_bytes * 8 // self.spmat_entry_bits

    @property
    def spmat_capacity(self) -> int:
        """Entries of one column block on one PE: what the SRAM holds and the pointers
        address."""
        return min(self.spmat_entries, 1 << self.ptr_bits)

    @property
    def ptr_capacity(self) -> int:
        """Column pointers one PE holds: a column block has at most this many - 1 columns."""
        return self.ptr_sram_bytes * 8 // self.ptr_bits

    @property
    def cycle_ns(self) -> float:
        return 1000.0 / self.clock_mhz

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "<config>"):
        """A config from a dict (unknown keys are errors), e.g. a container's header."""
        return config_from_dict(cls, data, source)

    @classmethod
    def load(cls, path: str | Path):
        """A config from a TOML file of overrides."""
        return load_config(cls, path)


def config_from_dict(cls: type[C], data: dict, source: str = "<config>") -> C:
    """``cls(**data)`` with its `energy` table, refusing unknown keys and wrong types."""
    data = dict(data)
    energy = data.pop("energy", {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    energy_cls = fields["energy"].default_factory
    unknown = sorted(set(data) - set(fields) - {"energy"})
    if unknown:
        raise DlhwcError(f"unknown hardware config field(s): {', '.join(unknown)}", file=source)
    if not isinstance(energy, dict):
        raise DlhwcError("[energy] must be a table of picojoule values", file=source)
    known_e = {f.name for f in dataclasses.fields(energy_cls)}
    unknown_e = sorted(set(energy) - known_e)
    if unknown_e:
        raise DlhwcError(f"unknown [energy] field(s): {', '.join(unknown_e)}", file=source)
    try:
        for key, value in data.items():
            kind = fields[key].type
            if kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"{key} must be an integer, got {value!r}")
            if kind == "float" and not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number, got {value!r}")
        for key, value in energy.items():
            if not isinstance(value, int | float):
                raise ValueError(f"energy.{key} must be a number, got {value!r}")
        return cls(**data, energy=energy_cls(**{k: float(v) for k, v in energy.items()}))
    except (ValueError, TypeError) as e:
        raise DlhwcError(str(e), file=source) from None


def load_config(cls: type[C], path: str | Path) -> C:
    """A config from a TOML file of overrides of ``cls``'s defaults."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DlhwcError("no such hardware config file", file=str(path)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise DlhwcError(f"invalid TOML: {e}", file=str(path)) from None
    return config_from_dict(cls, data, str(path))
