"""One trial of `dlhwc explore`: a compression recipe (and a machine) measured with the real
tools.

A trial is a `Problem` (the model, the data, the target and the fixed settings every
trial shares) and a `Choice` (what the search picked: per-layer sparsity and bits, and
with `--search-hw` the number of PEs, the FIFO depth and load-balanced pruning). It runs
in a worker process (compiler/explore.py's process pool or a Ray task):

1. it writes the choice as recipe files (compiler/passes/recipe.py) and, when the machine
   differs from the target's default, a hardware config (`--hw` format) into a scratch
   directory;
2. `compiler.pipeline.compile_for_target` compiles the model for the target with the
   pipeline of `pipeline_text`: Deep Compression's steps with retraining after each,
   pruning in `prune_steps` steps of a cubic schedule (Zhu & Gupta 2017) so that the
   survivors adapt before the next cut;
3. the compression ledger (compiler/compression/ledger.py) of the compressed IR gives
   the stored size after P+Q+H (pes=1: the storage format, Deep Compression's figure);
4. the program container runs in the target's simulator on the evaluation data
   (`Container.from_bytes`: the simulator sees only the container), which gives cycles
   and energy per input vector, and the evaluator (compiler/evaluate.py) compares its
   outputs with the float model's: the accuracy is the compiled program's, the numbers
   the accelerator would compute.

Nothing here depends on the worker: the same problem and choice give the same numbers.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dlhwc.spec.errors import DlhwcError

HW_KNOBS = ("num_pes", "fifo_depth")
"""The machine parameters `--search-hw` searches (fields of the target's config)."""


@dataclass(frozen=True)
class Problem:
    """What every trial of one search shares. Paths are as the user gave them."""

    model: str
    target: str
    train: str
    data: str
    labels: str
    layers: tuple[str, ...]  # recipe keys of the weight matrices, in program order
    hw: tuple[tuple[str, object], ...] = ()  # --hw overrides (energy as a nested tuple)
    epochs: int = 20  # of every retrain; 0: no retraining
    prune_steps: int = 3
    lr: float = 1e-3
    seed: int = 0

    @property
    def steps(self) -> int:
        """Pruning steps: without retraining between them, one cut is the same as many."""
        return self.prune_steps if self.epochs > 0 else 1

    @property
    def hw_overrides(self) -> dict:
        return {k: dict(v) if isinstance(v, tuple) else v for k, v in self.hw}


@dataclass(frozen=True)
class Choice:
    """One point of the search space."""

    sparsity: tuple[tuple[str, float], ...]  # (layer, fraction pruned)
    bits: tuple[tuple[str, int], ...]  # (layer, index bits on EIE / weight bits on ESE)
    machine: tuple[tuple[str, int], ...] = ()  # searched machine fields (num_pes, fifo_depth)
    balance: bool = False  # load-balance-aware pruning over the machine's PEs

    @property
    def machine_dict(self) -> dict[str, int]:
        return dict(self.machine)


@dataclass
class Outcome:
    """What a trial measured (or why it failed: a DlhwcError's message)."""

    accuracy: float | None = None
    float_accuracy: float | None = None
    bits: int | None = None  # compressed size after P+Q+H, in bits
    original_bits: int | None = None
    rate: float | None = None  # P+Q+H
    rate_pq: float | None = None
    cycles: float | None = None  # per input vector (per sequence on ESE)
    energy_pj: float | None = None  # per input vector
    time_us: float | None = None  # per input vector, at the machine's clock
    load_efficiency: float | None = None
    machine: dict[str, int] = field(default_factory=dict)  # num_pes, fifo_depth used
    error: str | None = None

    def to_attrs(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


# -- recipes and pipeline ---------------------------------------------------------------


def toml_key(name: str) -> str:
    """A layer name as a TOML key: bare when TOML allows it, else quoted (JSON's string
    escapes are TOML's)."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", name):
        return name
    return json.dumps(name, ensure_ascii=False)


def step_sparsity(final: float, step: int, steps: int) -> float:
    """The sparsity after pruning step ``step`` of ``steps`` (1-based): the cubic schedule
    s_k = s (1 - (1 - k/K)^3) of gradual pruning, which cuts most while many weights are
    left and little near the end; the last step is ``final`` exactly."""
    if step >= steps:
        return final
    return round(final * (1.0 - (1.0 - step / steps) ** 3), 4)


def recipe_text(problem: Problem, choice: Choice, step: int | None = None) -> str:
    """The recipe of ``choice`` (TOML, compiler/passes/recipe.py's format): per layer the
    sparsity and, on EIE, the codebook `bits` (share-weights), on ESE the linear
    `weight_bits` (quantize); `balance_pes` when pruning is load-balanced. With ``step``,
    the recipe of that pruning step (sparsities only)."""
    bits_key = "bits" if problem.target == "eie" else "weight_bits"
    bits = dict(choice.bits)
    pes = machine_config(problem, choice).num_pes if choice.balance else None
    lines = []
    for layer, sparsity in choice.sparsity:
        if step is not None:
            sparsity = step_sparsity(sparsity, step, problem.steps)
        lines += [f"[layers.{toml_key(layer)}]", f"sparsity = {sparsity!r}"]
        if step is None:
            lines.append(f"{bits_key} = {bits[layer]}")
        if pes is not None:
            lines.append(f"balance_pes = {pes}")
        lines.append("")
    return "\n".join(lines)


def hw_text(problem: Problem, choice: Choice) -> str | None:
    """The hardware config (`--hw` TOML) of the trial's machine: the `--hw` overrides and
    the searched fields; None when both are empty (the target's default machine)."""
    fields = problem.hw_overrides | choice.machine_dict
    if not fields:
        return None
    energy = fields.pop("energy", {})
    lines = [f"{k} = {v!r}" for k, v in sorted(fields.items())]
    if energy:
        lines += ["", "[energy]", *(f"{k} = {float(v)!r}" for k, v in sorted(energy.items()))]
    return "\n".join(lines) + "\n"


def machine_config(problem: Problem, choice: Choice):
    """The trial's machine as the target's config object."""
    from dlhwc.spec.targets import target as get_target

    cls = type(get_target(problem.target).load_config(None))
    return cls.from_dict(problem.hw_overrides | choice.machine_dict, "<explore machine>")


def pipeline_text(problem: Problem, recipe: str, steps: list[str]) -> str:
    """The compression pipeline of a trial (the `-p` of `dlhwc compile --target`).

    ``recipe`` is the path of the trial's recipe and ``steps`` those of the pruning steps
    before the last (which uses ``recipe``). EIE:

        prune{recipe=STEP_1}, retrain, ..., prune{recipe=RECIPE}, retrain,
        share-weights{recipe=RECIPE zero-code=true}, retrain,
        quantize{weight-bits=W act-bits=A calibration=TRAIN}, huffman

    ESE (linear weights, no codebook: per-layer weight bits go to quantize):

        prune{...}, retrain, ..., quantize{recipe=RECIPE act-bits=A calibration=TRAIN}

    With `epochs` 0 the retrain passes are left out. Activations are calibrated on the
    training inputs.
    """
    retrain = (
        f"retrain{{data={problem.train} labels={problem.labels} epochs={problem.epochs} "
        f"lr={problem.lr!r} seed={problem.seed}}}"
        if problem.epochs > 0
        else None
    )
    passes: list[str] = []
    for path in [*steps, recipe]:
        passes += [f"prune{{recipe={path}}}", retrain]
    config = machine_config(problem, Choice((), ()))
    if problem.target == "eie":
        passes += [f"share-weights{{recipe={recipe} zero-code=true}}", retrain]
        passes.append(
            f"quantize{{weight-bits={config.weight_bits} act-bits={config.act_bits} "
            f"calibration={problem.train}}}"
        )
        passes.append("huffman")
    else:
        passes.append(
            f"quantize{{recipe={recipe} act-bits={config.act_bits} calibration={problem.train}}}"
        )
    return ",".join(p for p in passes if p is not None)


@dataclass(frozen=True)
class Files:
    """Where a trial's recipe, pruning-step recipes and machine config are written."""

    recipe: Path
    steps: tuple[Path, ...]
    hw: Path | None

    @staticmethod
    def under(directory: Path, problem: Problem, choice: Choice) -> Files:
        steps = tuple(directory / f"prune-step-{k}.toml" for k in range(1, problem.steps))
        hw = directory / "hw.toml" if hw_text(problem, choice) is not None else None
        return Files(directory / "recipe.toml", steps, hw)

    def contents(self, problem: Problem, choice: Choice) -> dict[Path, str]:
        out = {self.recipe: recipe_text(problem, choice)}
        for k, path in enumerate(self.steps, start=1):
            out[path] = recipe_text(problem, choice, step=k)
        if self.hw is not None:
            out[self.hw] = hw_text(problem, choice)
        return out

    def pipeline(self, problem: Problem) -> str:
        return pipeline_text(problem, str(self.recipe), [str(p) for p in self.steps])


# -- running a trial ---------------------------------------------------------------------

_CACHE: dict[tuple, tuple] = {}


def _reference(problem: Problem):
    """(float module, inputs, labels) of the problem, loaded once per process."""
    key = (problem.model, problem.data, problem.labels)
    if key not in _CACHE:
        from dlhwc.compiler.evaluate import split_data
        from dlhwc.compiler.frontend.onnx_importer import import_file
        from dlhwc.compiler.functions import input_names, main_function
        from dlhwc.spec.fileio import load_arrays

        module = import_file(problem.model)
        names = input_names(main_function(module))
        arrays = load_arrays(problem.data, names[0] if len(names) == 1 else None)
        inputs, labels, _ = split_data(arrays, names, problem.labels, problem.data)
        _CACHE.clear()
        _CACHE[key] = (module, inputs, labels)
    return _CACHE[key]


def run_trial(problem: Problem, choice: Choice) -> Outcome:
    """Compile, simulate and measure one choice; a DlhwcError becomes a failed Outcome."""
    machine = machine_config(problem, choice)
    used = {k: getattr(machine, k) for k in HW_KNOBS}
    try:
        with tempfile.TemporaryDirectory(prefix="dlhwc-explore-") as tmp:
            files = Files.under(Path(tmp), problem, choice)
            for path, text in files.contents(problem, choice).items():
                path.write_text(text)
            outcome = measure(problem, files.pipeline(problem), files.hw)
    except DlhwcError as e:
        return Outcome(machine=used, error=e.message)
    outcome.machine = used
    return outcome


def measure(problem: Problem, pipeline: str, hw: Path | None, simulate: bool = True) -> Outcome:
    """Compile ``pipeline`` for the target, then run the program on the evaluation data
    (without ``simulate``: compile only, and return an empty Outcome)."""

    from dlhwc.compiler.compression.ledger import ledger
    from dlhwc.compiler.evaluate import compare_program
    from dlhwc.compiler.pipeline import compile_for_target
    from dlhwc.compiler.plugins import available_passes
    from dlhwc.spec.container import Container

    float_module, inputs, labels = _reference(problem)
    books = []
    container = compile_for_target(
        problem.model, problem.target, pipeline, available_passes(), "dlhw",
        str(hw) if hw is not None else None,
        after_compression=lambda module: books.append(ledger(module).total),
    )  # fmt: skip
    if not simulate:
        return Outcome()
    container = Container.from_bytes(container.to_bytes(), "<program>")
    from dlhwc.spec.targets import simulator_module

    simulator = simulator_module(container.target)
    outputs, stats = simulator.Simulator(container, "<program>").run(inputs)
    measured = compare_program(float_module, outputs, inputs, labels, problem.data)
    scored = [m for m in measured.values() if m["compressed_accuracy"] is not None]
    if not scored:
        raise DlhwcError(
            f"the labels '{problem.labels}' fit no output of the model (an accuracy needs "
            "an [N, classes] float output or an [N] integer output)",
            file=problem.data,
        )
    book, total = books[0], stats.total
    return Outcome(
        accuracy=scored[0]["compressed_accuracy"],
        float_accuracy=scored[0]["float_accuracy"],
        bits=book.compressed_pqh,
        original_bits=book.original,
        rate=book.rate_pqh,
        rate_pq=book.rate_pq,
        cycles=total["cycles_per_vector"],
        energy_pj=total["energy_pj_per_vector"],
        time_us=total["time_us_per_vector"],
        load_efficiency=total["load_efficiency"],
    )


# -- in worker processes -----------------------------------------------------------------


def quiet_worker() -> None:
    """A pool worker's initializer: Ctrl-C is the parent's to handle (it stops the pool)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_indexed(job: tuple[int, Problem, Choice]) -> tuple[int, Outcome]:
    """`run_trial` for a pool's imap: (index, problem, choice) -> (index, outcome)."""
    index, problem, choice = job
    return index, run_trial(problem, choice)


SHIPPED = {"model": ".onnx", "train": ".npz", "data": ".npz"}
"""The input files a remote worker receives as bytes, with the suffix they are saved as."""


def run_shipped(blobs: dict[str, bytes], problem: Problem, choice: Choice) -> Outcome:
    """`run_trial` on a Ray worker, which may be on another machine: the input files come
    as bytes and are saved once per worker process under the temporary directory."""
    import atexit
    import hashlib
    import os
    import shutil

    key = hashlib.sha256(b"".join(blobs[k] for k in sorted(blobs))).hexdigest()[:16]
    root = Path(tempfile.gettempdir()) / f"dlhwc-explore-{os.getpid()}-{key}"
    paths = {}
    for name, data in sorted(blobs.items()):
        path = root / f"{name}{SHIPPED[name]}"
        if not path.exists():
            if not root.exists():
                root.mkdir(parents=True)
                atexit.register(shutil.rmtree, root, True)
            part = path.with_name(path.name + ".part")
            part.write_bytes(data)
            part.replace(path)
        paths[name] = str(path)
    return run_trial(dataclasses.replace(problem, **paths), choice)
