"""The target registry (spec/targets.py): targets come from the entry-point group
`dlhwc.targets`, and every part of dlhwc that needs a target asks the registry."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from importlib.metadata import EntryPoint

import pytest

from dlhwc.backends.eie.target import TARGET as EIE_TARGET
from dlhwc.compiler.cli import main
from dlhwc.compiler.irio import context
from dlhwc.compiler.passes import dlhwc_passes
from dlhwc.compiler.universe import DLHWC_UNIVERSE
from dlhwc.spec import targets as registry
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.targets import Ref, Target, simulator_module, target, targets
from tests.test_cli import assert_user_error

MODULE = "tests.test_targets"


def test_the_in_tree_targets_are_registered_through_entry_points():
    found = targets()
    assert {"eie", "ese"} <= set(found)
    assert list(found) == sorted(found)
    for name, t in found.items():
        assert isinstance(t, Target) and t.name == name
        assert t.lowering in t.passes
        assert t.dialect.load().name == name
        assert t.guide is None or t.guide.exists()


def test_every_part_of_dlhwc_asks_the_registry():
    names = set(targets())
    assert {targets()[n].lowering for n in names} <= set(dlhwc_passes())
    ctx = context()
    for name in names:
        assert ctx.get_optional_dialect(name) is not None
    assert names <= set(DLHWC_UNIVERSE.all_dialects)
    assert simulator_module("eie").Simulator.__module__ == "dlhwc.runtime.eie.sim"


@pytest.mark.parametrize("command", ["compile", "eval", "verify", "explore"])
def test_target_help_lists_the_registered_targets(capsys, command):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert ", ".join(sorted(targets())) in out


def test_building_the_parser_does_not_scan_the_targets():
    code = "import sys; from dlhwc.compiler.cli import build_parser; build_parser(); "
    code += "print('dlhwc.spec.targets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ref_loads_a_module_or_an_attribute_path():
    assert Ref("dlhwc.spec.targets").load() is registry
    assert Ref("dlhwc.spec.targets:Target.load_config").load() is Target.load_config


def test_unknown_target_names_the_registered_ones():
    with pytest.raises(DlhwcError, match=r"unknown target 'tpu' \(targets: .*eie, ese"):
        target("tpu")
    with pytest.raises(DlhwcError, match=r"no simulator for target 'tpu'"):
        simulator_module("tpu", "x.dlhw")


def test_unknown_target_on_the_command_line(capsys, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    assert_user_error(capsys, ["compile", model, "--target", "tpu"], "unknown target 'tpu'")


# -- broken registrations: one line naming the entry point -----------------------------

NOT_A_TARGET = object()
RENAMED = replace(EIE_TARGET, name="other")
NO_LOWERING = replace(EIE_TARGET, name="bad", lowering="convert-onnx-to-nothing")


@pytest.fixture
def registered(monkeypatch):
    """Register extra entry points of the group for one test."""

    def register(**points: str) -> None:
        eps = [
            EntryPoint(name, value, registry.ENTRY_POINT_GROUP) for name, value in points.items()
        ]
        real = registry.entry_points
        monkeypatch.setattr(registry, "entry_points", lambda group: [*real(group=group), *eps])
        registry.targets.cache_clear()

    yield register
    registry.targets.cache_clear()


@pytest.mark.parametrize(
    "points, message",
    [
        ({"npu": f"{MODULE}:NOT_A_TARGET"}, "target entry point 'npu' (tests.test_targets:NOT_A_TARGET) is a object, not a Target"),
        ({"npu": f"{MODULE}:RENAMED"}, "target entry point 'npu' (tests.test_targets:RENAMED) names its target 'other'"),
        ({"bad": f"{MODULE}:NO_LOWERING"}, "target 'bad' (tests.test_targets:NO_LOWERING): its lowering 'convert-onnx-to-nothing' is not among its passes"),
        ({"npu": "tests.no_such_module:TARGET"}, "loading target entry point 'npu' (tests.no_such_module:TARGET) failed: ModuleNotFoundError"),
        ({"eie": "dlhwc.backends.eie.target:TARGET"}, "target 'eie' is registered twice"),
    ],
)  # fmt: skip
def test_a_broken_registration_is_one_line(registered, points, message):
    registered(**points)
    with pytest.raises(DlhwcError) as info:
        targets()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_broken_registration_on_the_command_line(registered, capsys, tmp_path):
    registered(npu=f"{MODULE}:NOT_A_TARGET")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    assert_user_error(
        capsys, ["compile", model, "--target", "eie"], "target entry point 'npu'", "not a Target"
    )
