"""The numpy kernels that give every dedicated ONNX op its reference semantics.

(The implementations of the ops the interpreter runs itself are xDSL
`InterpreterFunctions` classes: comp.py, onnx.py and each target's golden model.)

A kernel is one function per ONNX op type, named like the op, taking the op's inputs
positionally (``None`` for an omitted optional input) and its ONNX attributes as keyword
arguments, and returning a tuple of numpy arrays, one per output. Kernels implement the
newest opset's form of each op; the importer normalizes older forms to it.
"""

from collections.abc import Callable

import numpy as np

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
