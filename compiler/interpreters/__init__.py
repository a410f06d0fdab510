"""The reference interpreter: the golden model of dlhwc's IR.

`interpreter.run_module` walks `@main` op by op; each dialect's ops get their semantics
from a module of this package (`onnx.py` for the `onnx` dialect), registered by op class.
"""
