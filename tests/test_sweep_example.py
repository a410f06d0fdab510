"""examples/sweep_compression.py: the quick sweep runs, and its recipes keep accuracy.

The recipe the sweep writes (and the committed examples/recipes/digits_mlp.toml) must
parse as a prune/share-weights recipe and, applied with
`prune{recipe=...},share-weights{recipe=...},quantize`, keep the digits MLP's test
accuracy within 1 point of float (the sweep aims for 0.5 with calibrated quantize).
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from dlhwc.compiler.frontend.onnx_importer import import_file
from dlhwc.compiler.interpreters.interpreter import run_module
from dlhwc.compiler.passes.recipe import load_recipe
from dlhwc.compiler.pipeline import apply_passes, parse_pipeline
from dlhwc.compiler.plugins import available_passes

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MODEL = EXAMPLES / "models" / "digits_mlp.onnx"
TEST = EXAMPLES / "data" / "digits_test.npz"
COMMITTED = EXAMPLES / "recipes" / "digits_mlp.toml"


@pytest.fixture(scope="module")
def sweep_module():
    spec = importlib.util.spec_from_file_location(
        "sweep_compression", EXAMPLES / "sweep_compression.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def accuracy(spec: str | None) -> float:
    module = import_file(MODEL)
    if spec:
        apply_passes(module, parse_pipeline(spec, available_passes()))
    with np.load(TEST) as data:
        (probs,) = run_module(module, {"input": data["input"]}).values()
        return float(np.mean(probs.argmax(axis=-1) == data["labels"]))


def check_recipe(path: Path) -> None:
    recipe = load_recipe(str(path))
    assert set(recipe.layers) == {"fc1", "fc2", "fc3"}
    for settings in [recipe.defaults, *recipe.layers.values()]:
        assert set(settings) == {"sparsity", "bits"}
        assert 0.0 <= settings["sparsity"] < 1.0 and 1 <= settings["bits"] <= 8
    spec = f"prune{{recipe={path}}},share-weights{{recipe={path}}},quantize"
    assert accuracy(spec) >= accuracy(None) - 0.01


def test_quick_sweep_writes_a_recipe_that_keeps_accuracy(sweep_module, tmp_path, capsys):
    out = tmp_path / "recipe.toml"
    assert sweep_module.main(["--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for part in ("series bits = 3", "pruning one layer", "sharing one layer", "chosen recipe"):
        assert part in printed
    assert "not retrained" in printed
    check_recipe(out)


def test_quick_sweep_without_out_writes_nothing(sweep_module, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sweep_module, "RECIPE", tmp_path / "never.toml")
    assert sweep_module.main(["--quick"]) == 0
    assert "not written" in capsys.readouterr().out
    assert not (tmp_path / "never.toml").exists()


def test_committed_recipe_keeps_accuracy():
    check_recipe(COMMITTED)
