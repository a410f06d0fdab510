"""Typed JSON records: dataclasses that write and read themselves, checked on the way in.

A record is a dataclass subclassing `Record` whose fields are declared with `field`:
a documentation line, and for numbers a range (``ge``, ``le``), for strings the allowed
values (``choices``); a range or choice applies to every element of a list field.
Field types are the JSON ones and their compositions:

    int, float, bool, str, X | None, list[X], tuple[X, ...], tuple[X, Y], dict[str, X],
    dict (any JSON object), another Record, FixedFormat (written [bits, frac])

`to_json()` writes the fields in declaration order, leaving out the fields declared
``omit_default=True`` while they hold their default (so that a field added later keeps
the bytes of the containers that do not use it). `from_json(data, path)` reads a record
back and refuses, with one `SchemaError` naming the field path, any value of the wrong
type or out of range, a missing field and an unknown one:

    header.layers[2].rows: expected int >= 1, got "x"

after which the record's `check(path, context)` tests what involves several fields
(a column block's start before its end, a batch axis inside the shape). ``context`` is a
dict handed down to every record read (the target, the number of PEs).

A field typed with a record class that defines `resolve(context)` (an abstract layer
record) is read with the class that method returns: the target's own record.

`markdown()` is the record's reference table (field, type, meaning), from which the
hardware guides' container tables are generated (`python -m dlhwc.backends.docs`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any, ClassVar

from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.fixedpoint import MAX_BITS, FixedFormat

MISSING = dataclasses.MISSING


class SchemaError(DlhwcError):
    """A JSON value that does not fit its record; the reason starts with the field path."""


def invalid(path: str, message: str) -> SchemaError:
    return SchemaError(f"{path}: {message}")


def field(
    doc: str,
    *,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    ge: int | float | None = None,
    le: int | float | None = None,
    choices: tuple[str, ...] | None = None,
    omit_default: bool = False,
) -> Any:
    """A record field: its documentation, range or allowed values, and whether `to_json`
    leaves it out while it holds its default."""
    meta = {"doc": doc, "ge": ge, "le": le, "choices": choices, "omit": omit_default}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


@dataclasses.dataclass
class Record:
    """Base of a typed JSON record (see the module docstring)."""

    DOC_NAME: ClassVar[str] = ""
    """The record's name in the generated tables (default: the class name)."""

    def to_json(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("omit") and value == _default(f):
                continue
            out[f.name] = _dump(value)
        return out

    @classmethod
    def from_json(cls, data, path: str = "", context: dict | None = None):
        """The record of JSON ``data`` (see the module docstring); `SchemaError` otherwise."""
        context = {} if context is None else context
        path = path or cls.__name__
        resolved = cls.resolve(context)
        if resolved is None:
            target = context.get("target")
            raise invalid(path, f"no {cls.doc_name()} record is registered for target '{target}'")
        cls = resolved
        if not isinstance(data, dict):
            raise invalid(path, f"expected an object, got {_show(data)}")
        fields = dataclasses.fields(cls)
        names = {f.name for f in fields}
        unknown = sorted(str(k) for k in data if k not in names)
        if unknown:
            raise invalid(path, f"unknown field '{unknown[0]}'")
        hints = _hints(cls)
        values = {}
        for f in fields:
            if f.name not in data:
                if f.default is MISSING and f.default_factory is MISSING:
                    raise invalid(path, f"missing field '{f.name}'")
                continue
            values[f.name] = _load(hints[f.name], data[f.name], f"{path}.{f.name}", f.metadata,
                                   context)  # fmt: skip
        record = cls(**values)
        record.check(path, context)
        return record

    @classmethod
    def resolve(cls, context: dict) -> type[Record] | None:
        """The class that reads a value declared as this one: itself, unless abstract;
        None when ``context`` names none."""
        return cls

    def check(self, path: str, context: dict) -> None:
        """What involves several fields; raise `invalid(path, ...)` on a defect."""

    # -- documentation -----------------------------------------------------------------

    @classmethod
    def doc_name(cls) -> str:
        return cls.DOC_NAME or cls.__name__

    @classmethod
    def markdown(cls, context: dict | None = None) -> str:
        """The reference table of the record's fields: field, type, meaning."""
        cls = cls.resolve(context or {}) or cls
        hints = _hints(cls)
        rows = ["| field | type | meaning |", "|---|---|---|"]
        for f in dataclasses.fields(cls):
            doc = " ".join(f.metadata.get("doc", "").split())
            if f.metadata.get("omit"):
                doc += f"; left out when {_dump_text(_default(f))}"
            elif f.default is not MISSING or f.default_factory is not MISSING:
                doc += f"; optional, default {_dump_text(_default(f))}"
            kind = _type_text(hints[f.name], f.metadata, context or {}).replace("|", "\\|")
            rows.append(f"| `{f.name}` | {kind} | {doc.replace('|', chr(92) + '|')} |")
        return "\n".join(rows) + "\n"

    @classmethod
    def nested(cls, context: dict | None = None) -> list[type[Record]]:
        """This record and every record its fields hold, in order of first appearance."""
        found: list[type[Record]] = []

        def visit(tp) -> None:
            if isinstance(tp, type) and issubclass(tp, Record):
                tp = tp.resolve(context or {}) or tp
                if tp in found:
                    return
                found.append(tp)
                for hint in _hints(tp).values():
                    visit(hint)
                return
            for arg in typing.get_args(tp):
                visit(arg)

        visit(cls)
        return found


# -- reading ---------------------------------------------------------------------------


def _load(tp, value, path: str, meta, context: dict):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        if value is None:
            raise _expected(tp, value, path, meta, context)
        return _load(inner, value, path, meta, context)
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool) or not _in_range(value, meta):
            raise _expected(tp, value, path, meta, context)
        return value
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not _in_range(value, meta):
            raise _expected(tp, value, path, meta, context)
        return float(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise _expected(tp, value, path, meta, context)
        return value
    if tp is str:
        choices = meta.get("choices")
        if not isinstance(value, str) or (choices and value not in choices):
            raise _expected(tp, value, path, meta, context)
        return value
    if tp is FixedFormat:
        ok = (
            isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        )  # fmt: skip
        if not ok or not 2 <= value[0] <= MAX_BITS:
            raise _expected(tp, value, path, meta, context)
        if abs(value[1]) > 2 * value[0]:
            raise invalid(path, f"fraction bits out of range: |frac| <= 2 * bits, got {value}")
        return FixedFormat(value[0], value[1])
    if tp is dict:
        if not isinstance(value, dict):
            raise _expected(tp, value, path, meta, context)
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise _expected(tp, value, path, meta, context)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise _expected(tp, value, path, meta, context)
            kinds = args
        else:
            kinds = (args[0],) * len(value)
        items = [_load(k, v, f"{path}[{i}]", meta, context)
                 for i, (k, v) in enumerate(zip(kinds, value, strict=True))]  # fmt: skip
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise _expected(tp, value, path, meta, context)
        return {k: _load(args[1], v, f"{path}.{k}", meta, context) for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.from_json(value, path, context)
    raise TypeError(f"{path}: no JSON form for {tp!r}")


def _in_range(value, meta) -> bool:
    ge, le = meta.get("ge"), meta.get("le")
    return (ge is None or value >= ge) and (le is None or value <= le)


def _expected(tp, value, path, meta, context) -> SchemaError:
    return invalid(path, f"expected {_type_text(tp, meta, context)}, got {_show(value)}")


def _show(value) -> str:
    try:
        text = json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_text(tp, meta, context: dict) -> str:
    """How a type reads in errors and tables: ``int >= 1``, ``list of ColumnBlock``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in args if a is not type(None)]
        return f"{_type_text(inner, meta, context)} or null"
    if tp in (int, float):
        name = "int" if tp is int else "finite number"
        ge, le = meta.get("ge"), meta.get("le")
        if ge is not None and le is not None:
            return f"{name} in [{ge}, {le}]"
        if ge is not None:
            return f"{name} >= {ge}"
        if le is not None:
            return f"{name} <= {le}"
        return name
    if tp is bool:
        return "bool"
    if tp is str:
        choices = meta.get("choices")
        return "one of " + ", ".join(f'"{c}"' for c in choices) if choices else "str"
    if tp is FixedFormat:
        return f"[bits, frac] (bits in [2, {MAX_BITS}])"
    if tp is dict:
        return "object"
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        return f"list of {len(args)} {_type_text(args[0], meta, context)}"
    if origin in (list, tuple):
        return f"list of {_type_text(args[0], meta, context)}"
    if origin is dict:
        return f"object of {_type_text(args[1], meta, context)}"
    if isinstance(tp, type) and issubclass(tp, Record):
        return (tp.resolve(context) or tp).doc_name()
    return str(tp)


# -- writing ---------------------------------------------------------------------------


def _dump(value):
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, FixedFormat):
        return [value.bits, value.frac]
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _dump_text(value) -> str:
    return json.dumps(_dump(value))


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default_factory is not MISSING else f.default


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a record class (once per class)."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints
