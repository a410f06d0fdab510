"""Sweep pruning sparsity x weight-sharing bits on the digits MLP and choose a recipe.

    .venv/bin/python examples/sweep_compression.py [--quick] [--out RECIPE.toml]
        [--tolerance POINTS]

The bundled LeNet-300-100-style MLP (examples/models/digits_mlp.onnx: fc1 300x64, fc2
100x300, fc3 10x100) goes through the real passes,

    prune{sparsity=S}, share-weights{bits=B}, quantize{calibration=digits_calib.npz}, huffman

and the reference interpreter (`runtime.interpreters.interpreter.run_module`) measures
its top-1 accuracy on the test split (examples/data/digits_test.npz: "input", "labels";
450 digits, so one digit is 0.22 points). Compression rates come from the compression
ledger (compiler/compression/ledger.py): P+Q (pruning and 2^B-entry codebooks with
B-bit indices in the relative-index format) and P+Q+H (plus Huffman coding of both
streams). The script prints, in the shape of Deep Compression's figures:

1. accuracy against compression rate over the grid sparsity x bits, one series per bits
   value;
2. per-layer sensitivity: accuracy when one layer alone is pruned (the others stay
   float), and when one layer alone is shared with B bits (the others shared at 8
   bits, which is as good as float here);
3. a recipe: per-layer sparsity and bits, chosen greedily for the highest P+Q+H rate
   with accuracy within `--tolerance` points (default 0.5) of the float model. Starting
   from every layer at sparsity 0 and 8 bits, each step tries making one layer one
   level more aggressive (the next sparsity, or one bit fewer), within the levels its
   sensitivity allows, and keeps the passing move with the highest rate (moves of two
   levels are tried too, to step over a one-level dip that is noise); it stops when no
   move passes. The recipe is written as TOML for `prune{recipe=...}` and
   `share-weights{recipe=...}` (compiler/passes/recipe.py): [defaults] holds the best
   uniform setting of the grid, [layers.NAME] the chosen per-layer settings.

The model is NOT retrained after pruning or sharing (Deep Compression retrains after
each step and so keeps accuracy at 90%+ sparsity); without retraining accuracy falls
much earlier, so the sparsities here are far below the paper's. The recipe is chosen
and reported on the same test split (there is no separate validation split for this
small example), so its accuracy is an optimistic estimate. Everything is deterministic
(k-means starts from linear init, the interpreter is exact), so a rerun writes the same
file. The full run takes about 10 s (each compressed model is evaluated in ~25 ms);
`--quick` runs a smaller grid (a few seconds) and writes the recipe only when `--out` is given, so that it never replaces the
committed examples/recipes/digits_mlp.toml by accident.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout even without the editable install

from dlhwc.compiler.compression.ledger import ledger  # noqa: E402
from dlhwc.compiler.frontend.onnx_importer import import_file  # noqa: E402
from dlhwc.compiler.interpreters.interpreter import run_module  # noqa: E402
from dlhwc.compiler.pipeline import apply_passes, parse_pipeline  # noqa: E402
from dlhwc.compiler.plugins import available_passes  # noqa: E402

MODEL = ROOT / "examples" / "models" / "digits_mlp.onnx"
TEST = ROOT / "examples" / "data" / "digits_test.npz"
CALIB = ROOT / "examples" / "data" / "digits_calib.npz"
RECIPE = ROOT / "examples" / "recipes" / "digits_mlp.toml"


@dataclass(frozen=True)
class Grid:
    """The settings a run tries."""

    sparsities: tuple[float, ...]  # the accuracy/rate grid
    bits: tuple[int, ...]
    sensitivity_sparsities: tuple[float, ...]  # per-layer sensitivity
    sensitivity_bits: tuple[int, ...]
    search_sparsities: tuple[float, ...]  # the recipe search's levels, ascending
    search_bits: tuple[int, ...]  # descending (fewer bits = more aggressive)


FULL = Grid(
    sparsities=(0.0, 0.5, 0.7, 0.8, 0.9, 0.95),
    bits=(2, 3, 4, 5, 6, 8),
    sensitivity_sparsities=tuple(round(0.05 * i, 2) for i in range(2, 20)),  # 0.1 .. 0.95
    sensitivity_bits=(6, 5, 4, 3, 2),
    search_sparsities=tuple(round(0.05 * i, 2) for i in range(20)),  # 0 .. 0.95
    search_bits=(8, 7, 6, 5, 4, 3, 2),
)
QUICK = Grid(
    sparsities=(0.0, 0.5, 0.8),
    bits=(3, 5),
    sensitivity_sparsities=(0.5, 0.8),
    sensitivity_bits=(5, 3),
    search_sparsities=(0.0, 0.5, 0.7, 0.8),
    search_bits=(8, 5, 4, 3),
)

# layer -> (sparsity, bits); bits None: not shared (pruned only, float weights)
Config = dict[str, tuple[float, int | None]]


@dataclass(frozen=True)
class Result:
    accuracy: float  # top-1 on the test split, in [0, 1]
    rate_pq: float  # the ledger's total original / compressed size
    rate_pqh: float


class Sweep:
    """Runs configurations of the passes on the digits MLP and measures them."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.base = import_file(MODEL)
        self.layers = _layer_names(self.base)
        with np.load(TEST) as data:
            self.inputs, self.labels = {"input": data["input"]}, data["labels"]
        self.available = available_passes()
        self.evaluations = 0
        self._cache: dict[tuple, Result] = {}
        self.float_accuracy = self._accuracy(self.base)

    def _accuracy(self, module) -> float:
        (probs,) = run_module(module, self.inputs).values()
        return float(np.mean(np.asarray(probs).argmax(axis=-1) == self.labels))

    def run(self, config: Config, share: bool = True) -> Result:
        """Compress a fresh copy of the model with ``config`` and measure it.

        With ``share`` the pipeline is prune, share-weights, quantize (calibrated) and
        huffman; without it, prune alone.
        """
        key = (share, tuple(sorted(config.items())))
        if key not in self._cache:
            recipe = self.workdir / f"r{len(self._cache)}.toml"
            recipe.write_text(recipe_toml(config))
            spec = f"prune{{recipe={recipe}}}"
            if share:
                spec += f",share-weights{{recipe={recipe}}},quantize{{calibration={CALIB}}},huffman"
            module = self.base.clone()  # the passes replace the clone's weights, not base's
            apply_passes(module, parse_pipeline(spec, self.available))
            book = ledger(module).total
            self._cache[key] = Result(self._accuracy(module), book.rate_pq, book.rate_pqh)
            self.evaluations += 1
        return self._cache[key]

    def uniform(self, sparsity: float, bits: int | None) -> Config:
        return {layer: (sparsity, bits) for layer in self.layers}


