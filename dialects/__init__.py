"""IR definitions: one module per dialect (`onnx`, and the compression and target dialects)."""

from dialects.onnx import ONNX

ALL_DIALECTS = (ONNX,)
