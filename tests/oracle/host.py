"""What both oracles do the same way: the rule error, and host segments in onnxruntime."""

from __future__ import annotations

import numpy as np

from dlhwc.spec.container import Container


class OracleError(Exception):
    """The container breaks a rule of the guide."""


class HostSegments:
    """`host seg`: the segment's ONNX model, run on the named values in ``memory``."""

    def __init__(self, container: Container, memory: dict[str, np.ndarray]):
        self.container, self.memory = container, memory
        self.symbols = container.header["symbols"]
        self.sessions: dict[int, object] = {}

    def run(self, index: int) -> None:
        import onnxruntime as ort

        seg = self.container.header["host_segments"][index]
        if index not in self.sessions:
            options = ort.SessionOptions()
            options.add_session_config_entry("session.disable_quant_qdq", "1")
            model = self.container.sections[seg["section"]].tobytes()
            self.sessions[index] = ort.InferenceSession(
                model, options, providers=["CPUExecutionProvider"]
            )
        session = self.sessions[index]
        names = [self.symbols[s]["name"] for s in seg["inputs"]]
        feeds = {g.name: self.memory[n] for g, n in zip(session.get_inputs(), names, strict=True)}
        for s, value in zip(seg["outputs"], session.run(None, feeds), strict=True):
            self.memory[self.symbols[s]["name"]] = np.asarray(value)
