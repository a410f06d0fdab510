"""The huffman pass: stored code lengths, PE interleaving, stacks, round trip, errors."""

import numpy as np
import pytest

from dlhwc.compiler.compression.huffman import code_lengths
from dlhwc.compiler.frontend.onnx_importer import import_file
from dlhwc.compiler.irio import module_to_string, parse_module
from dlhwc.compiler.passes.weights import find_weights, replace_source
from dlhwc.compiler.pipeline import apply_passes, parse_pipeline
from dlhwc.compiler.plugins import available_passes
from dlhwc.dialects import comp
from dlhwc.spec.encoding import encode_sparse
from dlhwc.spec.errors import DlhwcError

MLP = "examples/models/digits_mlp.onnx"
BILSTM = "tests/models/exported/torch_bilstm1_ts14.onnx"


def run(spec: str, path: str = MLP):
    return apply_passes(import_file(path), parse_pipeline(spec, available_passes()))


def expected_lengths(slot, pes, run_bits=4):
    """Code lengths from counts taken matrix by matrix with encode_sparse."""
    w = slot.source
    masks = slot.to_rows(w.mask_array())
    indices = slot.to_rows(w.indices_array())
    v = np.zeros(1 << w.index_bits.value.data, np.int64)
    z = np.zeros(1 << run_bits, np.int64)
    for m, i in zip(masks, indices, strict=True):
        enc = encode_sparse(m, i, pes, run_bits)
        v += np.bincount(enc.v, minlength=v.size)
        z += np.bincount(enc.z, minlength=z.size)
    return code_lengths(v).tolist(), code_lengths(z).tolist()


@pytest.fixture(scope="module")
def shared_mlp():
    return module_to_string(run("prune{sparsity=0.9},share-weights{bits=4}"))


@pytest.mark.parametrize("pes", [1, 4, 64])
def test_code_lengths_stored_on_every_shared_weight(shared_mlp, pes):
    module = parse_module(shared_mlp)
    before = {s.name: s.value() for s in find_weights(module)}
    apply_passes(module, parse_pipeline(f"huffman{{pes={pes}}}", available_passes()))
    slots = find_weights(module, "matrix")
    assert len(slots) == 3
    for slot in slots:
        w = slot.source
        assert isinstance(w, comp.WeightOp)
        index_code, run_code = expected_lengths(slot, pes)
        assert list(w.index_code.get_values()) == index_code
        assert list(w.run_code.get_values()) == run_code
        assert w.pes.value.data == pes
        assert len(index_code) == 16 and len(run_code) == 16
        assert "huffman" in w.summary()
    # the weights' values are untouched
    for slot in find_weights(module):
        assert np.array_equal(slot.value(), before[slot.name])


def test_run_bits_option_sets_the_run_alphabet(shared_mlp):
    module = parse_module(shared_mlp)
    apply_passes(module, parse_pipeline("huffman{run-bits=2,pes=3}", available_passes()))
    for slot in find_weights(module, "matrix"):
        w = slot.source
        assert len(w.run_code) == 4
        assert list(w.run_code.get_values()) == expected_lengths(slot, 3, run_bits=2)[1]


def test_round_trip_through_text(shared_mlp):
    module = parse_module(shared_mlp)
    apply_passes(module, parse_pipeline("huffman", available_passes()))
    text = module_to_string(module)
    assert "index_code = array<i64:" in text and "pes = 1 : i64" in text
    assert module_to_string(parse_module(text)) == text


def test_stack_counts_both_directions():
    module = run("prune{sparsity=0.5},share-weights{bits=3},huffman{pes=2}", BILSTM)
    slots = find_weights(module, "matrix")
    lstm = [s for s in slots if s.source.shape[0] == 2]
    assert len(lstm) == 2
    for slot in lstm:
        w = slot.source
        index_code, run_code = expected_lengths(slot, 2)
        assert list(w.index_code.get_values()) == index_code
        assert len(index_code) == 8
        assert list(w.run_code.get_values()) == run_code


def test_only_shared_weights_are_coded():
    module = run("prune{sparsity=0.9},share-weights{bits=4}")
    last = find_weights(module, "matrix")[-1]
    unshared = comp.WeightOp.from_arrays(
        last.source.results[0].type, last.source.mask_array(), values=last.value(),
        node_name=last.name,
    )  # fmt: skip
    replace_source(last, unshared)
    apply_passes(module, parse_pipeline("huffman", available_passes()))
    coded = [s.source.index_code is not None for s in find_weights(module, "matrix")]
    assert coded == [True, True, False]


def test_needs_share_weights():
    with pytest.raises(DlhwcError, match="^huffman needs share-weights first$"):
        run("prune{sparsity=0.9},huffman")
    with pytest.raises(DlhwcError, match="huffman needs share-weights first"):
        run("huffman")


@pytest.mark.parametrize("spec", ["huffman{pes=0}", "huffman{run-bits=0}", "huffman{run-bits=9}"])
def test_bad_options(spec):
    with pytest.raises(DlhwcError, match="pass 'huffman'"):
        parse_pipeline(spec, available_passes())
