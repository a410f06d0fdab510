"""Hardware configs: a frozen dataclass with an `energy` sub-dataclass, loaded from a dict
(a container header) or a TOML file of overrides, and checked against one schema.

The schema is the dataclass itself: each field's type (int or float) and, in the config
class's `LIMITS`, its range. A bound is a number or the sum of other fields
(``"act_bits + weight_bits"``). Every energy is a finite number of picojoules in
`ENERGY_LIMITS`. Floats must be finite. A value outside its range would not fail where
it is given but later, as a division by zero in the simulator or as a silently wrong
cycle or energy figure; the check happens when the config is made, so a TOML file and a
container's header are refused with the field and the bound that was broken.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path
from typing import ClassVar, TypeVar

from dlhwc.spec.errors import DlhwcError

C = TypeVar("C")

Bound = int | float | str
ENERGY_LIMITS = (0.0, 1e9)
"""Picojoules per event: from free to a millijoule."""


class SparseMachineConfig:
    """Sizes every sparse accelerator derives the same way from its fields (num_pes,
    clock_mhz, run_bits, spmat_* and ptr_* of a frozen config dataclass), its I/O and the
    check of its fields against the schema."""

    LIMITS: ClassVar[dict[str, tuple[Bound, Bound]]] = {
        "num_pes": (1, 4096),
        "clock_mhz": (1e-3, 1e6),
        "fifo_depth": (1, 1 << 16),
        "pipeline_stages": (1, 1024),
        "spmat_sram_bytes": (1, 1 << 32),
        "spmat_entry_bits": (2, 64),
        "spmat_read_bits": (2, 4096),
        "ptr_sram_bytes": (1, 1 << 32),
        "ptr_bits": (2, 32),
        "weight_bits": (2, 32),
        "act_bits": (2, 32),
        "acc_bits": ("act_bits + weight_bits", 62),
        "dma_words_per_cycle": (1, 1 << 16),
        "host_words_per_cycle": (1, 1 << 16),
    }  # fmt: skip
    """The ranges of the fields every sparse machine has; a target adds its own."""
    """Inclusive range of every field (other than `energy`)."""

    def check_fields(self) -> None:
        """Refuse a field of the wrong type, a non-finite float, or a value out of range.

        Called first by a config's `__post_init__`, so that no config object (from a
        file, a container or code) exists with such a value.
        """
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "energy":
                for e in dataclasses.fields(value):
                    _check_value(f"energy.{e.name}", "float", getattr(value, e.name),
                                 ENERGY_LIMITS, self)  # fmt: skip
            else:
                _check_value(f.name, f.type, value, self.LIMITS.get(f.name), self)

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
    if not isinstance(data, dict):
        raise DlhwcError("the hardware config must be a table of fields", file=source)
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
        for key, value in energy.items():
            if not _is_number(value):
                raise ValueError(f"energy.{key} must be a number, got {value!r}")
        return cls(**data, energy=energy_cls(**{k: float(v) for k, v in energy.items()}))
    except (ValueError, TypeError) as e:
        raise DlhwcError(str(e), file=source) from None


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_value(name: str, kind: str, value, limits, config) -> None:
    """One field against its type and range; a `ValueError` quoting the bound otherwise."""
    if kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if kind == "float":
        if not _is_number(value):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if limits is None:
        return
    lo, hi = (_bound(b, config) for b in limits)
    if not lo[0] <= value <= hi[0]:
        raise ValueError(f"{name} must be in [{lo[1]}, {hi[1]}], got {value!r}")


def _bound(bound: Bound, config) -> tuple[float, str]:
    """(value, text) of a bound: a number, or a sum of fields shown with its value."""
    if not isinstance(bound, str):
        return bound, f"{bound:g}"
    names = [n.strip() for n in bound.split("+")]
    value = sum(getattr(config, n) for n in names)
    return value, f"{bound} = {value}"


def load_config(cls: type[C], path: str | Path) -> C:
    """A config from a TOML file of overrides of ``cls``'s defaults."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DlhwcError("no such hardware config file", file=str(path)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise DlhwcError(f"invalid TOML: {e}", file=str(path)) from None
    except RecursionError:
        raise DlhwcError("invalid TOML: it nests too deeply", file=str(path)) from None
    return config_from_dict(cls, data, str(path))
