"""`dlhwc explore`: a hardware-aware compression search over Deep Compression's knobs.

    dlhwc explore model.onnx --target eie|ese --train train.npz --data test.npz
                  [--max-drop POINTS] [--trials N] [--jobs J] [--seed S] [--out DIR]
                  [--ray ADDRESS] [--search-hw] [--hw CONFIG.toml] ...

What is searched (`Space`): per weight matrix, the sparsity (as the kept fraction, on a
log scale: density 1%..100% in whole percents, so that 0.90..0.99 get as many trials as
0..0.90) and the bits: on EIE the codebook index bits of share-weights (2..the machine's
`index_bits`, index 0 kept for the zero filler), on ESE the linear weight bits of
quantize (4..the machine's `weight_bits`). With `--search-hw` also the machine: the
number of PEs (the target's default / 4 .. x 4, powers of two), the activation FIFO
depth (1..16) and whether pruning is load-balanced over the PEs (ESE's
load-balance-aware pruning).

How a point is measured: compiler/explore_trial.py. In short, Deep Compression's
pipeline with retraining after each step (`prune` in `--prune-steps` steps, `retrain`
after each, `share-weights`, `retrain`, `quantize` calibrated on the training inputs,
`huffman`), compiled with `compile_for_target`; the ledger's P+Q+H size; the program's
accuracy, cycles and energy from the target's simulator on `--data`.

Objectives (Optuna, multi-objective): accuracy (max), compressed bytes (min), cycles per
input vector (min), energy per input vector (min); constraint: accuracy at most
`--max-drop` points below the float model's on `--data` (Optuna's `set_constraint`,
which replaced `constraints_func` in Optuna 5). The sampler is Optuna's multi-objective
TPE (default; multivariate, its first `--population` trials random) or NSGA-II
(`--sampler nsga2`, population `--population`). On the digits MLP, with 40 trials, TPE
found a point of 42x..49x within one point of float for each of five seeds; NSGA-II
with 5 generations of 8 found 28x..49x (4 objectives leave it little selection
pressure in so few generations).

Determinism and resuming: trials are proposed in batches of `--population`, whatever
`--jobs` is, by a sampler seeded from `--seed` and the batch's first trial number, and a
batch is evaluated completely before the next is proposed. Every trial's numbers depend
only on its choice (retraining is seeded, the simulator is exact, worker processes use
one BLAS thread). So the same options give the same trials and a byte-identical
`pareto.json`, with any `--jobs`, locally or on Ray. The study lives in
`DIR/study.journal` (Optuna's journal file storage); a rerun with the same DIR and
settings first finishes the trials an interrupted run left running (same numbers, same
choices), then proposes new ones until the study has `--trials` trials. Settings that
change the results (the files' contents, target, machine, max-drop, seed, search space,
retraining) are stored in the study and a rerun with other ones is refused.

Outputs in DIR: `pareto.json` (the feasible Pareto front, see `front_json`), and for
each point `points/trial-NNNN/recipe.toml` (usable as `prune{recipe=...}` and
`share-weights{recipe=...}`, or `quantize{recipe=...}` on ESE), the recipes of the
earlier pruning steps (`prune-step-K.toml`) and the machine (`hw.toml`, for `--hw`)
when it is not the default; the JSON gives the `dlhwc compile` command that rebuilds the
point. Point folders of earlier runs that left the front are removed.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from dlhwc.compiler.explore_trial import (
    HW_KNOBS,
    SHIPPED,
    Choice,
    Files,
    Outcome,
    Problem,
    quiet_worker,
    run_indexed,
    run_shipped,
)
from dlhwc.spec.errors import DlhwcError

OBJECTIVES = (
    ("accuracy", "maximize"),
    ("bytes", "minimize"),
    ("cycles", "minimize"),
    ("energy_pj", "minimize"),
)
SAMPLERS = ("nsga2", "tpe")
TARGETS = ("eie", "ese")
JOURNAL = "study.journal"
STUDY = "explore"
DENSITY_PERCENT = (1, 100)  # the kept fraction of a matrix, in percent, log-uniform
FIFO_DEPTHS = (1, 2, 4, 8, 16)
PE_FACTORS = (0.25, 0.5, 1, 2, 4)


@dataclass(frozen=True)
class Options:
    """The options of `dlhwc explore` (see compiler/cli.py for their help)."""

    model: str
    target: str
    train: str
    data: str
    out: str
    labels: str = "labels"
    max_drop: float = 1.0
    trials: int = 40
    jobs: int | None = None
    seed: int = 0
    ray: str | None = None
    search_hw: bool = False
    hw: str | None = None
    epochs: int = 20
    prune_steps: int = 3
    lr: float = 1e-3
    sampler: str = "tpe"
    population: int = 8


# -- the search space ---------------------------------------------------------------------


@dataclass(frozen=True)
class Space:
    """The parameters every trial chooses (Optuna distributions, named per layer)."""

    layers: tuple[str, ...]
    bits: tuple[int, int]
    num_pes: tuple[int, ...] = ()  # empty: the machine is not searched
    fifo_depth: tuple[int, ...] = ()

    def suggest(self, trial) -> Choice:
        """Ask ``trial`` (an optuna.Trial) for every parameter."""
        for layer in self.layers:
            trial.suggest_int(f"density:{layer}", *DENSITY_PERCENT, log=True)
            trial.suggest_int(f"bits:{layer}", *self.bits)
        if self.num_pes:
            trial.suggest_categorical("num_pes", self.num_pes)
            trial.suggest_categorical("fifo_depth", self.fifo_depth)
            trial.suggest_categorical("balance", (False, True))
        return self.choice(trial.params)

    def choice(self, params: dict) -> Choice:
        """The choice a trial's parameters stand for."""
        return Choice(
            sparsity=tuple(
                (layer, (100 - params[f"density:{layer}"]) / 100) for layer in self.layers
            ),
            bits=tuple((layer, params[f"bits:{layer}"]) for layer in self.layers),
            machine=tuple((k, params[k]) for k in HW_KNOBS if k in params),
            balance=bool(params.get("balance", False)),
        )

    def to_json(self) -> dict:
        out: dict[str, object] = {
            "layers": list(self.layers),
            "density_percent": {"low": DENSITY_PERCENT[0], "high": DENSITY_PERCENT[1],
                                "scale": "log"},
            "bits": {"low": self.bits[0], "high": self.bits[1]},
        }  # fmt: skip
        if self.num_pes:
            out |= {"num_pes": list(self.num_pes), "fifo_depth": list(self.fifo_depth),
                    "balance": [False, True]}  # fmt: skip
        return out


