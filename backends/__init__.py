"""Targets: one folder per accelerator (eie/, later ese/), plus the code they share
(encoding.py: the relative-index sparse format; isa.py: ISA tables)."""

from __future__ import annotations

import importlib
from types import ModuleType

from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.isa import IsaTable

TARGETS = {"eie": "dlhwc.backends.eie.target", "ese": "dlhwc.backends.ese.target"}


def target(name: str) -> ModuleType:
    """The target module of ``name`` (see backends/eie/target.py for its interface)."""
    try:
        return importlib.import_module(TARGETS[name])
    except KeyError:
        raise DlhwcError(f"unknown target '{name}' (targets: {', '.join(TARGETS)})") from None


ISA_TABLES = {"eie": ("dlhwc.spec.eie.isa", "EIE_ISA"), "ese": ("dlhwc.spec.ese.isa", "ESE_ISA")}


def isa_table(name: str) -> IsaTable:
    """The ISA table of target ``name`` (module imported on first use)."""
    try:
        module, attr = ISA_TABLES[name]
    except KeyError:
        raise DlhwcError(f"unknown target '{name}' (targets: {', '.join(ISA_TABLES)})") from None
    return getattr(importlib.import_module(module), attr)
