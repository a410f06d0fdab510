"""dlhwc's dialects and passes offered to stock `xdsl-opt` (entry point `xdsl.universe`):
its own, and every registered target's (spec/targets.py)."""

from xdsl.universe import Universe

from dlhwc.compiler.passes import XDSL_PASSES, dlhwc_passes
from dlhwc.spec.targets import targets


def _onnx():
    from dlhwc.dialects.onnx import ONNX

    return ONNX


def _comp():
    from dlhwc.dialects.comp import COMP

    return COMP


DLHWC_UNIVERSE = Universe(
    all_dialects={
        "onnx": _onnx,
        "comp": _comp,
        **{name: target.dialect.load for name, target in targets().items()},
    },
    all_passes={k: v for k, v in dlhwc_passes().items() if k not in XDSL_PASSES},
)
