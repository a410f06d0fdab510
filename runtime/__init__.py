"""The runtime: the container loader, the simulators and the reference interpreters."""

SIMULATORS = {"eie": "dlhwc.runtime.eie.sim", "ese": "dlhwc.runtime.ese.sim"}
"""The simulator of each target: a module with Simulator, Stats, static_report and
summary_line."""
