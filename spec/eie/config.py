"""The EIE hardware configuration: one object read by the compiler, the encoder, the ISA
checks and the simulator alike, and recorded in every container.

Defaults are the paper's machine (Han et al., "EIE: Efficient Inference Engine on
Compressed Deep Neural Network", ISCA 2016): 64 PEs at 800 MHz, activation FIFO depth 8,
per PE a 128 KB sparse-matrix SRAM of 8-bit (v, z) entries read 64 bits (8 entries) at a
time, a 32 KB pointer SRAM, two 64-entry 16-bit activation register files (source and
destination) and a 2 KB activation SRAM for longer vectors, 4-bit codebook indices and
4-bit relative row indices, 16-bit fixed-point arithmetic, a 4-stage pipeline.

Where the paper is silent or inconsistent, the choice is written next to the field. Every
derived size is a property computed here and nowhere else. Energies are picojoules per
event; the sources are in `ENERGY_SOURCES`.

A TOML file given with `--hw FILE` overrides any field:

    num_pes = 32
    fifo_depth = 4
    [energy]
    spmat_read = 12.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from dlhwc.spec.config import SparseMachineConfig


@dataclass(frozen=True)
class EIEEnergy:
    """Energy per event, in picojoules."""

    spmat_read: float = 10.0  # one 64-bit row of the 128 KB sparse-matrix SRAM
    ptr_read: float = 5.0  # one 32-bit read of the pointer SRAM (p_j and p_j+1, two banks)
    codebook_lookup: float = 0.3  # a 16-entry x 16-bit register-file read
    mac: float = 0.85  # 16x16-bit multiply (~0.8) + accumulate add (~0.05)
    act_regfile: float = 0.3  # a 16-bit access of a 64-entry activation register file
    act_sram: float = 2.5  # a 16-bit access of the 2 KB activation SRAM
    lnzd: float = 0.1  # one non-zero detection and broadcast step, per PE group node
    dram_word: float = 640.0  # one 32-bit DRAM word moved by DMA
    host_word: float = 640.0  # one 32-bit word crossing to or from the host


ENERGY_SOURCES = {
    "spmat_read": "Horowitz 45 nm: 32-bit read of a 32 KB SRAM = 5 pJ; a 64-bit row of a "
    "128 KB SRAM taken as twice that",
    "ptr_read": "Horowitz 45 nm: 32-bit read of a 32 KB SRAM = 5 pJ",
    "codebook_lookup": "a small register file, below an 8-bit add's 0.03 pJ x 10",
    "mac": "Horowitz 45 nm: 8-bit mult 0.2 pJ, 32-bit mult 3.1 pJ -> 16-bit ~0.8 pJ; "
    "16-bit add 0.05 pJ",
    "act_regfile": "64 x 16-bit register file, ~10x a 16-bit add",
    "act_sram": "2 KB SRAM, half a 32-bit read of a 32 KB SRAM",
    "lnzd": "a comparator tree node per step",
    "dram_word": "Horowitz 45 nm: 32-bit DRAM read = 640 pJ",
    "host_word": "taken as one DRAM word",
}


@dataclass(frozen=True)
class EIEConfig(SparseMachineConfig):
    """Parameters of the modeled EIE machine."""

    num_pes: int = 64
    clock_mhz: float = 800.0
    fifo_depth: int = 8
    pipeline_stages: int = 4
    spmat_sram_bytes: int = 128 * 1024  # per PE
    spmat_entry_bits: int = 8  # one (v, z) pair
    spmat_read_bits: int = 64  # one SRAM row: 8 entries per read
    ptr_sram_bytes: int = 32 * 1024  # per PE
    # The paper's 16-bit pointers address 64K entries, half the 128 KB SRAM; a layer
    # whose PE share has more entries is split into column blocks.
    ptr_bits: int = 16
    index_bits: int = 4  # codebook index v
    run_bits: int = 4  # relative row index z
    weight_bits: int = 16  # codebook values, fixed point
    act_bits: int = 16  # activations, fixed point
    # The modeled accumulator sums exactly and saturates once, to acc_bits, when a
    # layer finishes (the hardware is assumed to have guard bits). The lowering keeps
    # each layer's range inside it (convert_onnx_to_eie.range_safe_weight_format).
    acc_bits: int = 32
    regfile_entries: int = 64  # per PE, each of source and destination
    act_sram_bytes: int = 2 * 1024  # per PE, for vectors longer than the register files
    dma_words_per_cycle: int = 4  # 32-bit words per cycle between DRAM and the chip
    host_words_per_cycle: int = 1  # 32-bit words per cycle between host and chip
    energy: EIEEnergy = field(default_factory=EIEEnergy)

    LIMITS: ClassVar = {
        **SparseMachineConfig.LIMITS,
        "index_bits": (1, 8),
        "run_bits": (1, 8),
        "regfile_entries": (1, 1 << 20),
        "act_sram_bytes": (0, 1 << 32),
    }  # fmt: skip
    """Each field's range (spec/config.py checks them): beyond them a size would
    overflow, a rate divide by zero, or a width leave the 62 bits the arithmetic holds."""

    def __post_init__(self):
        self.check_fields()
        _check(self.index_bits + self.run_bits == self.spmat_entry_bits,
               "index_bits + run_bits must equal spmat_entry_bits")  # fmt: skip
        _check(self.spmat_read_bits % self.spmat_entry_bits == 0,
               "spmat_read_bits must be a multiple of spmat_entry_bits")  # fmt: skip

    # -- derived sizes: computed here and nowhere else ----------------------------------

    @property
    def codebook_entries(self) -> int:
        return 1 << self.index_bits

    @property
    def act_capacity(self) -> int:
        """Elements of one activation vector the chip holds: register files, else SRAM."""
        sram = self.act_sram_bytes * 8 // self.act_bits
        return self.num_pes * max(self.regfile_entries, sram)

    @property
    def regfile_capacity(self) -> int:
        """Vector length the register files hold without batching (4K by default)."""
        return self.num_pes * self.regfile_entries


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