def make_space(problem: Problem, search_hw: bool) -> Space:
    from dlhwc.compiler.explore_trial import machine_config

    config = machine_config(problem, Choice((), ()))
    if problem.target == "eie":
        high = config.index_bits
        bits = (min(2, high), high)
    else:
        high = config.weight_bits
        bits = (min(4, high), high)
    if not search_hw:
        return Space(problem.layers, bits)
    low_pes, high_pes = config.LIMITS["num_pes"]
    pes = sorted({int(config.num_pes * f) for f in PE_FACTORS} & set(range(low_pes, high_pes + 1)))
    return Space(problem.layers, bits, tuple(pes), FIFO_DEPTHS)


# -- checking the input -------------------------------------------------------------------


@dataclass
class Setup:
    """A checked search: the problem, its space, the float accuracy, the settings."""

    problem: Problem
    space: Space
    float_accuracy: float
    settings: dict


def check_options(opts: Options) -> None:
    """Refuse bad numbers and names before any file is read."""
    if opts.target not in TARGETS:
        from dlhwc.spec.targets import targets

        if opts.target in targets():  # a plugin: its search space is not modeled here
            raise DlhwcError(f"explore searches the targets {', '.join(TARGETS)}, not "
                             f"'{opts.target}'")  # fmt: skip
        raise DlhwcError(f"unknown target '{opts.target}' (targets: {', '.join(TARGETS)})")
    if not (math.isfinite(opts.max_drop) and opts.max_drop >= 0):
        raise DlhwcError(f"--max-drop must be a finite number of points >= 0, not {opts.max_drop}")
    for flag, value, low in (("--trials", opts.trials, 1), ("--seed", opts.seed, 0),
                             ("--epochs", opts.epochs, 0), ("--prune-steps", opts.prune_steps, 1),
                             ("--population", opts.population, 1)):  # fmt: skip
        if value < low:
            raise DlhwcError(f"{flag} must be an integer >= {low}, not {value}")
    if opts.jobs is not None and opts.jobs < 1:
        raise DlhwcError(f"--jobs must be an integer >= 1, not {opts.jobs}")
    if not (math.isfinite(opts.lr) and opts.lr > 0):
        raise DlhwcError(f"--lr must be a number > 0, not {opts.lr}")
    if opts.sampler not in SAMPLERS:
        raise DlhwcError(f"unknown sampler '{opts.sampler}' (samplers: {', '.join(SAMPLERS)})")
    _check_out_dir(Path(opts.out))


