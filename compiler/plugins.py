"""Finding passes: dlhwc's own, `--load-pass-plugin FILE.py`, and installed packages.

A plugin file is imported as a module; every `xdsl.passes.ModulePass` subclass defined in
it (not merely imported into it) is registered under its `name`. An installed package
registers passes through the entry-point group `dlhwc.passes`: each entry point names a
`ModulePass` subclass, or a function returning an iterable of them.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from pathlib import Path

from xdsl.passes import ModulePass

from compiler.errors import DlhwcError
from compiler.passes import BUILTIN_PASSES

ENTRY_POINT_GROUP = "dlhwc.passes"


def load_plugin_file(path: str | Path) -> list[type[ModulePass]]:
    """Import the plugin ``path`` and return the passes it defines."""
    path = Path(path)
    if not path.is_file():
        raise DlhwcError("no such pass plugin file", file=str(path))
    module_name = f"dlhwc_plugin_{path.stem}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise DlhwcError("cannot import as a Python module", file=str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - any error in user code is reported as such
        line = _error_line(e, path)
        raise DlhwcError(
            f"importing the pass plugin failed: {type(e).__name__}: {e}", file=str(path), where=line
        ) from None
    passes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, ModulePass)
        and obj.__module__ == module_name
        and not inspect.isabstract(obj)
    ]
    for p in passes:
        if not isinstance(getattr(p, "name", None), str):
            raise DlhwcError(f"pass class {p.__name__} has no `name`", file=str(path))
    if not passes:
        raise DlhwcError("the pass plugin defines no ModulePass subclass", file=str(path))
    return passes


def _error_line(e: Exception, path: Path) -> str | None:
    if isinstance(e, SyntaxError) and e.lineno:
        return f"{e.lineno}:{e.offset or 1}"
    tb = e.__traceback__
    line = None
    target = path.resolve()
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == target:
            line = str(tb.tb_lineno)
        tb = tb.tb_next
    return line


def _entry_point_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    found: dict[str, Callable[[], type[ModulePass]]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as e:  # noqa: BLE001
            raise DlhwcError(f"loading pass entry point '{ep.name}' failed: {e}") from None
        classes: Iterable = [obj] if inspect.isclass(obj) else obj()
        for cls in classes:
            found[cls.name] = lambda cls=cls: cls
    return found


def available_passes(plugin_files: Iterable[str] = ()) -> dict[str, Callable[[], type[ModulePass]]]:
    """All passes by name: dlhwc's own, then entry points, then plugin files (later wins)."""
    passes = dict(BUILTIN_PASSES)
    passes.update(_entry_point_passes())
    for f in plugin_files:
        for cls in load_plugin_file(f):
            passes[cls.name] = lambda cls=cls: cls
    return passes
