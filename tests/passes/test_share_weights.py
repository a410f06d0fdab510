"""The share-weights pass: codebooks, zeros, accuracy, round trip, recipes, errors."""

import numpy as np
import pytest

from dlhwc.compiler.frontend.onnx_importer import import_file
from dlhwc.compiler.interpreters.interpreter import run_module
from dlhwc.compiler.irio import module_to_string, parse_module
from dlhwc.compiler.passes.share_weights import ShareWeightsPass
from dlhwc.compiler.passes.weights import find_weights, replace_source
from dlhwc.compiler.pipeline import apply_passes, parse_pipeline
from dlhwc.compiler.plugins import available_passes
from dlhwc.dialects import comp
from dlhwc.dialects import onnx as onnx_d
from dlhwc.spec.errors import DlhwcError

MLP = "examples/models/digits_mlp.onnx"
TEST_DATA = "examples/data/digits_test.npz"


def run_pipeline(spec: str, module=None):
    module = import_file(MLP) if module is None else module
    return apply_passes(module, parse_pipeline(spec, available_passes()))


def accuracy(module) -> float:
    with np.load(TEST_DATA) as data:
        x, labels = data["input"], data["labels"]
    probs = run_module(module, {"input": x})["probabilities"]
    return float((probs.argmax(axis=1) == labels).mean())


def prune_by_hand(module, keep: float = 0.2):
    """Zero all but the largest `keep` fraction of each matrix: half of the layers as
    onnx.Constant with exact zeros, the other half as comp.weight with a mask."""
    masks = {}
    for i, slot in enumerate(find_weights(module, "matrix")):
        w = slot.value()
        mask = np.abs(w) >= np.quantile(np.abs(w), 1 - keep)
        if i % 2 == 0:
            new = onnx_d.ConstantOp(np.where(mask, w, np.float32(0)), slot.name)
        else:
            # Values kept under the mask are what counts, not their being non-zero.
            new = comp.WeightOp.from_arrays(
                slot.source.results[0].type, mask, values=np.where(mask, w, 1.0),
                node_name=slot.name,
            )  # fmt: skip
        replace_source(slot, new)
        masks[slot.layer] = mask
    return masks


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_at_most_2_to_the_bits_values_per_matrix(bits):
    module = run_pipeline(f"share-weights{{bits={bits}}}")
    slots = find_weights(module, "matrix")
    assert len(slots) == 3
    for slot in slots:
        w = slot.source
        assert isinstance(w, comp.WeightOp) and w.is_shared
        assert w.index_bits.value.data == bits
        codebook, indices = w.codebook_array(), w.indices_array()
        assert codebook.dtype == np.float32 and indices.dtype == np.uint8
        assert 1 <= codebook.size <= 2**bits and np.all(np.diff(codebook) > 0)
        assert indices.max() < codebook.size
        dense = w.dense()
        assert np.unique(dense[dense != 0]).size <= 2**bits
        # Sharing is lossy but close: at 8 bits the error is tiny.
        if bits == 8:
            original = import_file(MLP)
            ref = next(s for s in find_weights(original, "matrix") if s.layer == slot.layer)
            assert np.abs(dense - ref.value()).max() < 0.01


def test_zeros_of_constants_and_masks_of_pruned_weights_are_kept():
    module = import_file(MLP)
    masks = prune_by_hand(module)
    apply_passes(module, [ShareWeightsPass(bits=3)])
    for slot in find_weights(module, "matrix"):
        w, mask = slot.source, masks[slot.layer]
        np.testing.assert_array_equal(w.mask_array(), mask)
        dense = w.dense()
        assert np.all(dense[~mask] == 0) and np.all(dense[mask] != 0)
        assert np.all(w.indices_array()[~mask] == 0)
        assert np.unique(dense[mask]).size <= 8


