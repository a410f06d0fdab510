"""The prune pass: target sparsity, threshold rule, load balance, recipes, errors."""

import json

import numpy as np
import pytest

from dlhwc.compiler.frontend.onnx_importer import import_file
from dlhwc.compiler.passes.prune import PrunePass
from dlhwc.compiler.passes.weights import find_weights
from dlhwc.compiler.pipeline import apply_passes, parse_pipeline
from dlhwc.compiler.plugins import available_passes
from dlhwc.dialects import comp
from dlhwc.spec.errors import DlhwcError

MLP = "examples/models/digits_mlp.onnx"
LSTM = "examples/models/digits_lstm.onnx"


def pruned(model: str, spec: str):
    module = import_file(model)
    return apply_passes(module, parse_pipeline(spec, available_passes()))


def matrices(module):
    return [(s, s.to_rows(s.source.mask_array())) for s in find_weights(module, "matrix")]


def test_target_sparsity_gives_density_per_matrix():
    for slot, masks in matrices(pruned(MLP, "prune{sparsity=0.9}")):
        for mask in masks:
            assert abs(mask.mean() - 0.1) <= 0.005, slot.layer


def test_pruned_weights_are_the_smallest():
    module = import_file(MLP)
    original = {s.layer: s.value() for s in find_weights(module, "matrix")}
    apply_passes(module, [PrunePass(sparsity=0.5)])
    for slot in find_weights(module, "matrix"):
        w, mask = original[slot.layer], slot.source.mask_array()
        assert np.abs(w[mask]).min() >= np.abs(w[~mask]).max()
        np.testing.assert_array_equal(slot.value(), np.where(mask, w, 0))


def test_quality_threshold_rule():
    module = import_file(MLP)
    original = {s.layer: s.value() for s in find_weights(module, "matrix")}
    apply_passes(module, [PrunePass(quality=1.0)])
    for slot in find_weights(module, "matrix"):
        w = original[slot.layer]
        np.testing.assert_array_equal(slot.source.mask_array(), np.abs(w) > np.std(w))


@pytest.mark.parametrize("pes", [1, 4, 7, 64])
def test_balance_pes_gives_equal_nonzeros_per_pe(pes):
    module = pruned(MLP, f"prune{{sparsity=0.9,balance-pes={pes}}}")
    for slot, masks in matrices(module):
        mask = masks[0]
        per_pe = np.bincount(np.arange(mask.shape[0]) % pes, weights=mask.sum(axis=1))
        busy = per_pe[: min(pes, mask.shape[0])]
        assert len(set(busy.tolist())) == 1, (slot.layer, busy)
        assert abs(mask.mean() - 0.1) <= 0.02, slot.layer


def test_recurrent_matrices_are_pruned_per_direction():
    module = pruned(LSTM, "prune{sparsity=0.8,balance-pes=16}")
    layers = {s.operand: masks for s, masks in matrices(module) if s.layer == "lstm"}
    assert set(layers) == {1, 2}
    for masks in layers.values():
        for mask in masks:
            assert abs(mask.mean() - 0.2) <= 0.005
            per_pe = np.bincount(np.arange(mask.shape[0]) % 16, weights=mask.sum(axis=1))
            assert len(set(per_pe.tolist())) == 1


def test_zeros_count_as_pruned_and_stay_pruned():
    module = pruned(MLP, "prune{sparsity=0.5},prune{sparsity=0.2}")
    for _, masks in matrices(module):
        assert abs(masks.mean() - 0.5) <= 0.005  # the second prune cannot revive weights


def test_biases_are_untouched():
    module = pruned(MLP, "prune{sparsity=0.9}")
    assert all(not isinstance(s.source, comp.WeightOp) for s in find_weights(module, "bias"))


