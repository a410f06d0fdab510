"""Targets as plugins: one descriptor per accelerator, registered once.

A target is a `Target` object named by an entry point of the group `dlhwc.targets`
(as passes are named by `dlhwc.passes`). dlhwc's own targets register the same way, in
its pyproject.toml:

    [project.entry-points."dlhwc.targets"]
    eie = "dlhwc.backends.eie.target:TARGET"

and an out-of-tree target does the same in its own package (examples/targets/dense is
one); nothing in dlhwc lists targets anywhere else. The compile pipeline, the pass
table, the IR parser, the reference interpreter, the assembler, the simulators' driver
and the docs all ask this registry.

A descriptor names what the target brings:

    config      the machine's configuration class: `Config()` is the default machine,
                `Config.load(path)` reads a TOML file of overrides (spec/config.py)
    isa         its ISA table (spec/isa.py), which declares every mnemonic the
                assembler, disassembler and simulators know
    dialect     its IR dialect, named as the target (`eie`, `ese`, `dense`)
    passes      its own passes by name, the lowering among them; the lowering takes
                an `hw` option (a TOML file of config overrides)
    lowering    the name of the pass that lowers comp IR to the target's dialect
    compression the passes a model gets when `-p` is not given, and the passes the
                lowering needs (appended to a `-p` pipeline that lacks them)
    builder     `build(module, config) -> Container`: the program container of a
                module at the target's stage
    simulator   a module with `Simulator(container, source)` (`.symbols`, `.run(inputs)
                -> (outputs, stats)`), `Stats` (`.from_json`, `.format_table`, `.dumps`),
                `static_report(sim)`, `summary_line(stats)`, `placement_lines(header)`,
                `summary_lines(header)` and `numerics_warnings(stats)`
    golden      the xDSL `InterpreterFunctions` class with the reference interpreter's
                implementations of the dialect's ops (the golden model), or None
    layer_record
                the record (spec/container.py `Layer` subclass) of one layer in the
                container header's layer table, or None
    guide       the hardware guide (a Markdown file with the ISA table)

Heavy parts (dialect, passes, builder, simulator, golden) are `Ref`s: "module:attr"
strings imported on first use, so that loading the registry costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.isa import IsaTable

ENTRY_POINT_GROUP = "dlhwc.targets"


class ConfigClass(Protocol):
    """A target's configuration class: called with no arguments it is the default machine,
    and `load(path)` reads a TOML file of overrides."""

    def __call__(self) -> Any: ...

    def load(self, path: str) -> Any: ...


@dataclass(frozen=True)
class Ref:
    """A lazily imported object: ``module`` or ``module:attr.attr``."""

    path: str

    def load(self) -> Any:
        module, _, attrs = self.path.partition(":")
        obj: Any = importlib.import_module(module)
        for attr in filter(None, attrs.split(".")):
            obj = getattr(obj, attr)
        return obj


@dataclass(frozen=True)
class Target:
    """One accelerator: everything dlhwc needs to compile for it and simulate it."""

    name: str
    summary: str
    config: ConfigClass
    isa: IsaTable
    dialect: Ref
    passes: Mapping[str, Ref]
    lowering: str
    builder: Ref
    simulator: Ref
    default_passes: Callable[[Any], str]
    required_passes: Callable[[Any], list[str]] = field(default=lambda config: [])
    golden: Ref | None = None
    layer_record: type | None = None
    guide: Path | None = None

    def load_config(self, hw: str | None) -> Any:
        """The machine to compile for: the default one, or a TOML file of overrides."""
        return self.config.load(hw) if hw else self.config()

    def lowering_passes(self, hw: str | None) -> str:
        return self.lowering + (f"{{hw={hw}}}" if hw else "")

    def build(self, module: Any, config: Any) -> Any:
        return self.builder.load()(module, config)

    def simulator_module(self) -> Any:
        return self.simulator.load()


def _check(name: str, obj: object, origin: str) -> Target:
    if not isinstance(obj, Target):
        raise DlhwcError(
            f"target entry point '{name}' ({origin}) is a {type(obj).__name__}, not a Target"
        )
    if obj.name != name:
        raise DlhwcError(f"target entry point '{name}' ({origin}) names its target '{obj.name}'")
    if obj.lowering not in obj.passes:
        raise DlhwcError(
            f"target '{name}' ({origin}): its lowering '{obj.lowering}' is not among its passes"
        )
    return obj


def target_names() -> list[str]:
    """The names of the registered targets, sorted, without loading them."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


@cache
def targets() -> dict[str, Target]:
    """Every registered target by name, sorted by name."""
    found: dict[str, Target] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken plugin is the user's error
            raise DlhwcError(
                f"loading target entry point '{ep.name}' ({ep.value}) failed: "
                f"{type(e).__name__}: {' '.join(str(e).split())}"
            ) from None
        if ep.name in found:
            raise DlhwcError(f"target '{ep.name}' is registered twice")
        found[ep.name] = _check(ep.name, obj, ep.value)
    return found


def target(name: str) -> Target:
    """The registered target ``name``."""
    registered = targets()
    try:
        return registered[name]
    except KeyError:
        raise DlhwcError(
            f"unknown target '{name}' (targets: {', '.join(registered) or 'none registered'})"
        ) from None


def isa_table(name: str) -> IsaTable:
    """The ISA table of target ``name``."""
    return target(name).isa


def simulator_module(name: str, file: str | None = None) -> Any:
    """The simulator module of target ``name`` (a container's `target`, read from
    ``file``)."""
    registered = targets()
    if name not in registered:
        raise DlhwcError(
            f"no simulator for target '{name}' (targets: {', '.join(registered)})", file=file
        )
    return registered[name].simulator_module()
