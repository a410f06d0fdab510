"""Targets: one folder per accelerator (eie/, later ese/), plus the code they share
(encoding.py: the relative-index sparse format; isa.py: ISA tables)."""

from __future__ import annotations

import importlib
from types import ModuleType

from backends.isa import IsaTable
from compiler.errors import DlhwcError

TARGETS = {"eie": "backends.eie.target", "ese": "backends.ese.target"}


def target(name: str) -> ModuleType:
    """The target module of ``name`` (see backends/eie/target.py for its interface)."""
    try:
        return importlib.import_module(TARGETS[name])
    except KeyError:
        raise DlhwcError(f"unknown target '{name}' (targets: {', '.join(TARGETS)})") from None


ISA_TABLES = {"eie": ("backends.eie.isa", "EIE_ISA"), "ese": ("backends.ese.isa", "ESE_ISA")}


def isa_table(name: str) -> IsaTable:
    """The ISA table of target ``name`` (module imported on first use)."""
    try:
        module, attr = ISA_TABLES[name]
    except KeyError:
        raise DlhwcError(f"unknown target '{name}' (targets: {', '.join(ISA_TABLES)})") from None
    return getattr(importlib.import_module(module), attr)
