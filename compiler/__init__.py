"""dlhwc: a compiler from ONNX models to modeled sparse inference accelerators."""

__version__ = "0.1.0"