def _check_out_dir(out: Path) -> None:
    """The output directory: an existing writable directory, or one that can be made."""
    where = str(out)
    if out.exists():
        if not out.is_dir():
            raise DlhwcError("--out exists and is not a directory", file=where)
        if not os.access(out, os.W_OK | os.X_OK):
            raise DlhwcError("--out is not a writable directory", file=where)
        return
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise DlhwcError(f"cannot make --out: {parent} is not a directory", file=where)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DlhwcError(f"cannot make --out: {parent} is not writable", file=where)


def prepare(opts: Options) -> Setup:
    """Check every input and run one quick compile (the probe), before any output."""
    from dlhwc.compiler.evaluate import compare, split_data
    from dlhwc.compiler.frontend.onnx_importer import import_file
    from dlhwc.compiler.functions import input_names, main_function
    from dlhwc.compiler.passes.weights import find_weights
    from dlhwc.spec.fileio import check_inputs, load_arrays

    check_options(opts)
    check_inputs([opts.model, opts.train, opts.data, opts.hw])
    if opts.ray:
        check_ray(opts.ray)
    if not Path(opts.model).is_file():
        raise DlhwcError("no such model file", file=opts.model)
    hw = _load_hw(opts)
    module = import_file(opts.model)
    slots = find_weights(module, "matrix")
    if not slots:
        raise DlhwcError(
            "the model has no weight matrix to compress (explore searches the sparsity "
            "and bits of Gemm, MatMul, Conv and LSTM/GRU/RNN weights)",
            file=opts.model,
        )
    names = input_names(main_function(module))
    single = names[0] if len(names) == 1 else None
    train = load_arrays(opts.train, single)
    _need(train, names, opts.train, "--train", opts.labels if opts.epochs > 0 else None)
    data = load_arrays(opts.data, single)
    _need(data, names, opts.data, "--data", opts.labels)
    inputs, labels, _ = split_data(data, names, opts.labels, opts.data)
    result = compare(module, module, inputs, labels, source=opts.data)
    scored = [o["float_accuracy"] for o in result["outputs"].values()]
    float_accuracy = next(a for a in scored if a is not None)

    problem = Problem(
        model=opts.model, target=opts.target, train=opts.train, data=opts.data,
        labels=opts.labels, layers=_layer_keys(slots), hw=hw, epochs=opts.epochs,
        prune_steps=opts.prune_steps, lr=float(opts.lr), seed=opts.seed,
    )  # fmt: skip
    space = make_space(problem, opts.search_hw)
    _probe(problem, space)
    settings = {
        "files": {k: _sha256(getattr(opts, k)) for k in ("model", "train", "data")},
        "target": opts.target,
        "labels": opts.labels,
        "hw": problem.hw_overrides,
        "max_drop": float(opts.max_drop),
        "seed": opts.seed,
        "sampler": opts.sampler,
        "population": opts.population,
        "epochs": opts.epochs,
        "prune_steps": opts.prune_steps,
        "lr": float(opts.lr),
        "space": space.to_json(),
    }
    return Setup(problem, space, float_accuracy, settings)


