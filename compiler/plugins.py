"""Finding passes: dlhwc's own, `--load-pass-plugin FILE.py`, and installed packages.

A plugin file is imported as a module; every `xdsl.passes.ModulePass` subclass defined in
it (not merely imported into it) is registered under its `name`. Importing it runs its
code with the user's rights, as `python FILE.py` would: a plugin is a program, trusted as
much as dlhwc itself. What dlhwc guards is its own report: an exception or `sys.exit` in
a plugin, at import or while its pass runs, is the plugin's error, printed as one line
naming the plugin file and line (see `plugin_error`); in dlhwc's own passes it is a bug. An installed package
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

from dlhwc.compiler.passes import dlhwc_passes
from dlhwc.spec.errors import DlhwcError

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
    except (Exception, SystemExit) as e:  # noqa: BLE001 - any error in user code is the user's
        line = _error_line(e, path)
        raise DlhwcError(
            f"importing the pass plugin failed: {_describe(e)}", file=str(path), where=line
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


OWN_PACKAGES = ("dlhwc", "xdsl")
"""Passes from these packages are dlhwc's (or xDSL's): their exceptions are bugs."""


def plugin_error(p: ModulePass, e: BaseException) -> DlhwcError | None:
    """The exception ``e`` of pass ``p`` as a one-line user error naming the plugin's file
    and line, or None if ``p`` is one of dlhwc's own passes."""
    module_name = type(p).__module__
    if module_name.split(".")[0] in OWN_PACKAGES:
        return None
    file = getattr(sys.modules.get(module_name), "__file__", None)
    where = _error_line(e, Path(file)) if file else None
    return DlhwcError(f"pass '{p.name}' failed: {_describe(e)}", file=file, where=where)


def _describe(e: BaseException) -> str:
    if isinstance(e, SystemExit):
        return f"it called sys.exit({e.code!r})"
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def _error_line(e: BaseException, path: Path) -> str | None:
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
            found[cls.name] = _loaded(cls)
    return found


def _loaded(cls: type[ModulePass]) -> Callable[[], type[ModulePass]]:
    """A pass table entry for a class that is already imported."""
    return lambda: cls


def available_passes(plugin_files: Iterable[str] = ()) -> dict[str, Callable[[], type[ModulePass]]]:
    """All passes by name: dlhwc's own and its targets', then entry points, then plugin
    files (later wins)."""
    passes = dlhwc_passes()
    passes.update(_entry_point_passes())
    for f in plugin_files:
        for cls in load_plugin_file(f):
            passes[cls.name] = _loaded(cls)
    return passes
