"""The runtime: the simulators (one per target, found through the target's descriptor,
spec/targets.py), the code they share (common.py) and the ONNX backend adapter."""
