"""share-weights: k-means weight sharing of weight matrices (Deep Compression, step 2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, cast

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, TensorType, i64
from xdsl.ir import Operation
from xdsl.passes import ModulePass

from dlhwc.compiler.compression.kmeans import (
    INIT_METHODS,
    assign_labels,
    init_centroids,
    kmeans_1d_sorted,
)
from dlhwc.compiler.passes.recipe import Recipe, load_recipe
from dlhwc.compiler.passes.weights import (
    WeightSlot,
    erase_weight,
    find_weights,
    layer_names,
    replace_source,
)
from dlhwc.dialects import comp
from dlhwc.dialects.onnx import dense_from_array
from dlhwc.spec import progress
from dlhwc.spec.errors import DlhwcError

MIN_BITS, MAX_BITS = 1, 8  # indices are stored as ui8


@dataclass(frozen=True)
class ShareWeightsPass(ModulePass):
    """Cluster each weight matrix's surviving weights into 2^bits shared values.

    Weight sharing from Deep Compression (Han, Mao & Dally, ICLR 2016, section 3): the
    non-zero weights of a layer are clustered with one-dimensional k-means (Lloyd's
    algorithm, k = 2^bits) and every weight is replaced by its cluster's centroid, so the
    layer stores a k-entry float32 codebook and a bits-wide index per weight.

    Options:
      bits       index width, 1..8 (default 4): k = 2^bits clusters.
      init       centroid initialization (default linear):
                   linear   evenly spaced over [min, max] of the layer's weights (the
                            paper's choice: it keeps centroids for the rare large weights);
                   density  evenly spaced over the weights' CDF (quantiles at
                            linspace(0, 1, k));
                   random   k distinct weights drawn with numpy's default_rng(seed).
      seed       seed of the random initialization (default 0), the same for every layer.
      zero-code  reserve index 0 for an exact 0.0 codebook entry and cluster the
                 surviving weights into the other 2^bits - 1 (default false). EIE's
                 weight stream encodes zero runs longer than its relative-index width
                 with filler entries whose weight index must decode to zero.
      recipe     a TOML/JSON file with per-layer `bits` and `init` (by layer or weight
                 name, or a glob; see compiler/passes/recipe.py); the options above are
                 the defaults below the recipe.

    Every Gemm/MatMul/LSTM/GRU/RNN weight matrix becomes a comp.weight with a mask, a
    codebook and ui8 indices; one codebook per weight tensor (a bidirectional RNN's two
    directions share one). The weights that survive are those of the comp.weight mask
    left by `prune`, or, on a plain constant, the weights that are not exactly zero.
    Pruned weights stay exactly zero, are not clustered, and get index 0. The codebook
    is sorted ascending (with zero-code: entry 0 is 0.0 and the rest ascending), and it
    has fewer than 2^bits entries when the layer has fewer distinct weights. A matrix
    with no surviving weight gets the codebook [0.0]. k-means stops when no assignment
    changes or the centroids' total squared shift is at most 1e-4 times the weights'
    variance, after at most 300 iterations; empty clusters keep their centroid. On a
    weight that is already shared, the materialized weights are clustered again and a
    fixed-point format or Huffman record is dropped (it no longer applies): run
    share-weights before quantize. Biases are left alone.
    """

    name: ClassVar[str] = "share-weights"
    lossy: ClassVar[bool] = True  # changes values on purpose: `verify` reports, not flags

    bits: int = 4
    init: str = "linear"
    seed: int = 0
    zero_code: bool = False
    recipe: str | None = None

    def __post_init__(self) -> None:
        # Checked at construction so that a bad -p fails before the model is imported.
        _check_bits(self.bits, "share-weights: option bits")
        _check_init(self.init, "share-weights: option init")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise DlhwcError(f"share-weights: option seed={self.seed} must be an integer >= 0")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        recipe = load_recipe(self.recipe) if self.recipe else None
        if recipe is not None:
            recipe.check_names(layer_names(op))
        # A source feeding several consumers is clustered once (with the first slot's
        # settings) and the same comp.weight feeds them all.
        shared: dict[Operation, comp.WeightOp] = {}
        for slot in progress.track(
            find_weights(op, role="matrix"), "share-weights", unit="matrices"
        ):
            source = slot.source
            if source in shared:
                new = shared[source]
                slot.consumer.operands[slot.operand] = new.results[0]
                if not source.results[0].uses:
                    erase_weight(source)
                continue
            bits, init = self._settings(slot, recipe)
            new = self._share(slot, bits, init)
            shared[source] = new
            replace_source(slot, new)

    def _settings(self, slot: WeightSlot, recipe: Recipe | None) -> tuple[int, str]:
        bits, init = self.bits, self.init
        if recipe is not None:
            settings = recipe.settings(slot.keys)
            where = f"share-weights: layer '{slot.layer}'"
            # A recipe's values are checked just below.
            bits = cast(int, settings.get("bits", bits))
            init = cast(str, settings.get("init", init))
            try:
                _check_bits(bits, f"{where}: bits")
                _check_init(init, f"{where}: init")
            except DlhwcError as e:
                raise DlhwcError(e.reason, file=recipe.path) from None
        return bits, init

    def _share(self, slot: WeightSlot, bits: int, init: str) -> comp.WeightOp:
        source = slot.source
        mask, mask_attr, surviving, values = _survivors(source)
        if not np.all(np.isfinite(surviving)):
            raise DlhwcError(
                f"share-weights: layer '{slot.layer}': weight '{slot.name}' has "
                "non-finite values (inf or NaN) that k-means cannot cluster"
            )
        k = 1 << bits
        # Written in place into the bytes the IR keeps (pruned weights get index 0).
        indices = comp.DenseBuffer(np.uint8, mask.shape)
        if surviving.size == 0:
            # Nothing to cluster; one zero entry keeps the op valid (every index is 0).
            codebook = np.zeros(1, dtype=np.float32)
        else:
            clusters = k - 1 if self.zero_code else k
            # The survivors are a copy: sorted in place, they are all k-means needs.
            surviving.sort()
            start = init_centroids(surviving, clusters, init, self.seed)
            centroids, _ = kmeans_1d_sorted(surviving, start)
            del surviving
            codebook = centroids.astype(np.float32)
            if self.zero_code:
                codebook = np.concatenate([np.zeros(1, dtype=np.float32), codebook])
            # indices.array is set until indices.attr() below.
            _write_labels(
                cast(np.ndarray, indices.array), mask, values, centroids, int(self.zero_code)
            )
        del mask, values
        props = {
            "mask": mask_attr,
            "codebook": dense_from_array(codebook),
            "indices": indices.attr(),
            "index_bits": IntegerAttr(bits, i64),
        }
        # find_weights only finds weight operands of tensor type.
        weight_type = cast(TensorType, slot.consumer.operands[slot.operand].type)
        return comp.WeightOp(weight_type, props, slot.name)


def _write_labels(
    out: np.ndarray, mask: np.ndarray, values, centroids: np.ndarray, offset: int
) -> None:
    """out[mask] = label of values[mask] + offset, a block of rows at a time (the labels
    of a whole large layer would be 8 bytes per weight). ``values(rows)`` gives the
    weights of a slice of rows (stored layout)."""
    flat_out, flat_mask = _by_rows(out), _by_rows(mask)
    step = max(1, (1 << 22) // max(flat_mask.shape[1], 1))
    for r0 in range(0, flat_mask.shape[0], step):
        keep = flat_mask[r0 : r0 + step]
        chunk = values(slice(r0, r0 + step)).reshape(keep.shape)[keep]
        flat_out[r0 : r0 + step][keep] = assign_labels(chunk, centroids, np.uint8) + np.uint8(
            offset
        )


def _by_rows(array: np.ndarray) -> np.ndarray:
    """The stored tensor as [its first axis, the rest] (a view)."""
    return array.reshape(array.shape[0] if array.ndim else 1, -1)


def _survivors(source):
    """The weight's mask (stored layout), its i1 attribute, a copy of its surviving
    weights in stored order, and a function giving the weights of a slice of rows (for
    the labels), read without materializing the dense tensor.

    The survivors of a comp.weight are those of its mask, else the weights that are not
    exactly zero. A comp.weight's mask attribute is reused as it is (it is unchanged).
    """
    if isinstance(source, comp.WeightOp):
        mask = source.mask_array()
        # dense() is where(mask, values or codebook[indices], 0): at the mask's
        # positions the values themselves.
        if source.is_shared:
            codebook = source.codebook_array().astype(np.float32, copy=False)
            stored = source.indices_array()
            surviving = codebook[stored[mask]]

            def values(rows):
                return codebook[_by_rows(stored)[rows]]
        else:
            stored = source.values_array()
            surviving = stored[mask].astype(np.float32, copy=False)

            def values(rows):
                return _by_rows(stored)[rows]

        attr = source.mask if comp.is_canonical_mask(source.mask) else dense_from_array(mask)
        return mask, attr, surviving, values
    value = np.asarray(source.to_array(), dtype=np.float32)
    buffer = comp.DenseBuffer(np.bool_, value.shape)
    np.not_equal(value, 0, out=buffer.array)
    surviving = value[buffer.array]
    attr = buffer.attr()

    def rows_of(rows):
        return _by_rows(value)[rows]

    return comp.bool_array(attr), attr, surviving, rows_of


def _check_bits(bits: object, what: str) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise DlhwcError(f"{what}={bits!r} must be an integer in {MIN_BITS}..{MAX_BITS}")
    if not MIN_BITS <= bits <= MAX_BITS:
        raise DlhwcError(f"{what}={bits!r} is outside {MIN_BITS}..{MAX_BITS}")


def _check_init(init: object, what: str) -> None:
    if init not in INIT_METHODS:
        raise DlhwcError(f"{what}={init!r} is not one of {', '.join(INIT_METHODS)}")