def test_recipe_sets_per_layer_sparsity(tmp_path):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(
        json.dumps(
            {
                "defaults": {"sparsity": 0.5},
                "layers": {"fc2": {"sparsity": 0.8}, "fc3*": {"sparsity": 0.0}},
            }
        )
    )
    module = pruned(MLP, f"prune{{recipe={recipe}}}")
    density = {s.layer: masks.mean() for s, masks in matrices(module)}
    assert density["fc1"] == pytest.approx(0.5, abs=0.005)
    assert density["fc2"] == pytest.approx(0.2, abs=0.005)
    assert density["fc3"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("prune{sparsity=1.0}", "sparsity 1.0 outside [0, 1)"),
        ("prune{sparsity=-0.1}", "outside [0, 1)"),
        ("prune{sparsity=0.5,quality=1.0}", "not both"),
        ("prune{balance-pes=0}", "balance-pes 0"),
    ],
)
def test_bad_options_are_refused(spec, message):
    with pytest.raises(
        DlhwcError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        pruned(MLP, spec)


def test_recipe_naming_a_missing_layer_is_refused(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("[layers.fc9]\nsparsity = 0.5\n")
    with pytest.raises(DlhwcError, match="'fc9' matches no layer"):
        pruned(MLP, f"prune{{recipe={recipe}}}")


def test_deterministic():
    from dlhwc.compiler.irio import module_to_string

    a = module_to_string(pruned(MLP, "prune{sparsity=0.9,balance-pes=8}"))
    b = module_to_string(pruned(MLP, "prune{sparsity=0.9,balance-pes=8}"))
    assert a == b


def _tied_model(trans_b: int | None, seed: int = 0):
    """A Gemm (transB 0/1) or, for None, a MatMul x @ W, whose weights have many ties,
    both signs, exact zeros, an inf and a NaN."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    w = (np.round(rng.laplace(0.0, 1.0, (37, 23)) * 2) / 2).astype(np.float32)
    w[0, 0], w[5, 7], w[9, 2] = np.inf, np.nan, -0.0
    x_dim, y_dim = (w.shape[1], w.shape[0]) if trans_b == 1 else w.shape
    init = helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.tobytes(), raw=True)
    if trans_b is None:
        node = helper.make_node("MatMul", ["x", "W"], ["y"], name="layer")
    else:
        node = helper.make_node("Gemm", ["x", "W"], ["y"], name="layer", transB=trans_b)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", x_dim])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", y_dim])],
        initializer=[init],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, w


def _reference_mask(slot, w: np.ndarray, old_mask: np.ndarray, keep: int) -> np.ndarray:
    """The definition: the `keep` largest |w| among the weights not pruned yet, ties to
    the earlier position in rows (outputs) x columns (inputs), by a stable sort."""
    rows_w, rows_old = slot.to_rows(w)[0], slot.to_rows(old_mask)[0]
    magnitude = np.where(rows_old, np.abs(rows_w), -1.0).reshape(-1)
    keep = min(keep, int(np.count_nonzero(magnitude > 0)))
    mask = np.zeros(magnitude.size, dtype=np.bool_)
    mask[np.argsort(-magnitude, kind="stable")[:keep]] = True
    return slot.from_rows(mask.reshape(rows_w.shape)[None], w.shape)


@pytest.mark.parametrize("trans_b", [1, 0, None])
@pytest.mark.parametrize("chunk", [None, 64, 7])
def test_ties_and_chunks_follow_the_stable_sort_definition(monkeypatch, trans_b, chunk):
    # The pass selects by counting over fixed-size chunks of the stored tensor instead of
    # sorting; small chunks exercise the multi-chunk path that large layers take.
    from dlhwc.compiler.frontend.onnx_importer import import_model
    from dlhwc.compiler.passes import prune

    if chunk is not None:
        monkeypatch.setattr(prune, "_CHUNK", chunk)
    model, w = _tied_model(trans_b)
    module = import_model(model)
    old_mask = w != 0
    for sparsity in (0.3, 0.77, 0.9):
        apply_passes(module, [PrunePass(sparsity=sparsity)])
        (slot,) = find_weights(module, "matrix")
        keep = int(round((1.0 - sparsity) * w.size))
        expected = _reference_mask(slot, w, old_mask, keep)
        np.testing.assert_array_equal(slot.source.mask_array(), expected)
        np.testing.assert_array_equal(slot.value(), np.where(expected, w, np.float32(0)))
        old_mask = expected


@pytest.mark.parametrize("chunk", [None, 5])
def test_pruning_shared_weights_breaks_ties_by_position(monkeypatch, chunk):
    # Shared weights take few distinct values: nearly every kept weight is a tie.
    from dlhwc.compiler.passes import prune

    if chunk is not None:
        monkeypatch.setattr(prune, "_CHUNK", chunk)
    module = pruned(MLP, "share-weights{bits=2}")
    before = {s.layer: (s.value(), s.source.mask_array()) for s in find_weights(module, "matrix")}
    apply_passes(module, [PrunePass(sparsity=0.6)])
    for slot in find_weights(module, "matrix"):
        w, old_mask = before[slot.layer]
        keep = int(round(0.4 * w.size))
        np.testing.assert_array_equal(
            slot.source.mask_array(), _reference_mask(slot, w, old_mask, keep)
        )
        assert slot.source.is_shared