def _load_hw(opts: Options) -> tuple:
    """The `--hw` overrides, checked against the target's config, as a hashable tuple."""
    if not opts.hw:
        return ()
    import tomllib

    from dlhwc.spec.targets import target as get_target

    get_target(opts.target).load_config(opts.hw)  # the target's checks and messages
    data = tomllib.loads(Path(opts.hw).read_text())
    return tuple(
        (k, tuple(sorted(v.items())) if isinstance(v, dict) else v) for k, v in sorted(data.items())
    )


def _need(arrays: dict, names: list[str], path: str, flag: str, labels: str | None) -> None:
    missing = [n for n in names if n not in arrays]
    if labels is not None and labels not in arrays:
        missing.append(labels)
    if missing:
        what = ", ".join(f"'{m}'" for m in missing)
        raise DlhwcError(
            f"{flag} has no array {what} (it has: {', '.join(sorted(arrays)) or 'none'}; "
            f"explore needs the model's inputs {', '.join(names)}"
            + (f" and the labels '{labels}'" if labels else "")
            + ")",
            file=path,
        )


def _layer_keys(slots) -> tuple[str, ...]:
    """One recipe key per weight matrix: its layer's name, or the weight's own name when
    a layer has several matrices (an LSTM's W and R)."""
    per_layer: dict[str, int] = {}
    for slot in slots:
        per_layer[slot.layer] = per_layer.get(slot.layer, 0) + 1
    keys = [slot.layer if per_layer[slot.layer] == 1 else slot.name for slot in slots]
    return tuple(dict.fromkeys(keys))


def _probe(problem: Problem, space: Space) -> None:
    """Compile the model once with the search's pipeline (one pruning step at the lowest
    sparsity, one epoch of retraining) so that a model or data the passes refuse fails
    here, with the pass's message, and not in every trial."""
    from dlhwc.compiler.explore_trial import measure

    quick = dataclasses.replace(problem, epochs=min(problem.epochs, 1), prune_steps=1)
    params = {f"density:{k}": DENSITY_PERCENT[1] for k in space.layers}
    params |= {f"bits:{k}": space.bits[1] for k in space.layers}
    choice = space.choice(params)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dlhwc-explore-") as tmp:
        files = Files.under(Path(tmp), quick, choice)
        for path, text in files.contents(quick, choice).items():
            path.write_text(text)
        try:
            measure(quick, files.pipeline(quick), files.hw, simulate=False)
        except DlhwcError as e:
            if e.reason.startswith("retrain:"):
                raise DlhwcError(
                    f"{e.reason} (explore retrains after every compression step; "
                    "--epochs 0 searches without retraining)",
                    file=e.file,
                    where=e.where,
                ) from None
            raise


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- running trials -----------------------------------------------------------------------


class LocalRunner:
    """Trials in a pool of worker processes on this machine."""

    def __init__(self, jobs: int):
        import multiprocessing

        # One BLAS thread per worker: J workers share the cores, and a sum's rounding does
        # not depend on how many threads computed it.
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        self.pool = multiprocessing.get_context("spawn").Pool(jobs, initializer=quiet_worker)

    def run(self, problem: Problem, choices: list[Choice]) -> Iterator[tuple[int, Outcome]]:
        yield from self.pool.imap_unordered(
            run_indexed, [(i, problem, c) for i, c in enumerate(choices)]
        )

    def close(self, interrupted: bool = False) -> None:
        if interrupted:
            self.pool.terminate()
        else:
            self.pool.close()
        self.pool.join()


