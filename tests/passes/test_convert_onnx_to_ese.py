"""convert-onnx-to-ese: which recurrent ops become `ese.rnn`, with which properties, what
stays on the host and why, the errors, and the ESE target in the compile pipeline.

How close the lowered layers compute to float is tests/runtime/test_ese_golden.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from dlhwc.backends.ese.lowering import HOST_REASON, ConvertOnnxToEsePass
from dlhwc.backends.ese.target import TARGET as ese_target
from dlhwc.compiler.cli import main as cli_main
from dlhwc.compiler.frontend.onnx_importer import import_file, import_model
from dlhwc.compiler.interpreters.interpreter import run_module
from dlhwc.compiler.irio import module_to_string, parse_module
from dlhwc.compiler.passes import dlhwc_passes
from dlhwc.compiler.passes.quantize import QuantizePass
from dlhwc.compiler.pipeline import apply_passes, compile_for_target, parse_pipeline
from dlhwc.compiler.plugins import available_passes
from dlhwc.dialects import comp, ese
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.ese.config import ESEConfig
from dlhwc.spec.targets import target as get_target
from tests.interpreters.test_onnx_rnn import BACKEND_CASES
from tests.runtime.test_ese_golden import (
    KERNEL,
    ese_ops,
    host_rnn_ops,
    lower,
    one_node_model,
    random_case,
    run_time_inputs,
)

ROOT = Path(__file__).resolve().parents[2]
DIGITS = str(ROOT / "examples" / "models" / "digits_lstm.onnx")
DIGITS_SEQ = str(ROOT / "examples" / "data" / "digits_test_seq.npz")
EXPORTED = ROOT / "tests" / "models" / "exported"


def passes(spec: str):
    return parse_pipeline(spec, available_passes())


def compiled(model, spec: str):
    module = import_file(model) if isinstance(model, str) else import_model(model)
    return apply_passes(module, passes(spec))


def _drop_quantize(module, predicate) -> None:
    """Remove the comp.quantize ops whose input satisfies ``predicate``."""
    for op in list(module.walk()):
        if isinstance(op, comp.QuantizeOp) and predicate(op.input):
            op.output.replace_all_uses_with(op.input)
            op.detach()
            op.erase()


# -- registration and the target -----------------------------------------------------------


def test_pass_and_target_are_registered():
    assert dlhwc_passes()["convert-onnx-to-ese"]() is ConvertOnnxToEsePass
    assert get_target("ese") is ese_target
    assert ese_target.simulator_module().Simulator.__module__ == "dlhwc.runtime.ese.sim"
    config = ese_target.load_config(None)
    assert config == ESEConfig()
    # No weight sharing: ESE stores 12-bit linear-quantized weights.
    assert ese_target.default_passes(config) == "quantize{weight-bits=12 act-bits=16}"
    assert ese_target.required_passes(config) == ["quantize{weight-bits=12 act-bits=16}"]
    assert ese_target.lowering_passes(None) == "convert-onnx-to-ese"
    assert ese_target.lowering_passes("m.toml") == "convert-onnx-to-ese{hw=m.toml}"
    for spec in ese_target.required_passes(config):
        passes(spec)  # parses


def test_hw_file_sets_the_table_properties(tmp_path):
    hw = tmp_path / "ese.toml"
    hw.write_text("lut_segments = 64\nlut_in_frac = 11\ncell_frac = 10\n")
    assert ese_target.load_config(str(hw)).lut_segments == 64
    module = compile_for_target(DIGITS, "ese", None, available_passes(), emit="ese", hw=str(hw))
    (op,) = ese_ops(module)
    assert op.lut_segments.value.data == 64
    assert op.lut_in_frac.value.data == 11
    assert op.cell_frac.value.data == 10


# -- the digits LSTM ---------------------------------------------------------------------------


def test_digits_lstm_lowers_to_one_ese_rnn():
    module = compile_for_target(DIGITS, "ese", None, available_passes(), emit="ese")
    (op,) = ese_ops(module)
    assert not host_rnn_ops(module)
    assert op.kind.data == "LSTM" and op.direction.data == "forward"
    assert op.hidden_size.value.data == 64 and op.layout.value.data == 0
    assert op.activation_names == ["Sigmoid", "Tanh", "Tanh"]  # the defaults, spelled out
    assert op.clip is None
    assert op.layer_name == "lstm"
    # X: the input's comp.quantize, found through the Transpose; h: Y_h's comp.quantize
    # (uncalibrated: Q8.8), which stays after the ese.rnn.
    assert str(op.x_format.format) == "fixed<16,8>"
    assert str(op.h_format.format) == "fixed<16,8>"
    config = ESEConfig()
    assert op.cell_frac.value.data == config.cell_frac
    assert op.lut_in_frac.value.data == config.lut_in_frac
    assert op.lut_segments.value.data == config.lut_segments
    (user,) = [u.operation for u in op.outputs[1].uses]
    assert isinstance(user, comp.QuantizeOp) and user.format == op.h_format
    assert not op.outputs[0].uses  # the omitted Y stays a result of type none
    # Operands in ONNX order, the weights quantized to 12 bits.
    assert [v.name_hint for v in op.inputs] == ["input_tnf", "lstm.W", "lstm.R", "lstm.B"]
    assert op.operand(1).owner.fixed_format.bits == 12


def test_calibrated_hidden_state_keeps_the_full_tanh_range():
    # The calibration data's |h| may stay below 1/2 (frac 16); the state is bounded by 1
    # and must not saturate on other data, so h_format keeps 15 fraction bits.
    module = compile_for_target(
        DIGITS, "ese", f"quantize{{weight-bits=12 calibration={DIGITS_SEQ}}}", available_passes(),
        emit="ese",
    )  # fmt: skip
    (op,) = ese_ops(module)
    (user,) = [u.operation for u in op.outputs[1].uses]
    assert op.h_format.format.frac == min(15, user.format.format.frac)
    assert op.x_format.format.frac >= 12


def test_ir_round_trip_is_byte_identical():
    module = compile_for_target(DIGITS, "ese", None, available_passes(), emit="ese")
    text = module_to_string(module)
    assert "ese.rnn(" in text
    assert module_to_string(parse_module(text)) == text


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('"Tanh", "Tanh"]', '"Tanh", "Elu"]', "activation Elu has no hardware unit"),
        ('"Tanh", "Tanh"]', '"Tanh"]', "LSTM needs 3 activations"),
        ("h_format = #comp.fixed<16, 8>", "h_format = #comp.fixed<8, 4>", "h_format must be 16"),
        ('kind = "LSTM"', 'kind = "SRU"', "kind must be LSTM, GRU or RNN"),
    ],
)
def test_verifier_rejects_what_ese_cannot_run(old, new, message):
    module = compile_for_target(DIGITS, "ese", None, available_passes(), emit="ese")
    text = module_to_string(module)
    assert old in text
    with pytest.raises(DlhwcError, match=message):
        parse_module(text.replace(old, new))


def test_ir_round_trip_with_every_property(tmp_path):
    node, inputs, expected = random_case(
        "GRU",
        {"direction": "bidirectional", "clip": 2.0, "linear_before_reset": 1, "layout": 1},
        {"sequence_lens", "initial_h"},
        0,
    )
    module = lower(one_node_model(node, inputs, expected), run_time_inputs(node, inputs), tmp_path)
    text = module_to_string(module)
    assert "clip = 2.000000e+00 : f32" in text
    assert module_to_string(parse_module(text)) == text
    (op,) = ese_ops(parse_module(text))
    assert op.operand(3) is None and op.operand(4) is not None


# -- activations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "op, attrs, want",
    [
        ("LSTM", {"direction": "bidirectional"}, ["Sigmoid", "Tanh", "Tanh"] * 2),
        ("GRU", {"direction": "reverse"}, ["Sigmoid", "Tanh"]),
        ("GRU", {"direction": "bidirectional"}, ["Sigmoid", "Tanh"] * 2),
        ("RNN", {"direction": "bidirectional"}, ["Tanh", "Tanh"]),
        # The RNN schema's default is a two-direction list: a forward op uses its first half.
        ("RNN", {"activations": ["Tanh", "Tanh"]}, ["Tanh"]),
        # Names are case-insensitive in ONNX; ese.rnn spells them canonically.
        ("RNN", {"activations": ["relu"]}, ["Relu"]),
        ("LSTM", {"activations": ["sigmoid", "TANH", "Relu"]}, ["Sigmoid", "Tanh", "Relu"]),
    ],
)
def test_activations_are_spelled_out(op, attrs, want, tmp_path):
    node, inputs, expected = random_case(op, attrs, {"B"}, 0)
    module = lower(one_node_model(node, inputs, expected), run_time_inputs(node, inputs), tmp_path)
    (rnn,) = ese_ops(module)
    assert rnn.activation_names == want


# -- formats --------------------------------------------------------------------------------


def test_x_format_from_an_earlier_layer(tmp_path):
    # Two stacked LSTMs: the upper one's X is the lower one's quantized Y through
    # Transpose and Reshape; without that comp.quantize, the lower one's h_format.
    model = str(EXPORTED / "torch_lstm2_dynamo.onnx")
    module = compiled(model, "fold-constants,quantize{weight-bits=12}")
    lower_lstm = host_rnn_ops(module)[0]
    _drop_quantize(module, lambda v: v.owner is lower_lstm)
    apply_passes(module, [ConvertOnnxToEsePass()])
    first, second = ese_ops(module)
    assert first.h_format.format.frac == 15  # no quantize on its Y: the tanh range
    assert second.x_format == first.h_format
    module = compiled(model, "fold-constants,quantize{weight-bits=12},convert-onnx-to-ese")
    first, second = ese_ops(module)
    (quantize,) = [u.operation for u in first.outputs[0].uses]
    assert second.x_format == quantize.format


def test_h_format_is_the_widest_of_its_outputs_and_initial_h(tmp_path):
    # A Relu RNN: no bound from the activation, the calibrated formats decide.
    node, inputs, expected = random_case("RNN", {"activations": ["Relu"]}, {"B", "initial_h"}, 0)
    inputs[5] = inputs[5] * 8  # initial_h well beyond the outputs' range
    module = lower(one_node_model(node, inputs, expected), run_time_inputs(node, inputs), tmp_path)
    (op,) = ese_ops(module)
    fracs = [u.operation.format.format.frac for r in op.outputs for u in r.uses]
    initial = op.operand(5).owner.format.format.frac
    assert op.h_format.format.frac == min([*fracs, initial]) == initial


def test_initial_h_widens_a_bounded_state(tmp_path):
    # An LSTM's h is in (-1, 1), but its initial state is held in h_format too.
    node, inputs, expected = random_case("LSTM", {}, {"B", "initial_h"}, 0)
    inputs[5] = inputs[5] * 8
    module = lower(one_node_model(node, inputs, expected), run_time_inputs(node, inputs), tmp_path)
    (op,) = ese_ops(module)
    initial = op.operand(5).owner.format.format.frac
    assert initial < 15
    assert op.h_format.format.frac == initial


def test_h_format_without_quantize_ops():
    # An LSTM with Sigmoid/Tanh has |h| < 1: fixed<16,15>. A Relu RNN has no bound.
    module = compiled(DIGITS, "fold-constants,quantize{weight-bits=12}")
    _drop_quantize(module, lambda v: v.name_hint == "lstm_Y_h")
    apply_passes(module, [ConvertOnnxToEsePass()])
    (op,) = ese_ops(module)
    assert str(op.h_format.format) == "fixed<16,15>"

    node, inputs, expected = random_case("RNN", {"activations": ["Relu"]}, {"B"}, 0)
    module = compiled(one_node_model(node, inputs, expected), "quantize{weight-bits=12}")
    _drop_quantize(module, lambda v: v.name_hint in ("Y", "Y_h"))
    with pytest.raises(DlhwcError, match="range of its hidden state is unknown.*calibration"):
        apply_passes(module, [ConvertOnnxToEsePass()])


# -- what stays on the host ------------------------------------------------------------------

# Backend cases given activations ESE has no unit for.
UNSUPPORTED = {
    "test_lstm_defaults": ["HardSigmoid", "Tanh", "Tanh"],
    "test_lstm_with_peepholes": ["Sigmoid", "Tanh", "LeakyRelu"],
    "test_gru_seq_length": ["Sigmoid", "Softsign"],
    "test_simple_rnn_with_initial_bias": ["LeakyRelu"],
}


def _unsupported_case(name):
    case = BACKEND_CASES[name]
    ((inputs, _),) = case.data_sets
    node = onnx.NodeProto()
    node.CopyFrom(case.node)
    node.attribute.append(helper.make_attribute("activations", UNSUPPORTED[name]))
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attrs["activations"] = UNSUPPORTED[name]
    want = KERNEL[node.op_type](*inputs, **attrs)
    return node, inputs, list(want)


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_activation_stays_on_host(name, tmp_path, capsys):
    node, inputs, want = _unsupported_case(name)
    model = one_node_model(node, inputs, want)
    feeds = run_time_inputs(node, inputs)

    # The pass alone: the op is left as it was, and computes exactly the float result.
    module = compiled(model, "fold-constants,convert-onnx-to-ese")
    (op,) = host_rnn_ops(module)
    assert not ese_ops(module)
    missing = sorted({a for a in UNSUPPORTED[name] if a not in ("Sigmoid", "Tanh", "Relu")})
    reason = f"activation {', '.join(missing)} has no ESE unit (ESE has Sigmoid, Tanh, Relu)"
    assert op.attributes[HOST_REASON].data == reason
    assert f"dlhwc: note: {node.op_type} stays on the host: {reason}" in capsys.readouterr().err
    # onnxruntime's recurrent kernels approximate sigmoid and tanh to a few float32 ulps.
    outputs = run_module(module, feeds)
    for output, expected in zip(node.output, want, strict=False):
        if output:
            np.testing.assert_allclose(outputs[output], expected, rtol=1e-5, atol=1e-6)

    # In the full pipeline it runs on the host on its quantized operands, unchanged.
    quantized = compiled(model, "fold-constants,quantize{weight-bits=12}")
    before = run_module(quantized, feeds)
    apply_passes(quantized, [ConvertOnnxToEsePass()])
    assert len(host_rnn_ops(quantized)) == 1 and not ese_ops(quantized)
    after = run_module(quantized, feeds)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


def test_host_reason_is_not_printed_in_the_ir():
    # A discardable attribute: the ONNX op's printed form (and export) stay ONNX.
    node, inputs, want = _unsupported_case("test_lstm_defaults")
    module = compiled(one_node_model(node, inputs, want), "convert-onnx-to-ese")
    assert HOST_REASON not in module_to_string(module)


def test_input_without_a_format_stays_on_host(capsys):
    module = compiled(DIGITS, "fold-constants,quantize{weight-bits=12}")
    _drop_quantize(module, lambda v: v.name_hint == "input")
    apply_passes(module, [ConvertOnnxToEsePass()])
    (op,) = host_rnn_ops(module)
    assert "no fixed-point format" in op.attributes[HOST_REASON].data
    err = capsys.readouterr().err
    assert "dlhwc: note: LSTM 'lstm' stays on the host: its input X has no fixed-point" in err


def test_run_time_weights_stay_on_host(tmp_path):
    node, inputs, want = random_case("GRU", {}, {"B"}, 0)
    model = one_node_model(node, inputs, want)
    # W as a graph input instead of an initializer.
    weight = model.graph.initializer[0]
    assert weight.name == "W"
    del model.graph.initializer[0]
    model.graph.input.append(helper.make_tensor_value_info("W", 1, list(weight.dims)))
    module = compiled(model, "quantize{weight-bits=12},convert-onnx-to-ese")
    (op,) = host_rnn_ops(module)
    assert "W is computed at run time" in op.attributes[HOST_REASON].data


# -- errors ---------------------------------------------------------------------------------


def test_unquantized_weights_are_an_error():
    with pytest.raises(DlhwcError) as info:
        compiled(DIGITS, "fold-constants,convert-onnx-to-ese")
    message = info.value.message
    assert "\n" not in message
    assert message == (
        "layer 'lstm': ESE needs quantized weights, and W is not quantized "
        "(run quantize{weight-bits=12} before convert-onnx-to-ese)"
    )


def test_unquantized_weights_from_the_cli(capsys):
    assert cli_main(["compile", DIGITS, "-p", "fold-constants,convert-onnx-to-ese"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "dlhwc: error: layer 'lstm': ESE needs quantized weights, and W is not quantized "
        "(run quantize{weight-bits=12} before convert-onnx-to-ese)"
    ]


def test_weights_wider_than_the_machine_are_an_error(tmp_path):
    with pytest.raises(DlhwcError, match=r"^layer 'lstm': W is 16-bit, the ESE machine has "
                       r"12-bit weights \(quantize\{weight-bits=12\}\)$"):  # fmt: skip
        compile_for_target(
            DIGITS, "ese", "quantize{weight-bits=16}", available_passes(), emit="ese"
        )
    # A machine with wider weights takes them.
    hw = tmp_path / "wide.toml"
    hw.write_text("weight_bits = 16\nrun_bits = 0\nspmat_entry_bits = 16\n")
    module = compile_for_target(
        DIGITS, "ese", "quantize{weight-bits=16}", available_passes(), emit="ese", hw=str(hw)
    )
    assert len(ese_ops(module)) == 1


def test_quantize_before_lowering_is_required_by_the_target():
    # `-p prune` alone: the target appends its quantize pass, so lowering succeeds.
    module = compile_for_target(
        DIGITS, "ese", "prune{sparsity=0.5}", available_passes(), emit="ese"
    )
    (op,) = ese_ops(module)
    assert op.operand(1).owner.fixed_format.bits == 12


def test_every_recurrent_op_is_an_ese_rnn_with_the_default_pipeline():
    for name in ("torch_lstm2_ts14", "torch_gru2_dynamo", "torch_bilstm1_ts14"):
        module = compile_for_target(
            str(EXPORTED / f"{name}.onnx"), "ese", None, available_passes(), emit="ese"
        )
        assert ese_ops(module) and not host_rnn_ops(module), name
        for op in ese_ops(module):
            assert isinstance(op, ese.RNNOp)
            op.verify()


def test_quantize_pass_options_match_the_target():
    (spec,) = ese_target.required_passes(ESEConfig())
    (quantize,) = passes(spec)
    assert isinstance(quantize, QuantizePass)
    assert quantize.weight_bits == 12 and quantize.act_bits == 16