def _layer_names(module) -> list[str]:
    from dlhwc.compiler.passes.weights import find_weights

    return [slot.layer for slot in find_weights(module, "matrix")]


def recipe_toml(config: Config, defaults: tuple[float, int | None] | None = None) -> str:
    """A recipe file for prune and share-weights (compiler/passes/recipe.py's format)."""
    lines = []
    if defaults is not None:
        lines += ["[defaults]", *_settings(*defaults), ""]
    for layer, setting in config.items():
        lines += [f"[layers.{layer}]", *_settings(*setting), ""]
    return "\n".join(lines)


def _settings(sparsity: float, bits: int | None) -> list[str]:
    out = [f"sparsity = {sparsity!r}"]
    if bits is not None:
        out.append(f"bits = {bits}")
    return out


# ---------------------------------------------------------------------------------------
# The three parts


def grid_sweep(sweep: Sweep, grid: Grid) -> dict[tuple[float, int], Result]:
    """Accuracy and rates of every uniform (sparsity, bits) of the grid."""
    return {(s, b): sweep.run(sweep.uniform(s, b)) for b in grid.bits for s in grid.sparsities}


def sensitivity(sweep: Sweep, grid: Grid) -> tuple[dict, dict]:
    """Accuracy with one layer pruned (others float), and with one layer shared with B
    bits (others shared at 8 bits, not pruned): {(layer, level): accuracy}."""
    pruned, shared = {}, {}
    for layer in sweep.layers:
        for s in grid.sensitivity_sparsities:
            config = sweep.uniform(0.0, None) | {layer: (s, None)}
            pruned[layer, s] = sweep.run(config, share=False).accuracy
        for b in grid.sensitivity_bits:
            config = sweep.uniform(0.0, 8) | {layer: (0.0, b)}
            shared[layer, b] = sweep.run(config).accuracy
    return pruned, shared


