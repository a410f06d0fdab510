"""Targets: one folder per accelerator (eie/, later ese/), plus the code they share
(encoding.py: the relative-index sparse format; isa.py: ISA tables)."""

from __future__ import annotations

import importlib
from types import ModuleType

from compiler.errors import DlhwcError

TARGETS = {"eie": "backends.eie.target"}


def target(name: str) -> ModuleType:
    """The target module of ``name`` (see backends/eie/target.py for its interface)."""
    try:
        return importlib.import_module(TARGETS[name])
    except KeyError:
        raise DlhwcError(f"unknown target '{name}' (targets: {', '.join(TARGETS)})") from None
