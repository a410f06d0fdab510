"""Per-layer compression settings from a recipe file (TOML or JSON).

    # recipe.toml
    [defaults]               # every layer
    sparsity = 0.9
    bits = 4

    [layers.fc1]             # a layer by node name, or a weight by initializer name
    sparsity = 0.8

    [layers."lstm*"]         # or a glob over those names
    bits = 6

A layer's settings are the defaults, then every matching glob in file order, then an
exact name: later entries override earlier ones, and a pass option given in `-p` is a
default below all of them. A name or glob that matches no weight of the model is an
error, as is a key no pass knows.
"""

from __future__ import annotations

import fnmatch
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.fileio import check_inputs

# Every key a recipe may set, with the pass that reads it.
KNOWN_KEYS = {
    "sparsity": "prune",
    "quality": "prune",
    "balance_pes": "prune",
    "bits": "share-weights",
    "init": "share-weights",
    "weight_bits": "quantize",
}


@dataclass
class Recipe:
    """Settings by layer pattern, read from a file."""

    path: str
    defaults: dict[str, object] = field(default_factory=dict)
    layers: dict[str, dict[str, object]] = field(default_factory=dict)

    def settings(self, keys: tuple[str, ...]) -> dict[str, object]:
        """The merged settings of the layer known by ``keys`` (layer name, weight name)."""
        merged = dict(self.defaults)
        for pattern, values in self.layers.items():
            if _is_glob(pattern) and any(fnmatch.fnmatchcase(k, pattern) for k in keys):
                merged.update(values)
        for pattern, values in self.layers.items():
            if not _is_glob(pattern) and pattern in keys:
                merged.update(values)
        return merged

    def check_names(self, names: list[str]) -> None:
        """Refuse a recipe entry that matches none of ``names``."""
        for pattern in self.layers:
            if _is_glob(pattern):
                hit = any(fnmatch.fnmatchcase(n, pattern) for n in names)
            else:
                hit = pattern in names
            if not hit:
                raise DlhwcError(
                    f"recipe entry '{pattern}' matches no layer of the model "
                    f"(layers: {', '.join(names) or 'none'})",
                    file=self.path,
                )


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def load_recipe(path: str) -> Recipe:
    """Read and check a TOML or JSON recipe."""
    p = Path(path)
    check_inputs([p])
    try:
        text = p.read_bytes()
    except FileNotFoundError:
        raise DlhwcError("no such recipe file", file=path) from None
    try:
        if p.suffix == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text.decode("utf-8"))
    except RecursionError:
        raise DlhwcError("the recipe nests too deeply", file=path) from None
    except json.JSONDecodeError as e:
        raise DlhwcError(
            f"invalid JSON: {e.msg}", file=path, where=f"{e.lineno}:{e.colno}"
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise DlhwcError(f"invalid TOML: {e}", file=path) from None
    if not isinstance(data, dict):
        raise DlhwcError("a recipe is a table with [defaults] and [layers.NAME]", file=path)
    unknown = set(data) - {"defaults", "layers"}
    if unknown:
        raise DlhwcError(
            f"unknown recipe section(s) {', '.join(sorted(unknown))} (expected defaults, layers)",
            file=path,
        )
    recipe = Recipe(path, _check_table(data.get("defaults", {}), "defaults", path))
    layers = data.get("layers", {})
    if not isinstance(layers, dict):
        raise DlhwcError("[layers] must be a table of layer names", file=path)
    for name, values in layers.items():
        recipe.layers[name] = _check_table(values, f"layers.{name}", path)
    return recipe


def _check_table(values: object, where: str, path: str) -> dict[str, object]:
    if not isinstance(values, dict):
        raise DlhwcError(f"[{where}] must be a table of settings", file=path)
    for key in values:
        if key not in KNOWN_KEYS:
            raise DlhwcError(
                f"[{where}]: unknown setting '{key}' (known: {', '.join(sorted(KNOWN_KEYS))})",
                file=path,
            )
    return dict(values)
