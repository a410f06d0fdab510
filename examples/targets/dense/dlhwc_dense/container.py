"""The dense target's part of the container header: its layer record (the schema of
spec/container.py checks every header against it as the simulator loads it)."""

from __future__ import annotations

from dataclasses import dataclass

from dlhwc.spec.container import Layer
from dlhwc.spec.fixedpoint import FixedFormat
from dlhwc.spec.schema import field


@dataclass(kw_only=True)
class DenseLayer(Layer):
    """One `dense.fc` layer: y = f(W·a + b), W in weight tiles of the array's shape
    (sections "L<i>.weights" and "L<i>.bias")."""

    DOC_NAME = "DenseLayer"

    rows: int = field("outputs: rows of W", ge=1)
    cols: int = field("inputs: columns of W", ge=1)
    in_format: FixedFormat = field("the input activations' format")
    weight_format: FixedFormat = field("the weights' format")
    out_format: FixedFormat = field("the output activations' format")
    bias: bool = field('whether the layer has a bias (section "L<i>.bias")')
