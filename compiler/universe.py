"""dlhwc's dialects and passes offered to stock `xdsl-opt` (entry point `xdsl.universe`)."""

from xdsl.universe import Universe

from compiler.passes import BUILTIN_PASSES


def _onnx_dialect():
    from dialects.onnx import ONNX

    return ONNX


DLHWC_UNIVERSE = Universe(
    all_dialects={"onnx": _onnx_dialect},
    all_passes=dict(BUILTIN_PASSES),
)