def test_pruned_model_keeps_its_zeros():
    pruned = run_pipeline("prune{sparsity=0.9}")
    masks = {s.layer: s.source.mask_array() for s in find_weights(pruned, "matrix")}
    shared = run_pipeline("share-weights{bits=4}", pruned)
    for slot in find_weights(shared, "matrix"):
        np.testing.assert_array_equal(slot.source.mask_array(), masks[slot.layer])
        assert np.all(slot.value()[~masks[slot.layer]] == 0)


def test_zero_code_reserves_index_zero():
    module = import_file(MLP)
    masks = prune_by_hand(module, keep=0.3)
    apply_passes(module, [ShareWeightsPass(bits=2, zero_code=True)])
    for slot in find_weights(module, "matrix"):
        w, mask = slot.source, masks[slot.layer]
        codebook, indices = w.codebook_array(), w.indices_array()
        assert codebook[0] == 0.0 and codebook.size <= 4 and np.all(np.diff(codebook[1:]) > 0)
        assert np.all(indices[mask] >= 1) and np.all(indices[~mask] == 0)
        assert np.unique(w.dense()[mask]).size <= 3


def test_matrix_without_survivors_gets_a_zero_codebook():
    module = import_file(MLP)
    slot = find_weights(module, "matrix")[0]
    zero = np.zeros(slot.value().shape, dtype=np.float32)
    replace_source(slot, onnx_d.ConstantOp(zero, slot.name))
    for zero_code in (False, True):
        m = parse_module(module_to_string(module))
        apply_passes(m, [ShareWeightsPass(zero_code=zero_code)])
        w = find_weights(m, "matrix")[0].source
        np.testing.assert_array_equal(w.codebook_array(), [0.0])
        assert not w.mask_array().any() and not w.indices_array().any()


def test_accuracy_at_5_bits_within_1_percent():
    reference = accuracy(import_file(MLP))
    shared = run_pipeline("share-weights{bits=5}")
    assert accuracy(shared) >= reference - 0.01


def test_biases_untouched():
    original = {s.layer: s.value() for s in find_weights(import_file(MLP), "bias")}
    module = run_pipeline("share-weights")
    biases = find_weights(module, "bias")
    assert len(biases) == 3
    for slot in biases:
        assert isinstance(slot.source, onnx_d.ConstantOp)
        np.testing.assert_array_equal(slot.value(), original[slot.layer])


def test_print_parse_round_trip_and_summary():
    module = run_pipeline("share-weights{bits=4,init=density}")
    text = module_to_string(module)
    assert module_to_string(parse_module(text)) == text
    assert "// density 100.00%, 4-bit indices, 16 centroids" in text
    # The pass itself is deterministic: a second run prints the same bytes.
    assert module_to_string(run_pipeline("share-weights{bits=4,init=density}")) == text


def test_weight_names_are_kept():
    module = run_pipeline("share-weights")
    names = [s.source.node_name for s in find_weights(module, "matrix")]
    assert names == ["fc1.weight", "fc2.weight", "fc3.weight"]


@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_every_init_runs(init):
    module = run_pipeline(f"share-weights{{bits=3,init={init},seed=5}}")
    for slot in find_weights(module, "matrix"):
        assert slot.source.codebook_array().size == 8


def test_recipe_sets_bits_per_layer(tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        "[defaults]\nbits = 3\nsparsity = 0.5\n\n[layers.fc1]\nbits = 2\n\n"
        '[layers."fc3*"]\nbits = 6\ninit = "density"\n'
    )
    module = run_pipeline(f"share-weights{{bits=8,recipe={recipe}}}")
    bits = {s.layer: s.source.index_bits.value.data for s in find_weights(module, "matrix")}
    assert bits == {"fc1": 2, "fc2": 3, "fc3": 6}
    for slot in find_weights(module, "matrix"):
        dense = slot.value()
        assert np.unique(dense[dense != 0]).size <= 2 ** bits[slot.layer]


