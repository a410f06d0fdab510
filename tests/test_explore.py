"""`dlhwc explore`: the Pareto front and its recipes, determinism, resuming, Ray, and one
clean error line for every bad input.

The runs are tiny (a few trials, one epoch, one pruning step, --max-drop 100 so that
every point is feasible): they check the machinery, not the search's quality, which
`test_digits_mlp_reaches_35x` (slow) does.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from dlhwc.compiler.cli import main
from dlhwc.compiler.explore import Options, explore
from dlhwc.compiler.frontend.onnx_importer import import_file
from dlhwc.compiler.pipeline import apply_passes, parse_pipeline
from dlhwc.compiler.plugins import available_passes
from dlhwc.spec.eie.config import EIEConfig

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MLP = EXAMPLES / "models" / "digits_mlp.onnx"
LSTM = EXAMPLES / "models" / "digits_lstm.onnx"
TRAIN = EXAMPLES / "data" / "digits_train.npz"
TEST = EXAMPLES / "data" / "digits_test.npz"
TEST_SEQ = EXAMPLES / "data" / "digits_test_seq.npz"
CALIB_SEQ = EXAMPLES / "data" / "digits_calib_seq.npz"

# 3 trials in one batch of 3, with the machine searched: every file kind is written.
TINY = ["--trials", "3", "--population", "3", "--epochs", "1", "--prune-steps", "2",
        "--max-drop", "100", "--search-hw"]  # fmt: skip


@pytest.fixture(autouse=True)
def _no_tracebacks(monkeypatch):
    monkeypatch.delenv("DLHWC_TRACEBACK", raising=False)


def explore_argv(out, *extra, model=MLP, target="eie", train=TRAIN, data=TEST) -> list[str]:
    argv = ["explore", model, "--target", target, "--train", train, "--data", data]
    return [str(a) for a in [*argv, "--out", out, *extra]]


def dlhwc(capsys, argv) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def options(out: Path, trials: int = 3, **kw) -> Options:
    """The API form of TINY (paths made absolute so that any cwd gives the same JSON)."""
    settings = dict(model=str(MLP), target="eie", train=str(TRAIN), data=str(TEST),
                    out=str(out), trials=trials, population=3, epochs=1, prune_steps=2,
                    max_drop=100.0, search_hw=True, jobs=2)  # fmt: skip
    return Options(**(settings | kw))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """One tiny search through the CLI with 2 worker processes, run in its own cwd (the
    outputs name DIR as given: 'out')."""
    cwd = tmp_path_factory.mktemp("reference")
    here = os.getcwd()
    os.chdir(cwd)
    try:
        assert main(explore_argv("out", *TINY, "--jobs", "2")) == 0
    finally:
        os.chdir(here)
    return cwd / "out"


def test_front_and_recipes(reference, capsys):
    report = json.loads((reference / "pareto.json").read_text())
    assert report["trials"] == {"total": 3, "complete": 3, "failed": 0, "feasible": 3}
    assert report["points"], "with --max-drop 100 the front has a point"
    assert 0.9 < report["float_accuracy"] < 1.0
    for point in report["points"]:
        for key in ("accuracy", "drop", "rate", "bytes", "cycles", "energy_pj", "recipe"):
            assert point[key] is not None, key
        assert point["bytes"] > 0 and point["cycles"] > 0 and point["energy_pj"] > 0
        assert point["drop"] == pytest.approx(100 * (report["float_accuracy"] - point["accuracy"]))
        recipe = reference / point["recipe"]
        assert recipe.is_file()
        # The recipe is what prune and share-weights read.
        module = import_file(MLP)
        spec = f"prune{{recipe={recipe}}},share-weights{{recipe={recipe}}}"
        apply_passes(module, parse_pipeline(spec, available_passes()))
        # The machine file is a valid --hw, and says what the point ran on.
        config = EIEConfig.load(reference / point["hw"])
        assert config.num_pes == point["machine"]["num_pes"]
        assert config.fifo_depth == point["machine"]["fifo_depth"]
    # The point's command rebuilds its program with the accuracy it reports.
    point = report["points"][0]
    os.chdir(reference.parent)
    try:
        code, out, err = dlhwc(
            capsys,
            ["eval", str(MLP), "--target", "eie", "-p", point["pipeline"], "--hw",
             f"out/{point['hw']}", "--data", str(TEST), "--labels", "labels"],
        )  # fmt: skip
    finally:
        os.chdir(ROOT)
    assert code == 0, err
    assert f"{100 * point['accuracy']:.2f}%" in out.splitlines()[-1]
    kept = {p.name for p in (reference / "points").iterdir()}
    assert kept == {f"trial-{p['trial']:04d}" for p in report["points"]}


def test_same_options_same_bytes_with_any_jobs(reference, tmp_path):
    os.chdir(tmp_path)
    try:
        assert main(explore_argv("out", *TINY, "--jobs", "1")) == 0
    finally:
        os.chdir(ROOT)
    assert (tmp_path / "out" / "pareto.json").read_bytes() == (
        reference / "pareto.json"
    ).read_bytes()
    for recipe in (reference / "points").rglob("*.toml"):
        assert (tmp_path / "out" / recipe.relative_to(reference)).read_bytes() == (
            recipe.read_bytes()
        )


def test_progress_line_on_a_terminal_and_the_page(tmp_path, capsys, monkeypatch):
    from html.parser import HTMLParser

    from dlhwc.spec import progress

    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    monkeypatch.delenv("DLHWC_PROGRESS", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    page = tmp_path / "front.html"
    argv = explore_argv(tmp_path / "out", "--trials", "1", "--epochs", "1", "--prune-steps",
                        "1", "--jobs", "1", "--html", str(page))  # fmt: skip
    code, out, err = dlhwc(capsys, argv)
    assert code == 0, err
    assert "explore 1/1 trials" in err and "trial 0: " in err
    assert "Pareto front" in out

    class Sections(HTMLParser):
        found: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag == "section":
                self.found.append(dict(attrs).get("id"))

    parser = Sections()
    parser.feed(page.read_text())
    assert "pareto" in parser.found
    points = json.loads((tmp_path / "out" / "pareto.json").read_text())["points"]
    text = page.read_text()
    assert ("<svg" in text) == bool(points)
    for point in points:
        assert point["recipe"] in text


def test_resume_does_not_redo_trials(reference, tmp_path):
    out = tmp_path / "out"
    seen: list[int] = []

    def progress(done, total, number, outcome, feasible):
        seen.append(number)

    explore(options(out, trials=2), progress)
    assert sorted(seen) == [0, 1]
    seen.clear()
    explore(options(out, trials=3), progress)
    assert seen == [2], "only the new trial runs"
    seen.clear()
    explore(options(out, trials=3), progress)
    assert seen == [], "a finished study runs nothing"
    # Split into runs or not, the study is the same (paths differ only by DIR).
    text = (out / "pareto.json").read_text().replace(str(out), "out")
    assert text == (reference / "pareto.json").read_text()


def test_interrupted_batch_is_finished_with_its_choices(reference, tmp_path):
    out = tmp_path / "out"

    def stop(done, total, number, outcome, feasible):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        explore(options(out), stop)
    import optuna

    study = optuna.load_study(
        study_name="explore",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(out / "study.journal"))
        ),
    )
    running = [t.number for t in study.trials if t.state.name == "RUNNING"]
    assert len(running) == 2 and len(study.trials) == 3
    assert not (out / "pareto.json").exists()
    seen: list[int] = []
    explore(options(out), lambda done, total, number, outcome, feasible: seen.append(number))
    assert sorted(seen) == running
    text = (out / "pareto.json").read_text().replace(str(out), "out")
    assert text == (reference / "pareto.json").read_text()


def test_ray_cluster(reference, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        address = ray.get_runtime_context().gcs_address
        cmd = [
            sys.executable,
            "-m",
            "dlhwc.compiler.cli",
            *explore_argv("out", *TINY, "--ray", address),
        ]
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    finally:
        ray.shutdown()
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "pareto.json").read_bytes() == (
        reference / "pareto.json"
    ).read_bytes()


def test_ese_without_retraining(tmp_path, capsys):
    # ESE searches linear weight bits (quantize's weight_bits); --epochs 0 for a model
    # that retrain cannot train. The calibration images carry no labels: not needed.
    argv = explore_argv(tmp_path / "out", "--trials", "2", "--epochs", "0", "--jobs", "1",
                        "--max-drop", "100", model=LSTM, target="ese", train=CALIB_SEQ,
                        data=TEST_SEQ)  # fmt: skip
    code, out, err = dlhwc(capsys, argv)
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "pareto.json").read_text())
    assert report["space"]["layers"] == ["lstm.W", "lstm.R", "fc"]
    point = report["points"][0]
    recipe = tmp_path / "out" / point["recipe"]
    assert "weight_bits = " in recipe.read_text()
    module = import_file(LSTM)
    apply_passes(module, parse_pipeline(f"prune{{recipe={recipe}}},quantize{{recipe={recipe}}}",
                                        available_passes()))  # fmt: skip
    assert "retrain{" not in point["pipeline"]
    assert point["pipeline"].count("prune{") == 1, "without retraining, one pruning step"


# -- errors: one line, status 1, no output --------------------------------------------------


def assert_error(capsys, argv, out: Path | None, *fragments) -> None:
    """One `dlhwc: error:` line with every fragment, status 1, and nothing written to
    ``out`` (None: not checked)."""
    code, _, err = dlhwc(capsys, argv)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dlhwc: error: "), lines[0]
    for fragment in fragments:
        assert str(fragment) in lines[0], (fragment, lines[0])
    assert code == 1
    if out is not None and not out.is_file():
        assert not out.exists() or not any(out.iterdir()), "output was written"


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def test_missing_files(tmp_path, capsys):
    out = tmp_path / "out"
    missing = tmp_path / "missing.npz"
    assert_error(capsys, explore_argv(out, model=tmp_path / "none.onnx"), out, "none.onnx",
                 "no such")  # fmt: skip
    assert_error(capsys, explore_argv(out, train=missing), out, "missing.npz", "no such")
    assert_error(capsys, explore_argv(out, data=missing), out, "missing.npz", "no such")


def test_wrong_keys(tmp_path, capsys):
    out = tmp_path / "out"
    no_labels = tmp_path / "no_labels.npz"
    with np.load(TRAIN) as d:
        np.savez(no_labels, input=d["input"])
    wrong_input = tmp_path / "wrong_input.npz"
    with np.load(TEST) as d:
        np.savez(wrong_input, x=d["input"], labels=d["labels"])
    assert_error(capsys, explore_argv(out, train=no_labels), out, "no_labels.npz", "--train",
                 "'labels'")  # fmt: skip
    assert_error(capsys, explore_argv(out, data=wrong_input), out, "wrong_input.npz", "--data",
                 "'input'")  # fmt: skip
    assert_error(capsys, explore_argv(out, "--labels", "y"), out, "'y'")


def test_bad_options(tmp_path, capsys):
    out = tmp_path / "out"
    assert_error(capsys, explore_argv(out, target="tpu"), out, "unknown target 'tpu'")
    assert_error(capsys, explore_argv(out, "--max-drop", "-1"), out, "--max-drop", "-1")
    assert_error(capsys, explore_argv(out, "--trials", "0"), out, "--trials")
    assert_error(capsys, explore_argv(out, "--sampler", "grid"), out, "unknown sampler")


def test_unwritable_out(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("not a directory")
    assert_error(capsys, explore_argv(a_file), a_file, "not a directory")
    assert a_file.read_text() == "not a directory"
    under = a_file / "out"
    assert_error(capsys, explore_argv(under), tmp_path / "none", "is not a directory")


def test_model_without_weights(tmp_path, capsys):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 64])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["y"])], "g", [x], [y])
    model = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                 tmp_path / "relu.onnx")  # fmt: skip
    out = tmp_path / "out"
    assert_error(capsys, explore_argv(out, model=model), out, "relu.onnx", "no weight matrix")


def test_model_retrain_cannot_train(tmp_path, capsys):
    rng = np.random.default_rng(0)
    w1 = helper.make_tensor("w1", TensorProto.FLOAT, [64, 32], rng.normal(size=64 * 32))
    w2 = helper.make_tensor("w2", TensorProto.FLOAT, [32, 10], rng.normal(size=32 * 10))
    nodes = [
        helper.make_node("MatMul", ["input", "w1"], ["h"], name="fc1"),
        helper.make_node("Softplus", ["h"], ["a"], name="act"),
        helper.make_node("MatMul", ["a", "w2"], ["y"], name="fc2"),
    ]
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[w1, w2])
    model = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                 tmp_path / "softplus.onnx")  # fmt: skip
    out = tmp_path / "out"
    assert_error(capsys, explore_argv(out, model=model), out, "retrain", "Softplus",
                 "--epochs 0")  # fmt: skip


def test_ray_address_nobody_listens_on(tmp_path, capsys):
    pytest.importorskip("ray")
    import socket

    with socket.socket() as sock:  # a loopback port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "out"
    address = f"127.0.0.1:{port}"
    assert_error(capsys, explore_argv(out, "--ray", address), out, f"--ray {address}",
                 "no Ray cluster")  # fmt: skip


def test_rerun_with_other_settings(reference, capsys):
    before = (reference / "pareto.json").read_bytes()
    argv = explore_argv(reference, *TINY, "--seed", "1")
    assert_error(capsys, argv, None, "other settings", "seed")
    assert (reference / "pareto.json").read_bytes() == before


@pytest.mark.slow
def test_digits_mlp_reaches_35x(tmp_path):
    """The search's result that matters: a point of at least 35x (P+Q+H) within one point
    of float accuracy on the test split, in 40 trials (the README's command)."""
    report = explore(
        Options(model=str(MLP), target="eie", train=str(TRAIN), data=str(TEST),
                out=str(tmp_path / "out"), max_drop=1.0, trials=40, sampler="tpe")
    )  # fmt: skip
    best = max(report["points"], key=lambda p: p["rate"])
    assert best["rate"] >= 35 and best["drop"] <= 1.0
