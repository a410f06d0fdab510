"""IR definitions: one module per dialect (`onnx`, `comp`, and the target dialects)."""

from dlhwc.dialects.comp import COMP
from dlhwc.dialects.eie import EIE
from dlhwc.dialects.ese import ESE
from dlhwc.dialects.onnx import ONNX

ALL_DIALECTS = (ONNX, COMP, EIE, ESE)
