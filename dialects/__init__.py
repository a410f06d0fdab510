"""IR definitions: one module per dialect (`onnx`, `comp`, and the target dialects)."""

from dialects.comp import COMP
from dialects.eie import EIE
from dialects.ese import ESE
from dialects.onnx import ONNX

ALL_DIALECTS = (ONNX, COMP, EIE, ESE)
