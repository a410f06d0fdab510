"""The ESE hardware configuration: one object read by the compiler, the encoder and the
simulator, and recorded in every container.

ESE (Han et al., "ESE: Efficient Speech Recognition Engine with Sparse LSTM on FPGA",
FPGA 2017) runs sparse LSTMs at 200 MHz: channels of EIE-like PEs compute the sparse
matrix x vector products of the gates (input and recurrent weights), element-wise units
the gate products and sums, and activation units sigmoid and tanh by piecewise-linear
tables; weights are 12-bit linear-quantized values packed with a 4-bit relative row
index in 16 bits (no codebook); a scheduler overlaps the input-weight product of step
t+1 with the element-wise phase of step t.

Where the paper is silent the choice is written next to the field. A TOML file given
with `--hw FILE` overrides any field (as for EIE: spec/config.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from dlhwc.spec.config import SparseMachineConfig


@dataclass(frozen=True)
class ESEEnergy:
    """Energy per event, in picojoules (Horowitz 45 nm figures, as for EIE)."""

    spmat_read: float = 5.0  # one 16-bit-entry row read (64 bits, 4 entries) of a PE's SRAM
    ptr_read: float = 5.0  # one pointer pair
    mac: float = 0.6  # 12x16-bit multiply + 32-bit accumulate
    ew_op: float = 0.8  # one element-wise multiply or add on 16/32-bit values
    lut_lookup: float = 0.5  # one activation-table evaluation (table read + multiply-add)
    buffer_access: float = 0.3  # one 16-bit access of an on-chip vector buffer
    dram_word: float = 640.0  # one 32-bit DRAM word moved by DMA
    host_word: float = 640.0  # one 32-bit word crossing to or from the host


@dataclass(frozen=True)
class ESEConfig(SparseMachineConfig):
    """Parameters of the modeled ESE machine."""

    num_pes: int = 32  # PEs sharing the rows of every gate matrix (row i on PE i mod N)
    clock_mhz: float = 200.0
    fifo_depth: int = 8
    pipeline_stages: int = 4  # of the sparse matrix x vector pipeline
    spmat_sram_bytes: int = 64 * 1024  # per PE
    spmat_entry_bits: int = 16  # 12-bit weight + 4-bit relative row index
    spmat_read_bits: int = 64  # 4 entries per read
    ptr_bits: int = 16
    ptr_sram_bytes: int = 16 * 1024  # per PE
    weight_bits: int = 12  # linear quantization (no codebook)
    run_bits: int = 4
    act_bits: int = 16
    acc_bits: int = 32
    # Gate pre-activations in fixed<16, lut_in_frac>: [-8, 8) by default.
    lut_in_frac: int = 12
    lut_segments: int = 128  # per table; max error 2.2e-4 (sigmoid), 1.5e-3 (tanh)
    cell_frac: int = 12  # the LSTM cell state in fixed<16, cell_frac>
    ew_lanes: int = 32  # element-wise results per cycle
    lut_lanes: int = 32  # activation-table results per cycle
    ew_latency: int = 4  # cycles from the last product to the first cell result
    dma_words_per_cycle: int = 4
    host_words_per_cycle: int = 1
    energy: ESEEnergy = field(default_factory=ESEEnergy)

    LIMITS: ClassVar = {
        **SparseMachineConfig.LIMITS,
        "run_bits": (0, 8),
        "lut_in_frac": (0, 15),
        "lut_segments": (1, 1 << 16),
        "cell_frac": (0, 15),
        "ew_lanes": (1, 1 << 16),
        "lut_lanes": (1, 1 << 16),
        "ew_latency": (0, 1 << 16),
    }  # fmt: skip
    """Each field's range (spec/config.py checks them), as for EIE."""

    def __post_init__(self):
        self.check_fields()
        checks = [
            (self.weight_bits + self.run_bits == self.spmat_entry_bits,
             "weight_bits + run_bits must equal spmat_entry_bits"),
            (self.spmat_read_bits % self.spmat_entry_bits == 0,
             "spmat_read_bits must be a multiple of spmat_entry_bits"),
            (self.act_bits == 16, "the ESE arithmetic is defined for 16-bit activations"),
            (self.lut_segments >= 1 and self.lut_segments & (self.lut_segments - 1) == 0,
             "lut_segments must be a power of two"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
