"""The EIE simulator: loads a container, executes its instructions bit for bit, and
models cycles and energy (see backends/eie/README.md)."""
