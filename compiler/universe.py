"""dlhwc's dialects and passes offered to stock `xdsl-opt` (entry point `xdsl.universe`)."""

from xdsl.universe import Universe

from dlhwc.compiler.passes import BUILTIN_PASSES, XDSL_PASSES


def _onnx():
    from dlhwc.dialects.onnx import ONNX

    return ONNX


def _comp():
    from dlhwc.dialects.comp import COMP

    return COMP


def _eie():
    from dlhwc.dialects.eie import EIE

    return EIE


def _ese():
    from dlhwc.dialects.ese import ESE

    return ESE


DLHWC_UNIVERSE = Universe(
    all_dialects={"onnx": _onnx, "comp": _comp, "eie": _eie, "ese": _ese},
    all_passes={k: v for k, v in BUILTIN_PASSES.items() if k not in XDSL_PASSES},
)
