"""Fuzzing every command with malformed input of every kind (tests/fuzzing.py).

Hypothesis draws the random choices of each category's mutator (derandomized, so every
run tries the same cases; a failure shrinks to a small one); a seeded corpus adds cases
of every category. `DLHWC_FUZZ_EXAMPLES` sets the examples per category (default 60);
benchmarks/fuzz_malformed.py runs thousands.
"""

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import fuzzing

EXAMPLES = int(os.environ.get("DLHWC_FUZZ_EXAMPLES", "60"))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> fuzzing.Seeds:
    return fuzzing.seeds(tmp_path_factory.mktemp("seeds"))


@pytest.fixture(autouse=True)
def _no_tracebacks(monkeypatch):
    monkeypatch.delenv("DLHWC_TRACEBACK", raising=False)


@pytest.mark.parametrize("category", list(fuzzing.CATEGORIES))
def test_malformed_input(category, seeds, tmp_path_factory):
    make = fuzzing.CATEGORIES[category]

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(st.randoms(use_true_random=False))
    def one(rng: random.Random):
        case = make(rng, seeds)
        workdir = tmp_path_factory.mktemp(category)
        outcome = fuzzing.run_case(case, workdir)
        fuzzing.check(case, outcome, workdir)

    one()


def test_seeded_corpus(seeds, tmp_path_factory):
    """Five cases of every category from a fixed seed, as the benchmark makes them."""
    for case in fuzzing.corpus(seed=11, per_category=5, s=seeds):
        workdir = tmp_path_factory.mktemp(case.category)
        fuzzing.check(case, fuzzing.run_case(case, workdir), workdir)


def test_seeds_are_valid(seeds, tmp_path_factory):
    """The unmutated seeds pass every command: the oracle can tell a fix from a refusal."""
    files = {"m.onnx": seeds.model, "m.mlir": seeds.ir.encode(), "c.mlir": seeds.comp_ir.encode(),
             "p.dlhw": seeds.program, "p.s": seeds.asm.encode(), "x.npz": seeds.input,
             "hw.toml": seeds.hw.encode()}  # fmt: skip
    commands = [
        ["compile", "@m.onnx", "--target", "eie", "--hw", "@hw.toml", "-o", "@o.dlhw"],
        ["opt", "@c.mlir", "-o", "@o.mlir"],
        ["run", "@m.mlir", "--input", "@x.npz", "--output", "@o.npz"],
        ["run", "@p.dlhw", "--input", "@x.npz", "--stats", "@s.json"],
        ["report", "@p.dlhw"],
        ["report", "@p.dlhw", "--input", "@x.npz", "--html", "@r.html"],
        ["export", "@c.mlir", "-o", "@o.onnx"],
        ["eval", "@m.onnx", "--data", "@x.npz", "--compressed", "@c.mlir"],
        ["asm", "@p.s", "-o", "@o2.dlhw"],
        ["disasm", "@p.dlhw"],
        ["passes"],
    ]
    for argv in commands:
        case = fuzzing.Case("seed", argv, files, invalid=False)
        workdir = tmp_path_factory.mktemp("seed")
        outcome = fuzzing.run_case(case, workdir)
        assert outcome.status == 0, f"{argv}: {outcome.stderr}"