def check_ray(address: str, timeout: float = 5.0) -> None:
    """Refuse --ray early, before any output: without the ray package, or with a
    HOST:PORT nobody listens on (ray.init would retry for minutes)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise DlhwcError("--ray needs the ray package (pip install 'dlhwc[ray]')") from None
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # "auto", "local", "ray://...": ray.init resolves these itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise DlhwcError(
            f"--ray {address}: no Ray cluster answers there ({e.strerror or e})"
        ) from None


class RayRunner:
    """Trials as Ray tasks on the cluster at ``address`` (one CPU each)."""

    def __init__(self, address: str, problem: Problem):
        import logging

        import ray

        self.ray = ray
        self.owned = not ray.is_initialized()
        if self.owned:
            try:
                ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise DlhwcError(f"--ray {address}: {' '.join(str(e).split())}") from None
        env = {v: "1" for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        self.task = ray.remote(num_cpus=1, runtime_env={"env_vars": env})(run_shipped)
        self.blobs = ray.put({k: Path(getattr(problem, k)).read_bytes() for k in SHIPPED})

    def run(self, problem: Problem, choices: list[Choice]) -> Iterator[tuple[int, Outcome]]:
        pending = {self.task.remote(self.blobs, problem, c): i for i, c in enumerate(choices)}
        while pending:
            done, _ = self.ray.wait(list(pending), num_returns=1)
            for ref in done:
                yield pending.pop(ref), self.ray.get(ref)

    def close(self, interrupted: bool = False) -> None:
        if self.owned:
            self.ray.shutdown()


# -- the study ----------------------------------------------------------------------------

Progress = Callable[[int, int, int, Outcome, bool | None], None]
"""progress(trials done, trials wanted, trial number, outcome, feasible or None)."""


def drop_points(float_accuracy: float, accuracy: float) -> float:
    """The accuracy lost against float, in points (rounded so that k/N steps compare
    exactly with a --max-drop given in decimals)."""
    return round(100.0 * (float_accuracy - accuracy), 9)


def _sampler(opts: Options, number: int):
    """The sampler that proposes trial ``number``: seeded from --seed and the number, so
    that a trial's proposal does not depend on the runs the study was split into."""
    seed = int.from_bytes(hashlib.sha256(f"{opts.seed}:{number}".encode()).digest()[:4], "big")
    if opts.sampler == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, n_startup_trials=opts.population
        )
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=opts.population)


def _open_study(out: Path, setup: Setup, opts: Options):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(out / JOURNAL)))
    study = optuna.create_study(
        storage=storage, study_name=STUDY, load_if_exists=True,
        directions=[d for _, d in OBJECTIVES], sampler=_sampler(opts, 0),
    )  # fmt: skip
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", setup.settings)
    elif stored != json.loads(json.dumps(setup.settings)):
        changed = sorted(
            k for k in set(stored) | set(setup.settings)
            if stored.get(k) != json.loads(json.dumps(setup.settings.get(k)))
        )  # fmt: skip
        raise DlhwcError(
            f"holds a search with other settings ({', '.join(changed)} differ): rerun with "
            "the same inputs and options to continue it, or give another --out",
            file=str(out),
        )
    return study


def _lock(out: Path) -> int:
    """Hold the output directory for this run: two runs on one study would collide."""
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DlhwcError("another explore is running in this directory", file=str(out)) from None
    return fd


def _record(trial, outcome: Outcome, setup: Setup) -> bool | None:
    """Tell the study a trial's outcome; returns whether it is feasible (None: failed)."""
    for key, value in sorted(outcome.to_attrs().items()):
        trial.set_user_attr(key, value)
    if outcome.error is not None:
        trial.study.tell(trial, state=TrialState.FAIL)
        return None
    drop = drop_points(setup.float_accuracy, outcome.accuracy)
    trial.set_constraint("accuracy_drop", drop - setup.settings["max_drop"])
    values = [outcome.accuracy, math.ceil(outcome.bits / 8), outcome.cycles, outcome.energy_pj]
    trial.study.tell(trial, values)
    return drop <= setup.settings["max_drop"]


