"""IR definitions: one module per dialect. `onnx` and `comp` are the compiler's own; a
target's dialect (`eie`, `ese`) comes with its descriptor (spec/targets.py)."""

from dlhwc.dialects.comp import COMP
from dlhwc.dialects.onnx import ONNX

CORE_DIALECTS = (ONNX, COMP)
