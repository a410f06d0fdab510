"""How compressed weights are stored: bytes built in place, masks read without copies,
erased weights freed at once (the memory side of the compression passes)."""

import numpy as np
import pytest
from xdsl.dialects.builtin import BytesAttr, DenseIntOrFPElementsAttr

from dlhwc.compiler.frontend.onnx_importer import import_file
from dlhwc.compiler.passes.weights import find_weights
from dlhwc.compiler.pipeline import apply_passes, parse_pipeline
from dlhwc.compiler.plugins import available_passes
from dlhwc.dialects import comp
from dlhwc.dialects.onnx import dense_from_array, tensor_type

MLP = "examples/models/digits_mlp.onnx"


@pytest.mark.parametrize(
    ("dtype", "shape"),
    [(np.bool_, (3, 5)), (np.float32, (4, 2)), (np.uint8, (7,)), (np.float32, (0, 3))],
)
def test_dense_buffer_gives_what_dense_from_array_gives(dtype, shape):
    value = (np.arange(int(np.prod(shape))).reshape(shape) % 3).astype(dtype)
    buffer = comp.DenseBuffer(dtype, shape)
    assert not buffer.array.any()  # zero-filled
    buffer.array[...] = value
    assert buffer.attr() == dense_from_array(value)
    assert buffer.array is None


def test_dense_buffer_copies_when_a_view_is_still_alive():
    buffer = comp.DenseBuffer(np.float32, (4,))
    alive = buffer.array[1:]
    alive[...] = 2.0
    attr = buffer.attr()  # the bytes cannot be handed over: they are copied instead
    alive[...] = 5.0
    assert np.frombuffer(attr.data.data, np.float32).tolist() == [0.0, 2.0, 2.0, 2.0]


def test_mask_array_is_a_read_only_view_and_normalizes_other_bytes():
    mask = np.array([[True, False], [False, True]])
    weight = comp.WeightOp.from_arrays(
        tensor_type(np.float32, (2, 2)), mask, values=np.ones((2, 2))
    )
    view = weight.mask_array()
    assert view.dtype == np.bool_ and not view.flags.writeable
    np.testing.assert_array_equal(view, mask)
    assert comp.is_canonical_mask(weight.mask)
    # i1 bytes other than 0/1 (possible in parsed IR) still read as a proper bool array.
    odd = DenseIntOrFPElementsAttr(tensor_type(np.bool_, (2, 2)), BytesAttr(b"\x02\x00\x00\xff"))
    assert not comp.is_canonical_mask(odd)
    np.testing.assert_array_equal(comp.bool_array(odd), mask)


def test_erased_weights_drop_their_bytes():
    module = import_file(MLP)
    constants = [slot.source for slot in find_weights(module, "matrix")]
    apply_passes(module, parse_pipeline("prune{sparsity=0.5}", available_passes()))
    # Erased ops live on in reference cycles until the cycle collector runs; their
    # payload must not.
    assert all(not op.properties and op.parent is None for op in constants)


def test_share_weights_reuses_the_pruned_mask():
    module = import_file(MLP)
    apply_passes(module, parse_pipeline("prune{sparsity=0.5}", available_passes()))
    masks = [slot.source.mask for slot in find_weights(module, "matrix")]
    apply_passes(module, parse_pipeline("share-weights{bits=3}", available_passes()))
    shared = [slot.source.mask for slot in find_weights(module, "matrix")]
    assert all(a is b for a, b in zip(masks, shared, strict=True))