def test_option_is_the_default_below_the_recipe(tmp_path):
    recipe = tmp_path / "recipe.json"
    recipe.write_text('{"layers": {"fc2.weight": {"bits": 1}}}')
    module = run_pipeline(f"share-weights{{bits=5,recipe={recipe}}}")
    bits = [s.source.index_bits.value.data for s in find_weights(module, "matrix")]
    assert bits == [5, 1, 5]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("share-weights{bits=0}", "bits=0 is outside 1..8"),
        ("share-weights{bits=9}", "bits=9 is outside 1..8"),
        ("share-weights{init=kmeanspp}", "init='kmeanspp' is not one of linear, density, random"),
        ("share-weights{seed=-1}", "seed=-1 must be an integer >= 0"),
    ],
)
def test_option_errors(spec, message):
    with pytest.raises(DlhwcError, match="share-weights: option") as e:
        parse_pipeline(spec, available_passes())
    assert message in e.value.message
    assert "\n" not in e.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[layers.fc1]\nbits = 9\n", "layer 'fc1': bits=9 is outside 1..8"),
        ("[layers.fc1]\nbits = 2.5\n", "layer 'fc1': bits=2.5 must be an integer in 1..8"),
        ('[defaults]\ninit = "kmeans"\n', "init='kmeans' is not one of"),
        ("[layers.conv9]\nbits = 2\n", "'conv9' matches no layer"),
        ("[layers.fc1]\nbitz = 2\n", "unknown setting 'bitz'"),
    ],
)
def test_recipe_errors(tmp_path, text, message):
    recipe = tmp_path / "r.toml"
    recipe.write_text(text)
    with pytest.raises(DlhwcError) as e:
        run_pipeline(f"share-weights{{recipe={recipe}}}")
    assert message in e.value.message
    assert e.value.message.startswith(str(recipe))


def test_missing_recipe_file(tmp_path):
    with pytest.raises(DlhwcError, match="no such recipe file"):
        run_pipeline(f"share-weights{{recipe={tmp_path / 'none.toml'}}}")


def test_registered_with_documentation():
    cls = available_passes()["share-weights"]()
    assert cls is ShareWeightsPass
    assert "Deep Compression" in cls.__doc__ and "zero-code" in cls.__doc__


SHARED_SOURCE = """
builtin.module {
  func.func @main(%x: tensor<2x4xf32>) -> tensor<2x4xf32> {
    %w = onnx.Constant dense<[[1.0, 2.0, 0.0, 4.0], [5.0, 0.0, 7.0, 8.0], [0.5, 1.5, 2.5, 3.5], [9.0, 0.0, 0.0, 1.0]]> : tensor<4x4xf32> loc("w")
    %a = onnx.MatMul(%x, %w) : (tensor<2x4xf32>, tensor<4x4xf32>) -> tensor<2x4xf32> loc("mm1")
    %b = onnx.MatMul(%a, %w) : (tensor<2x4xf32>, tensor<4x4xf32>) -> tensor<2x4xf32> loc("mm2")
    func.return %b : tensor<2x4xf32>
  }
}
"""  # noqa: E501


def test_a_weight_feeding_two_layers_is_shared_once():
    module = parse_module(SHARED_SOURCE)
    apply_passes(module, [ShareWeightsPass(bits=2)])
    slots = find_weights(module, "matrix")
    assert len(slots) == 2 and slots[0].source is slots[1].source
    assert not any(isinstance(op, onnx_d.ConstantOp) for op in module.walk())
    w = slots[0].source
    assert w.node_name == "w" and np.unique(w.dense()[w.mask_array()]).size <= 4


def test_non_finite_weights_are_an_error():
    module = parse_module(SHARED_SOURCE)
    slot = find_weights(module, "matrix")[0]
    w = slot.value().copy()
    w[3, 0] = np.inf
    replace_source(slot, onnx_d.ConstantOp(w, "w"))
    with pytest.raises(DlhwcError, match="layer 'mm1': weight 'w' has non-finite values"):
        apply_passes(module, [ShareWeightsPass()])