def _search(study, setup: Setup, opts: Options, runner, progress: Progress | None) -> None:
    """Run trials in batches until the study has --trials of them.

    Batches are the trials numbered [kP, (k+1)P) for P = --population, proposed together
    and evaluated completely before the next batch is proposed, so that every proposal
    sees the same finished trials whatever --jobs is and however the study was split
    into runs. Trials an interrupted run left running are finished first, with the
    choices they had.
    """

    def propose(number: int, make: Callable[[], optuna.trial.Trial]):
        study.sampler = _sampler(opts, number)
        trial = make()
        return trial, setup.space.suggest(trial)  # keeps the parameters a trial already has

    def run(proposed: list) -> None:
        trials = [t for t, _ in proposed]
        for index, outcome in runner.run(setup.problem, [c for _, c in proposed]):
            feasible = _record(trials[index], outcome, setup)
            if progress is not None:
                finished = (TrialState.COMPLETE, TrialState.FAIL)
                done = len(study.get_trials(deepcopy=False, states=finished))
                progress(done, opts.trials, trials[index].number, outcome, feasible)

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if stale:
        run([propose(t.number, lambda t=t: optuna.trial.Trial(study, t._trial_id)) for t in stale])
    population = opts.population
    while (start := len(study.trials)) < opts.trials:
        end = min(opts.trials, (start // population + 1) * population)
        run([propose(number, study.ask) for number in range(start, end)])


def explore(opts: Options, progress: Progress | None = None) -> dict:
    """Run (or continue) the search and write DIR's outputs; returns pareto.json's data."""
    setup = prepare(opts)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    lock = _lock(out)
    try:
        study = _open_study(out, setup, opts)
        if len(study.trials) < opts.trials or study.get_trials(
            deepcopy=False, states=(TrialState.RUNNING,)
        ):
            jobs = opts.jobs or len(os.sched_getaffinity(0))
            runner = RayRunner(opts.ray, setup.problem) if opts.ray else LocalRunner(jobs)
            interrupted = True
            try:
                _search(study, setup, opts, runner, progress)
                interrupted = False
            finally:
                runner.close(interrupted)
        report = front_json(study, setup, opts)
        _write_points(out, report, study, setup)
        from dlhwc.spec.fileio import write_atomic

        write_atomic(out / "pareto.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
        return report
    finally:
        os.close(lock)


# -- the front ----------------------------------------------------------------------------


def _point_dir(number: int) -> str:
    return f"points/trial-{number:04d}"


def front_json(study, setup: Setup, opts: Options) -> dict:
    """pareto.json: the search's settings and counts, and the feasible Pareto front.

    Each point (sorted by compressed size, then trial number; trials that chose the same
    parameters appear once):
      trial            the trial number
      accuracy, drop   the program's top-1 accuracy on --data (simulator outputs) and the
                       points lost against the float model (float_accuracy at the top)
      rate, rate_pq    compression rate P+Q+H and P+Q (the ledger's original / compressed)
      bytes            compressed size after P+Q+H, bytes (bits rounded up)
      cycles, energy_pj, time_us
                       per input vector (per sequence on ESE), from the simulator
      load_efficiency  busy / total PE cycles of the matrix products
      machine          num_pes and fifo_depth of the machine the point ran on
      layers           per matrix: sparsity and bits (EIE: codebook index bits; ESE:
                       linear weight bits)
      balance          whether pruning was load-balanced over the PEs
      recipe, hw       the point's recipe and machine (`--hw`) files, relative to DIR
                       (hw null: the target's default machine)
      pipeline, command  the `-p` pipeline and the `dlhwc compile` command that rebuild
                       the point's program (paths as given to explore)
    """
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    fa, limit = setup.float_accuracy, setup.settings["max_drop"]
    feasible = [t for t in complete if drop_points(fa, t.user_attrs["accuracy"]) <= limit]
    points, seen = [], set()
    for t in sorted(study.best_trials, key=lambda t: (t.values[1], t.number)):
        key = tuple(sorted(t.params.items()))
        if key in seen:
            continue
        seen.add(key)
        points.append(_point(t, setup, opts))
    return {
        "model": opts.model,
        "target": opts.target,
        "train": opts.train,
        "data": opts.data,
        "labels": opts.labels,
        "hw": opts.hw,
        "float_accuracy": fa,
        "max_drop": setup.settings["max_drop"],
        "seed": opts.seed,
        "sampler": opts.sampler,
        "objectives": dict(OBJECTIVES),
        "space": setup.space.to_json(),
        "retrain": {
            "epochs": opts.epochs,
            "prune_steps": opts.prune_steps,
            "lr": float(opts.lr),
        },  # fmt: skip
        "trials": {
            "total": len(trials),
            "complete": len(complete),
            "failed": sum(t.state == TrialState.FAIL for t in trials),
            "feasible": len(feasible),
        },
        "points": points,
    }


def _point(trial, setup: Setup, opts: Options) -> dict:
    a = trial.user_attrs
    choice = setup.space.choice(trial.params)
    folder = Path(opts.out) / _point_dir(trial.number)
    files = Files.under(folder, setup.problem, choice)
    pipeline = files.pipeline(setup.problem)
    command = f"dlhwc compile {opts.model} --target {opts.target} -p '{pipeline}'"
    if files.hw is not None:
        command += f" --hw {files.hw}"
    bits = dict(choice.bits)
    return {
        "trial": trial.number,
        "accuracy": a["accuracy"],
        "drop": drop_points(setup.float_accuracy, a["accuracy"]),
        "rate": a["rate"],
        "rate_pq": a["rate_pq"],
        "bytes": math.ceil(a["bits"] / 8),
        "cycles": a["cycles"],
        "energy_pj": a["energy_pj"],
        "time_us": a["time_us"],
        "load_efficiency": a["load_efficiency"],
        "machine": a["machine"],
        "layers": {k: {"sparsity": s, "bits": bits[k]} for k, s in choice.sparsity},
        "balance": choice.balance,
        "recipe": f"{_point_dir(trial.number)}/recipe.toml",
        "hw": f"{_point_dir(trial.number)}/hw.toml" if files.hw is not None else None,
        "pipeline": pipeline,
        "command": command,
    }


def _write_points(out: Path, report: dict, study, setup: Setup) -> None:
    """Each point's files under DIR/points; folders of points no longer on the front go."""
    from dlhwc.spec.fileio import write_atomic

    keep = {f"trial-{p['trial']:04d}" for p in report["points"]}
    root = out / "points"
    if root.is_dir():
        for old in sorted(root.glob("trial-*")):
            if old.name not in keep and old.is_dir():
                shutil.rmtree(old)
    for point in report["points"]:
        trial = study.trials[point["trial"]]
        choice = setup.space.choice(trial.params)
        folder = out / _point_dir(point["trial"])
        folder.mkdir(parents=True, exist_ok=True)
        files = Files.under(folder, setup.problem, choice)
        head = (
            f"# dlhwc explore, {report['model']} on {report['target']}, trial {point['trial']}: "
            f"accuracy {100 * point['accuracy']:.2f}% ({-point['drop']:+.2f} points), "
            f"P+Q+H {point['rate']:.1f}x\n"
        )
        for path, text in files.contents(setup.problem, choice).items():
            write_atomic(path, head + text if path == files.recipe else text)


def format_front(report: dict) -> str:
    """The front as a text table for the terminal (the JSON has every number)."""
    lines = [
        f"{report['trials']['total']} trials ({report['trials']['failed']} failed, "
        f"{report['trials']['feasible']} within {report['max_drop']:g} points of float "
        f"{100 * report['float_accuracy']:.2f}%); Pareto front: {len(report['points'])} "
        "point" + ("s" if len(report["points"]) != 1 else ""),
    ]
    if not report["points"]:
        return "\n".join(lines) + "\n"
    head = ("trial", "accuracy", "drop", "P+Q+H", "bytes", "cycles/vec", "nJ/vec", "PEs",
            "FIFO", "recipe")  # fmt: skip
    rows = [head] + [
        (str(p["trial"]), f"{100 * p['accuracy']:.2f}%", f"{p['drop']:+.2f}",
         f"{p['rate']:.1f}x", f"{p['bytes']:,}", f"{p['cycles']:,.0f}",
         f"{p['energy_pj'] / 1000:,.1f}", str(p["machine"]["num_pes"]),
         str(p["machine"]["fifo_depth"]), p["recipe"])
        for p in report["points"]
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines.append("")
    for n, r in enumerate(rows):
        cells = [
            c.rjust(w) if i < len(head) - 1 else c
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