def choose_recipe(
    sweep: Sweep, grid: Grid, pruned: dict, shared: dict, tolerance: float
) -> tuple[Config, Result, list[str]]:
    """Greedy search for the highest P+Q+H rate within ``tolerance`` (a fraction).

    Each layer may only use the levels its sensitivity allows: sparsities and bits whose
    one-layer-at-a-time accuracy is within the tolerance. Returns the configuration, its
    result and a log of the steps taken.
    """
    floor = sweep.float_accuracy - tolerance - 1e-12
    limits = {}
    for layer in sweep.layers:
        # A level the sensitivity did not measure is allowed; the joint run decides.
        s_ok = [s for s in grid.search_sparsities
                if s == 0.0 or (layer, s) not in pruned or pruned[layer, s] >= floor]  # fmt: skip
        b_ok = [b for b in grid.search_bits
                if b == 8 or (layer, b) not in shared or shared[layer, b] >= floor]  # fmt: skip
        limits[layer] = (s_ok, b_ok)
    state = {layer: (0, 0) for layer in sweep.layers}  # indices into the allowed levels

    def config_of(st) -> Config:
        return {layer: (limits[layer][0][i], limits[layer][1][j]) for layer, (i, j) in st.items()}

    current = sweep.run(config_of(state))
    log = [f"start: {_describe(config_of(state))}: {_summary(current)}"]
    if current.accuracy < floor:
        log.append("the start already misses the tolerance: nothing to compress")
        return config_of(state), current, log
    while True:
        best = None
        for layer in sweep.layers:
            i, j = state[layer]
            # Two steps as well as one, so that a dip of one level (a digit or two of
            # noise on 450 test digits) does not end the search.
            for move in ((i + 1, j), (i + 2, j), (i, j + 1), (i, j + 2)):
                if move[0] >= len(limits[layer][0]) or move[1] >= len(limits[layer][1]):
                    continue
                trial = dict(state)
                trial[layer] = move
                result = sweep.run(config_of(trial))
                if result.accuracy < floor:
                    continue
                if best is None or (result.rate_pqh, result.accuracy) > (
                    best[1].rate_pqh,
                    best[1].accuracy,
                ):
                    best = (trial, result, layer)
        if best is None:
            break
        state, current, layer = best
        log.append(f"{layer} -> {_describe({layer: config_of(state)[layer]})}: {_summary(current)}")
    return config_of(state), current, log


def _describe(config: Config) -> str:
    return ", ".join(
        f"{layer} {s:g}/{b if b is not None else '-'}b" for layer, (s, b) in config.items()
    )


def _summary(r: Result) -> str:
    return f"{100 * r.accuracy:.2f}%, P+Q {r.rate_pq:.1f}x, P+Q+H {r.rate_pqh:.1f}x"


