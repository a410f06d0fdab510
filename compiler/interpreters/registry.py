"""The interpreter's two tables: the implementations of the ops it runs itself, and the
numpy kernels of the ONNX ops.

An op implementation is one function per op class, registered with `@impl(OpClass)`,
that takes the op and its operand values and returns its result values; the dialect
modules of this package and the targets' golden models register theirs when imported.

The table of numpy kernels that give every dedicated ONNX op its reference semantics.

A kernel is one function per ONNX op type, named like the op, taking the op's inputs
positionally (``None`` for an omitted optional input) and its ONNX attributes as keyword
arguments, and returning a tuple of numpy arrays, one per output. Kernels implement the
newest opset's form of each op; the importer normalizes older forms to it.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
from xdsl.ir import Operation

Kernel = Callable[..., tuple[np.ndarray, ...]]

KERNELS: dict[str, Kernel] = {}


def kernel(op_type: str) -> Callable[[Kernel], Kernel]:
    """Register ``fn`` as the reference kernel of the ONNX op ``op_type``."""

    def register(fn: Kernel) -> Kernel:
        if op_type in KERNELS:
            raise ValueError(f"kernel for {op_type} registered twice")
        KERNELS[op_type] = fn
        return fn

    return register


Impl = Callable[[Any, list], tuple]
IMPLS: dict[type[Operation], Impl] = {}


def impl(op_class: type[Operation]) -> Callable[[Impl], Impl]:
    """Register ``fn(op, operand_values) -> result_values`` as ``op_class``'s semantics."""

    def register(fn: Impl) -> Impl:
        IMPLS[op_class] = fn
        return fn

    return register
