"""compiler/estimate.py: the static cycle and energy estimate, against the simulator."""

from pathlib import Path

import numpy as np
import pytest

from dlhwc.compiler.estimate import estimate, matrix_estimate
from dlhwc.compiler.pipeline import compile_for_target
from dlhwc.compiler.plugins import available_passes
from dlhwc.runtime.eie.sim import Simulator
from dlhwc.spec.container import Container
from dlhwc.spec.eie.config import EIEConfig
from dlhwc.spec.ese.config import ESEConfig

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "examples" / "models" / "digits_mlp.onnx"
LSTM = ROOT / "examples" / "models" / "digits_lstm.onnx"
PIPELINE = (
    "prune{sparsity=0.9},share-weights{bits=4 zero-code=true},quantize{weight-bits=16 act-bits=16}"
)


def test_estimate_counts_the_simulators_events_for_a_vector_without_zeros():
    """For an input with no zero activation, the first layer's events per vector are the
    simulator's exactly, and its cycles within the FIFO's start-up of the estimate."""
    comp = compile_for_target(str(MLP), "eie", PIPELINE, available_passes(), "comp")
    container = compile_for_target(str(MLP), "eie", PIPELINE, available_passes(), "dlhw")
    sim = Simulator(Container.from_bytes(container.to_bytes()))
    _, stats = sim.run({"input": np.full((3, 64), 0.5, np.float32)})
    fc1 = stats.layers[0]
    assert fc1["name"] == "fc1" and fc1["activation_density"] == 1.0
    est = estimate(comp, "eie", sim.config)["fc1"]
    assert est.events == {k: fc1["events"][k] // 3 for k in est.events}
    assert set(est.events) == {"spmat_read", "ptr_read", "codebook_lookup", "mac", "lnzd"}
    compute = fc1["cycles_breakdown"]["compute"] / 3
    assert est.cycles <= compute <= est.cycles + sim.config.fifo_depth
    assert est.energy_pj == pytest.approx(
        sum(fc1["energy_breakdown_pj"][k] for k in est.events) / 3
    )


def test_estimate_of_a_dense_matrix_is_the_simulators_dense_baseline():
    cfg = EIEConfig()
    for rows, cols in ((300, 64), (100, 300), (10, 100), (64, 5000)):
        est = matrix_estimate(np.ones((rows, cols), bool), cfg)
        refills = max(0, -(-cols // cfg.regfile_capacity) - 1)
        baseline = cols * -(-rows // cfg.num_pes) + cfg.pipeline_stages
        assert est.cycles == baseline + refills * cfg.regfile_entries


def test_estimate_counts_fillers_and_empty_columns():
    cfg = EIEConfig(num_pes=1)
    mask = np.zeros((41, 3), bool)
    mask[40, 0] = True  # two fillers and the weight: 3 entries; two empty columns: 1 each
    est = matrix_estimate(mask, cfg)
    assert est.cycles == 3 + 1 + 1 + cfg.pipeline_stages
    assert est.events["mac"] == 3 and est.events["ptr_read"] == 3


def test_estimate_covers_the_layers_the_target_runs():
    module = compile_for_target(str(LSTM), "ese", None, available_passes(), "comp")
    ese = estimate(module, "ese", ESEConfig())
    assert sorted(ese) == ["lstm:lstm.R", "lstm:lstm.W"]  # the Gemm stays on the host
    assert "mac" in ese["lstm:lstm.R"].events and "lnzd" not in ese["lstm:lstm.R"].events
    assert sorted(estimate(module, "eie", EIEConfig())) == ["fc"]
