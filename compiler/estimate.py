"""A static estimate of what a module's weights cost on a target, before it is compiled.

`--ledger-after-all` with `--target` prints, after every pass, how many cycles and how
much energy one matrix x vector product of each layer would take on the target's
machine as the weights stand at that point. It is computed from the hardware config and
the weights' non-zeros alone, without activations, so it can be printed after any pass:

- Each weight matrix (one row per output, as compiler/passes/weights.py sees it; a
  stack such as an LSTM's directions is one matrix per direction) is laid out as the
  back end lays it out: rows interleaved over the config's `num_pes` PEs, each PE's rows
  column by column in the relative-index format with `run_bits`-bit zero runs
  (spec/encoding.py). e[k, j] is the number of entries PE k holds for column j,
  fillers included. A weight not yet pruned counts all its non-zeros.
- Every input activation is assumed non-zero (activation density 100%), and the
  activation FIFOs deep enough that no PE waits for another:

      cycles = max over PEs k of sum over columns j of max(1, e[k, j])
               + pipeline_stages (+ regfile_entries per register-file refill, EIE)

  (a PE spends at least one cycle on a column, reading its pointers). The simulator's
  FIFO recurrence gives at least this for a vector without zeros; sparse activations
  (after a ReLU) make real runs faster, shallow FIFOs and imbalance slower.
- Energy is the PE array's events for that product, times the config's energy per
  event: one multiply-accumulate (`mac`, and `codebook_lookup` where the machine has a
  codebook) per entry, one sparse-matrix SRAM read (`spmat_read`) per SRAM row a
  column's entries span, one pointer read (`ptr_read`) per column and PE, one
  non-zero-detection step (`lnzd`, EIE) per column. For a vector without zeros these
  are the simulator's counts of the same events exactly. Element-wise units and
  activation tables (ESE), activation-buffer accesses, weight loads and host transfers
  are not counted.

The figures are per product: per input vector for a fully connected layer, per patch
for a convolution, per time step for a recurrent layer (both its W and R products).
Only the layers of the kinds the target runs are estimated (EIE: Gemm, MatMul, Conv;
ESE: LSTM, GRU, RNN); the others stay on the host, and so may a layer the lowering
finds it cannot place. Other targets (plugins such as examples/targets/dense) get no
estimate.
`dlhwc run prog.dlhw --stats` and `dlhwc report` give the measured numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from dlhwc.compiler.passes.weights import WeightSlot, find_weights
from dlhwc.dialects import comp
from dlhwc.dialects import onnx as onnx_d
from dlhwc.spec.encoding import column_entries

EVENTS = ("spmat_read", "ptr_read", "codebook_lookup", "mac", "lnzd")
"""The events the estimate counts (those the target's energy table has)."""


@dataclass
class Estimate:
    """One layer's (one ledger row's) product: cycles, event counts, picojoules."""

    cycles: int = 0
    events: dict[str, int] = field(default_factory=dict)
    energy_pj: float = 0.0

    def add(self, other: Estimate) -> None:
        self.cycles += other.cycles
        for k, v in other.events.items():
            self.events[k] = self.events.get(k, 0) + v
        self.energy_pj += other.energy_pj


RECURRENT = (onnx_d.LSTMOp, onnx_d.GRUOp, onnx_d.RNNOp)

TARGET_RUNS = {
    "eie": lambda slot: not isinstance(slot.consumer, RECURRENT),
    "ese": lambda slot: isinstance(slot.consumer, RECURRENT),
}
"""Whether a target runs a matrix slot's kind of layer (see the module docstring)."""


def estimate(module: ModuleOp, target: str, config) -> dict[str, Estimate]:
    """The estimate of every matrix slot ``target`` runs, keyed like the compression
    ledger's rows (the layer's name, or ``layer:weight`` for a layer with several
    matrices)."""
    runs = TARGET_RUNS.get(target)
    if runs is None or not 1 <= getattr(config, "run_bits", 0) <= 8:
        # A target this model does not describe (a plugin's: the ledger shows "-"), or
        # no relative-index format to lay the weights out in.
        return {}
    slots = find_weights(module, role="matrix")
    per_consumer: dict[int, int] = {}
    for slot in slots:
        per_consumer[id(slot.consumer)] = per_consumer.get(id(slot.consumer), 0) + 1
    out: dict[str, Estimate] = {}
    seen: set[int] = set()
    for slot in slots:
        if id(slot.source) in seen:
            continue
        seen.add(id(slot.source))
        if not runs(slot):
            continue
        name = slot.layer if per_consumer[id(slot.consumer)] == 1 else f"{slot.layer}:{slot.name}"
        total = Estimate()
        for mask in slot.to_rows(_mask(slot)):
            total.add(matrix_estimate(mask, config))
        out[name] = total
    return out


def matrix_estimate(mask: np.ndarray, config) -> Estimate:
    """The estimate of one matrix [rows, cols] of kept weights (see the module docstring)."""
    pes = config.num_pes
    counts = column_entries(mask, pes, config.run_bits)  # [pes, cols]
    cols = mask.shape[1]
    cycles = int(np.maximum(counts, 1).sum(axis=1).max(initial=0)) + config.pipeline_stages
    capacity = getattr(config, "regfile_capacity", None)
    if capacity:
        cycles += max(0, -(-cols // capacity) - 1) * config.regfile_entries
    ptr = np.zeros((pes, cols + 1), dtype=np.int64)
    np.cumsum(counts, axis=1, out=ptr[:, 1:])
    per_read = config.entries_per_read
    spans = np.where(counts > 0, (ptr[:, 1:] - 1) // per_read - ptr[:, :-1] // per_read + 1, 0)
    entries = int(counts.sum())
    counted = {
        "spmat_read": int(spans.sum()),
        "ptr_read": cols * pes,
        "codebook_lookup": entries,
        "mac": entries,
        "lnzd": cols,
    }
    events = {k: v for k, v in counted.items() if hasattr(config.energy, k)}
    energy = float(sum(n * getattr(config.energy, k) for k, n in events.items()))
    return Estimate(cycles, events, energy)


def _mask(slot: WeightSlot) -> np.ndarray:
    """The slot's kept weights: a comp.weight's mask, else the non-zeros."""
    source = slot.source
    if isinstance(source, comp.WeightOp):
        return source.mask_array()
    # A weight slot's source is a comp.weight or an onnx.Constant (find_weights).
    return np.asarray(cast(onnx_d.ConstantOp, source).to_array()) != 0
