"""Passes from outside dlhwc: plugin files, the `dlhwc.passes` entry-point group, and
dlhwc's dialects and passes in stock `xdsl-opt` (entry point `xdsl.universe`)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dlhwc.compiler.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PLUGIN = ROOT / "examples" / "plugins" / "count_ops.py"
MLP = ROOT / "tests" / "models" / "exported" / "torch_mlp_ts13.onnx"
SKL_MLP = ROOT / "tests" / "models" / "exported" / "skl_mlp.onnx"


@pytest.fixture(autouse=True)
def _no_tracebacks(monkeypatch):
    monkeypatch.delenv("DLHWC_TRACEBACK", raising=False)


def dlhwc(capsys, *argv) -> tuple[str, str]:
    """Run the CLI in-process, expecting success; returns (stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DLHWC_TRACEBACK"}
    return {**env, **extra}


# ---------------------------------------------------------------------------------------
# examples/plugins/count_ops.py


def test_passes_lists_the_example_plugin_passes(capsys):
    out, _ = dlhwc(capsys, "passes", "--load-pass-plugin", EXAMPLE_PLUGIN)
    names = {line.split("{")[0] for line in out.splitlines() if line and not line[0].isspace()}
    assert {"count-ops", "strip-node-names", "fold-constants"} <= names


def with_example_plugin(capsys, model: Path, pipeline: str) -> tuple[str, str]:
    return dlhwc(capsys, "compile", model, "--load-pass-plugin", EXAMPLE_PLUGIN, "-p", pipeline)


def test_count_ops_prints_a_histogram(capsys):
    _, err = with_example_plugin(capsys, SKL_MLP, "count-ops{onnx-only=true}")
    lines = err.splitlines()
    assert lines[0] == "// count-ops: 18 ops"
    assert "     6  onnx.Constant" in lines
    assert "     1  onnx.Node(ai.onnx.ml.ArrayFeatureExtractor)" in lines
    assert not any("func." in line for line in lines)


def test_count_ops_leaves_the_ir_unchanged(capsys):
    plain, _ = dlhwc(capsys, "compile", MLP)
    counted, _ = with_example_plugin(capsys, MLP, "count-ops")
    assert counted == plain


def test_count_ops_and_strip_node_names_in_one_pipeline(capsys):
    plain, _ = dlhwc(capsys, "compile", MLP)
    out, err = with_example_plugin(capsys, MLP, "count-ops,strip-node-names")
    assert "     3  onnx.Gemm" in err.splitlines()
    assert 'loc("' in plain and "loc(" not in out
    assert out.count("onnx.") == plain.count("onnx.")


# ---------------------------------------------------------------------------------------
# A plugin file written outside the project

TAG_PLUGIN = '''
from dataclasses import dataclass
from typing import ClassVar

from xdsl.dialects.builtin import StringAttr
from xdsl.passes import ModulePass


@dataclass(frozen=True)
class TagPass(ModulePass):
    """Tag the module with a `plugin.tag` attribute."""

    name: ClassVar[str] = "tag-module"

    tag: str = "untagged"

    def apply(self, ctx, op):
        op.attributes["plugin.tag"] = StringAttr(self.tag)
'''


def test_plugin_file_outside_the_project(capsys, tmp_path):
    plugin = tmp_path / "tag_plugin.py"
    plugin.write_text(TAG_PLUGIN)
    out, _ = dlhwc(
        capsys, "compile", MLP, "--load-pass-plugin", plugin, "-p", "tag-module{tag=hello}"
    )
    assert 'plugin.tag = "hello"' in out.splitlines()[0]


# ---------------------------------------------------------------------------------------
# The `dlhwc.passes` entry-point group of installed packages

ENTRY_POINT_MODULE = '''
from dataclasses import dataclass
from typing import ClassVar

from xdsl.passes import ModulePass


@dataclass(frozen=True)
class HelloPass(ModulePass):
    """A pass registered by class through an entry point."""

    name: ClassVar[str] = "hello-entry-point"

    def apply(self, ctx, op):
        pass


@dataclass(frozen=True)
class ByePass(ModulePass):
    """A pass registered through an entry point naming a function."""

    name: ClassVar[str] = "bye-entry-point"

    def apply(self, ctx, op):
        pass


def all_passes():
    return [ByePass]
'''


@pytest.fixture
def fake_distribution(tmp_path) -> Path:
    """A directory that, on sys.path, holds an 'installed' package with dlhwc passes."""
    (tmp_path / "fake_dlhwc_passes.py").write_text(ENTRY_POINT_MODULE)
    dist_info = tmp_path / "fake_dlhwc_passes-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-dlhwc-passes\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [dlhwc.passes]
            hello = fake_dlhwc_passes:HelloPass
            bye = fake_dlhwc_passes:all_passes
            """
        )
    )
    return tmp_path


def test_entry_point_passes_are_listed(fake_distribution):
    result = subprocess.run(
        [sys.executable, "-m", "dlhwc.compiler.cli", "passes"],
        capture_output=True,
        text=True,
        env=subprocess_env(PYTHONPATH=str(fake_distribution)),
        cwd=fake_distribution,
    )
    assert result.returncode == 0, result.stderr
    names = [line for line in result.stdout.splitlines() if line and not line[0].isspace()]
    assert {"hello-entry-point", "bye-entry-point"} <= set(names)


# ---------------------------------------------------------------------------------------
# Stock xdsl-opt with dlhwc's universe

SMALL_MODULE = """\
builtin.module {
  func.func @main(%x: tensor<?x4xf32>) -> tensor<?x4xf32> {
    %a = onnx.Constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32> loc("a")
    %b = onnx.Constant dense<2.0> : tensor<4xf32> loc("b")
    %c = onnx.Mul(%a, %b) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32> loc("scale")
    %y = onnx.Add(%x, %c) : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32> loc("add")
    func.return %y : tensor<?x4xf32>
  }
}
"""


def test_xdsl_opt_runs_fold_constants_on_onnx_ir(tmp_path):
    source = tmp_path / "small.mlir"
    source.write_text(SMALL_MODULE)
    xdsl_opt = Path(sys.executable).with_name("xdsl-opt")
    result = subprocess.run(
        [str(xdsl_opt), str(source), "-p", "fold-constants"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "onnx.Mul" not in result.stdout
    folded = "dense<[2.000000e+00, 4.000000e+00, 6.000000e+00, 8.000000e+00]> : tensor<4xf32>"
    assert f'%c = onnx.Constant {folded} loc("scale")' in result.stdout
    assert "%y = onnx.Add(%x, %c) : (tensor<?x4xf32>, tensor<4xf32>)" in result.stdout