# ---------------------------------------------------------------------------------------
# Output


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a smaller grid (a few seconds)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write the recipe (default examples/recipes/digits_mlp.toml; "
        "with --quick: not written unless given)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.5,
        help="accuracy the recipe may lose against float, in points (default 0.5)",
    )
    args = p.parse_args(argv)
    out = args.out if args.out is not None or args.quick else RECIPE
    grid = QUICK if args.quick else FULL
    tolerance = args.tolerance / 100
    start = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="sweep_compression.") as tmp:
        sweep = Sweep(Path(tmp))
        fa = sweep.float_accuracy
        print(
            f"digits MLP ({', '.join(sweep.layers)}), {len(sweep.labels)} test digits; "
            f"float accuracy {100 * fa:.2f}%"
        )
        print(
            "note: the model is not retrained after pruning or sharing, so accuracy falls "
            "much earlier than in Deep Compression (which retrains)."
        )

        # 1. Accuracy against compression rate, one series per bits value.
        results = grid_sweep(sweep, grid)
        print(
            "\n1. Accuracy against compression rate: prune{sparsity=S}, share-weights{bits=B}, "
            "quantize (calibrated), huffman"
        )
        for b in grid.bits:
            print(f"\nseries bits = {b}")
            rows = []
            for s in grid.sparsities:
                r = results[s, b]
                rows.append(
                    (
                        f"{s:g}",
                        f"{100 * r.accuracy:.2f}%",
                        f"{100 * (r.accuracy - fa):+.2f}",
                        f"{r.rate_pq:.1f}x",
                        f"{r.rate_pqh:.1f}x",
                    )
                )
            _table(("sparsity", "accuracy", "vs float", "rate P+Q", "rate P+Q+H"), rows)

        # 2. Per-layer sensitivity.
        pruned, shared = sensitivity(sweep, grid)
        print("\n2. Sensitivity, one layer at a time (accuracy %)")
        print("\npruning one layer (the others float):")
        _table(
            ("layer", *(f"{s:g}" for s in grid.sensitivity_sparsities)),
            [
                (layer, *(f"{100 * pruned[layer, s]:.2f}" for s in grid.sensitivity_sparsities))
                for layer in sweep.layers
            ],
        )
        print("\nsharing one layer with B bits (the others 8-bit shared, none pruned):")
        _table(
            ("layer", *(f"{b} bits" for b in grid.sensitivity_bits)),
            [
                (layer, *(f"{100 * shared[layer, b]:.2f}" for b in grid.sensitivity_bits))
                for layer in sweep.layers
            ],
        )

        # 3. The recipe.
        config, chosen, log = choose_recipe(sweep, grid, pruned, shared, tolerance)
        passing = [(k, r) for k, r in results.items() if r.accuracy >= fa - tolerance - 1e-12]
        uniform = max(passing, key=lambda kr: (kr[1].rate_pqh, kr[1].accuracy), default=None)
        print(f"\n3. Recipe search (accuracy >= float - {args.tolerance:g} points)")
        for line in log:
            print(f"  {line}")
        print("\nchosen recipe:")
        _table(
            ("layer", "sparsity", "bits"),
            [(layer, f"{s:g}", str(b)) for layer, (s, b) in config.items()],
        )
        print(
            f"\nrecipe: accuracy {100 * chosen.accuracy:.2f}% "
            f"({100 * (chosen.accuracy - fa):+.2f} points against float {100 * fa:.2f}%), "
            f"rate P+Q {chosen.rate_pq:.1f}x, P+Q+H {chosen.rate_pqh:.1f}x"
        )
        defaults = None
        if uniform is not None:
            (s, b), r = uniform
            defaults = (s, b)
            print(
                f"best uniform setting of the grid within the tolerance: sparsity {s:g}, "
                f"{b} bits: {_summary(r)}"
            )
        print(f"({sweep.evaluations} compressed models evaluated in "
              f"{time.perf_counter() - start:.1f} s)")  # fmt: skip

    text = _recipe_file(config, chosen, defaults, fa, args.tolerance, args.quick)
    if out is None:
        print("\nrecipe (not written: --quick without --out):\n")
        print(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"\nwrote {out}")
    return 0


def _recipe_file(
    config: Config,
    chosen: Result,
    defaults: tuple[float, int | None] | None,
    float_accuracy: float,
    tolerance: float,
    quick: bool,
) -> str:
    head = [
        "# Compression recipe for examples/models/digits_mlp.onnx, written by",
        f"# examples/sweep_compression.py{' --quick' if quick else ''}: per-layer sparsity and "
        "bits with",
        f"# the highest P+Q+H rate within {tolerance:g} points of float accuracy (no retraining).",
        f"# Test accuracy {100 * chosen.accuracy:.2f}% (float {100 * float_accuracy:.2f}%), "
        f"rate P+Q {chosen.rate_pq:.1f}x, P+Q+H {chosen.rate_pqh:.1f}x with",
        "# prune and share-weights reading this file, then",
        "# quantize{calibration=examples/data/digits_calib.npz} and huffman.",
        "# [defaults]: the best uniform setting of the sweep, for layers not listed.",
        "",
    ]
    return "\n".join(head) + recipe_toml(config, defaults)


if __name__ == "__main__":
    sys.exit(main())
