"""The quantize pass: weight and activation formats, calibration, modes, reporting, errors."""

import re
from pathlib import Path

import numpy as np
import pytest

from dlhwc.compiler.cli import main as cli_main
from dlhwc.compiler.frontend.onnx_importer import import_file
from dlhwc.compiler.interpreters.interpreter import run_module
from dlhwc.compiler.irio import module_to_string, parse_module
from dlhwc.compiler.passes.quantize import QuantizePass, quantization_table, with_calibration
from dlhwc.compiler.passes.weights import find_weights, replace_source
from dlhwc.compiler.pipeline import apply_passes, parse_pipeline
from dlhwc.compiler.plugins import available_passes
from dlhwc.dialects import comp
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.fixedpoint import FixedFormat, overflow_rate, quantize, to_codes

ROOT = Path(__file__).resolve().parents[2]
MLP = str(ROOT / "examples/models/digits_mlp.onnx")
LSTM = str(ROOT / "examples/models/digits_lstm.onnx")
CALIB = str(ROOT / "examples/data/digits_calib.npz")
TEST = ROOT / "examples/data/digits_test.npz"
TEST_SEQ = str(ROOT / "examples/data/digits_test_seq.npz")


def compiled(model: str, spec: str):
    module = import_file(model)
    return apply_passes(module, parse_pipeline(spec, available_passes()))


def quantized(model: str = MLP, **options):
    module = compiled(model, "fold-constants")
    return apply_passes(module, [QuantizePass(**options)])


def accuracy(module, data_path=TEST) -> float:
    data = np.load(data_path)
    out = run_module(module, {"input": data["input"]})["probabilities"]
    return float(np.mean(out.argmax(axis=1) == data["labels"]))


def quantize_ops(module) -> list[comp.QuantizeOp]:
    return [op for op in module.walk() if isinstance(op, comp.QuantizeOp)]


def activation_names(module) -> list[str]:
    return [r["name"] for r in quantization_table(module) if r["kind"] == "activation"]


def assert_representable(weight: comp.WeightOp) -> None:
    fmt = weight.fixed_format
    assert fmt is not None, weight.node_name
    stored = weight.codebook_array() if weight.is_shared else weight.values_array()
    codes = to_codes(stored, fmt)
    assert codes.min() >= fmt.qmin and codes.max() <= fmt.qmax
    np.testing.assert_array_equal(codes * fmt.scale, stored.astype(np.float64))
    # Zero means pruned.
    assert not np.any(weight.mask_array() & (weight.dense() == 0))


# -- weights ---------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [16, 8, 4])
def test_every_weight_is_exactly_representable(bits):
    module = quantized(weight_bits=bits)
    slots = find_weights(module)
    assert {s.role for s in slots} == {"matrix", "bias"} and len(slots) == 6
    for slot in slots:
        assert isinstance(slot.source, comp.WeightOp)
        assert slot.source.fixed_format.bits == bits
        assert_representable(slot.source)


def test_static_weight_format_is_the_tightest_without_saturation():
    original = {s.name: s.value() for s in find_weights(compiled(MLP, "fold-constants"))}
    for slot in find_weights(quantized(weight_bits=8)):
        fmt, w = slot.source.fixed_format, original[slot.name]
        assert overflow_rate(w, fmt) == 0.0
        assert overflow_rate(w, FixedFormat(fmt.bits, fmt.frac + 1)) > 0.0
        np.testing.assert_array_equal(slot.value(), quantize(w, fmt))


def test_dynamic_weight_formats_respect_the_bound():
    original = {s.name: s.value() for s in find_weights(compiled(MLP, "fold-constants"))}
    bound = 0.01
    for slot in find_weights(quantized(weight_bits=6, mode="dynamic", overflow=bound)):
        fmt, w = slot.source.fixed_format, original[slot.name]
        kept = w[w != 0]
        assert overflow_rate(kept, fmt) <= bound
        assert overflow_rate(kept, FixedFormat(fmt.bits, fmt.frac + 1)) > bound


def _with_hand_codebook(module, codebook, pick):
    """Replace fc1's weight by a shared weight: ``pick(dense) -> indices``."""
    slot = find_weights(module, "matrix")[0]
    dense = slot.value()
    mask = dense != 0
    indices = pick(dense).astype(np.uint8)
    new = comp.WeightOp.from_arrays(
        slot.consumer.operands[1].type, mask, codebook=codebook, indices=indices,
        index_bits=4, node_name=slot.name,
    )  # fmt: skip
    replace_source(slot, new)
    return slot


def test_codebook_is_quantized_and_indices_kept():
    module = compiled(MLP, "fold-constants")
    codebook = np.linspace(-0.8, 0.8, 16).astype(np.float32)
    pick = lambda w: np.abs(w[..., None] - codebook).argmin(-1)  # noqa: E731
    _with_hand_codebook(module, codebook, pick)
    before = find_weights(module, "matrix")[0].source
    indices = before.indices_array().copy()
    apply_passes(module, [QuantizePass(weight_bits=8)])
    after = find_weights(module, "matrix")[0].source
    assert after.is_shared and after.fixed_format == FixedFormat(8, 7)
    assert_representable(after)
    np.testing.assert_array_equal(after.codebook_array(), quantize(codebook, FixedFormat(8, 7)))
    np.testing.assert_array_equal(after.indices_array(), indices)


def test_dynamic_overflow_is_counted_per_weight_not_per_centroid():
    # One centroid of three is an outlier, but only one weight uses it: per weight the
    # overflow rate of saturating it is 1/19200 < 1e-4, so dynamic mode saturates it.
    module = compiled(MLP, "fold-constants")
    codebook = np.array([-0.25, 0.25, 8.0], dtype=np.float32)

    def pick(w):
        idx = (w > 0).astype(np.uint8)
        idx.reshape(-1)[0] = 2
        return idx

    _with_hand_codebook(module, codebook, pick)
    apply_passes(module, [QuantizePass(weight_bits=8, mode="dynamic", overflow=1e-4)])
    weight = find_weights(module, "matrix")[0].source
    fmt = weight.fixed_format
    assert fmt.frac > 3  # static would be fixed<8,3> to hold 8.0
    assert weight.codebook_array()[2] == fmt.max_value  # the outlier saturated
    assert weight.codebook_array()[0] == -0.25
    assert_representable(weight)


@pytest.mark.skipif(
    not (ROOT / "compiler/passes/share_weights.py").exists(), reason="share-weights not yet written"
)
def test_after_share_weights():
    module = compiled(MLP, "fold-constants,share-weights{bits=4},quantize{weight-bits=8}")
    for slot in find_weights(module, "matrix"):
        assert slot.source.is_shared and slot.source.fixed_format.bits == 8
        assert len(slot.source.codebook_array()) <= 16
        assert_representable(slot.source)


def test_recipe_sets_weight_bits_per_layer(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[layers.fc1]\nweight_bits = 8\n[layers."fc3*"]\nweight_bits = 4\n')
    module = quantized(recipe=str(recipe))
    bits = {s.name: s.source.fixed_format.bits for s in find_weights(module)}
    assert bits == {"fc1.weight": 8, "fc1.bias": 8, "fc2.weight": 16, "fc2.bias": 16,
                    "fc3.weight": 4, "fc3.bias": 4}  # fmt: skip


# -- activations -------------------------------------------------------------------------


def test_activations_quantized_at_the_end_of_each_layer():
    module = quantized(calibration=CALIB)
    # The input, then each Gemm through its Relu; fc3 ends at the Gemm (Softmax is no
    # layer activation).
    assert activation_names(module) == ["input", "relu1", "relu2", "fc3"]
    for q in quantize_ops(module):
        assert q.format.format.bits == 16 and q.overflow_rate is not None
    text = module_to_string(module, 16)
    assert "%fc2 = onnx.Gemm(%relu1_q," in text
    assert "%probabilities = onnx.Softmax(%fc3_q)" in text


def test_default_activation_format_without_calibration():
    module = quantized()
    assert activation_names(module) == ["input", "relu1", "relu2", "fc3"]
    for q in quantize_ops(module):
        assert q.format.format == FixedFormat(16, 8) and q.overflow_rate is None
    assert {q.format.format for q in quantize_ops(quantized(act_bits=8))} == {FixedFormat(8, 4)}


def test_static_activation_formats_from_calibration_maxima():
    module = quantized(act_bits=8, calibration=CALIB)
    formats = {r["name"]: r["format"] for r in quantization_table(module)}
    # Inputs are in [0, 1]: 1.0 needs one integer bit, fixed<8,6>.
    assert formats["input"] == "fixed<8,6>"
    assert all(q.overflow_rate.value.data == 0.0 for q in quantize_ops(module))


def test_accuracy_at_16_bits_within_half_a_percent():
    reference = accuracy(import_file(MLP))
    for options in ({}, {"calibration": CALIB}, {"calibration": CALIB, "mode": "dynamic"}):
        assert accuracy(quantized(**options)) >= reference - 0.005, options


def test_dynamic_beats_or_equals_static_at_8_bit_activations():
    bound = 1e-3
    static = quantized(act_bits=8, calibration=CALIB)
    dynamic = quantized(act_bits=8, calibration=CALIB, mode="dynamic", overflow=bound)
    assert accuracy(dynamic) >= accuracy(static)
    for q_static, q_dynamic in zip(quantize_ops(static), quantize_ops(dynamic), strict=True):
        assert q_dynamic.overflow_rate.value.data <= bound
        assert q_dynamic.format.format.frac >= q_static.format.format.frac


def test_overflow_rates_are_recorded_and_reported():
    module = quantized(act_bits=6, weight_bits=6, calibration=CALIB, mode="dynamic",
                       overflow=0.01)  # fmt: skip
    table = quantization_table(module)
    assert [r["kind"] for r in table].count("activation") == 4
    assert {r["kind"] for r in table} == {"weight", "bias", "activation"}
    rates = {r["name"]: r["overflow_rate"] for r in table if r["kind"] == "activation"}
    assert any(rate > 0 for rate in rates.values()) and all(r <= 0.01 for r in rates.values())
    for r in table:
        assert set(r) == {"name", "kind", "format", "overflow_rate"}
        if r["kind"] != "activation":
            assert r["overflow_rate"] is None
    # The table reads the IR: the same after printing and parsing.
    assert quantization_table(parse_module(module_to_string(module))) == table


def test_lstm_with_sequence_calibration():
    module = quantized(LSTM, calibration=TEST_SEQ)
    assert activation_names(module) == ["input", "lstm_Y_h", "logits"]
    assert {s.name for s in find_weights(module)} == {
        "lstm.W", "lstm.R", "lstm.B", "fc.weight", "fc.bias"
    }  # fmt: skip
    for slot in find_weights(module):
        assert_representable(slot.source)
    assert accuracy(module, TEST_SEQ) >= accuracy(import_file(LSTM), TEST_SEQ) - 0.005


def test_running_twice_adds_no_activation_quantization():
    module = quantized(calibration=CALIB)
    before = len(quantize_ops(module))
    apply_passes(module, [QuantizePass(calibration=CALIB)])
    assert len(quantize_ops(module)) == before


# -- IR ----------------------------------------------------------------------------------


def test_deterministic_and_round_trips():
    first = module_to_string(quantized(mode="dynamic", act_bits=8, calibration=CALIB))
    second = module_to_string(quantized(mode="dynamic", act_bits=8, calibration=CALIB))
    assert first == second
    assert module_to_string(parse_module(first)) == first


# -- options, CLI and errors -------------------------------------------------------------------


def test_pipeline_options():
    (p,) = parse_pipeline(
        'quantize{weight-bits=8 act-bits=6 mode=dynamic overflow=0.001 calibration="a.npz"}',
        available_passes(),
    )
    assert p == QuantizePass(8, 6, "dynamic", 0.001, "a.npz")


def test_with_calibration_fills_only_unset():
    passes, used = with_calibration([QuantizePass(), QuantizePass(calibration="mine.npz")], "x")
    assert used and [p.calibration for p in passes] == ["x", "mine.npz"]
    assert with_calibration([], "x") == ([], False)


@pytest.mark.parametrize("command", ["compile", "opt"])
def test_cli_calibration_flag(command, tmp_path, capsys):
    source = MLP
    if command == "opt":
        source = str(tmp_path / "in.mlir")
        assert cli_main(["compile", MLP, "-p", "fold-constants", "-o", source]) == 0
    out = tmp_path / "out.mlir"
    argv = [command, source, "-p", "quantize", "--calibration", CALIB, "-o", str(out)]
    assert cli_main(argv) == 0
    text = out.read_text()
    assert text.count("comp.quantize") == 4 and text.count("overflow_rate") == 4


def test_cli_calibration_without_quantize_pass_notes_it(capsys):
    assert cli_main(["compile", MLP, "--calibration", CALIB]) == 0
    assert "--calibration unused" in capsys.readouterr().err


@pytest.mark.parametrize(
    "options, message",
    [
        ({"weight_bits": 1}, "weight-bits 1 outside 2..32"),
        ({"weight_bits": 33}, "weight-bits 33 outside 2..32"),
        ({"act_bits": 0}, "act-bits 0 outside 2..32"),
        ({"mode": "adaptive"}, "unknown mode 'adaptive'"),
        ({"overflow": 1.0}, "overflow 1.0 outside [0, 1)"),
        ({"overflow": -0.1}, "overflow -0.1 outside [0, 1)"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(DlhwcError, match=re.escape(message)):
        QuantizePass(**options)


def test_bad_option_in_pipeline_is_one_line():
    with pytest.raises(DlhwcError) as e:
        parse_pipeline("quantize{act-bits=64}", available_passes())
    assert "act-bits 64 outside 2..32" in e.value.message and "\n" not in e.value.message


def _save(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _calibration_error(path) -> str:
    with pytest.raises(DlhwcError) as e:
        quantized(calibration=str(path))
    assert "\n" not in e.value.message
    return e.value.message


def test_calibration_errors(tmp_path):
    x = np.load(CALIB)["input"]
    msg = _calibration_error(tmp_path / "missing.npz")
    assert "missing.npz" in msg and "no such input file" in msg
    msg = _calibration_error(_save(tmp_path / "shape.npz", input=x[:, :32]))
    assert "input 'input' has shape [200, 32] float32, expected [N, 64] float32" in msg
    msg = _calibration_error(_save(tmp_path / "dtype.npz", input=x.astype(np.float64)))
    assert "input 'input' has dtype float64" in msg
    msg = _calibration_error(_save(tmp_path / "name.npz", pixels=x))
    assert "missing input(s) 'input'" in msg
    bad = tmp_path / "garbage.npz"
    bad.write_bytes(b"not a zip")
    msg = _calibration_error(bad)
    assert msg.startswith(f"{bad}: calibration data: not a readable .npy/.npz file")


def test_bad_calibration_leaves_the_ir_unchanged(tmp_path):
    module = compiled(MLP, "fold-constants")
    before = module_to_string(module)
    with pytest.raises(DlhwcError, match="calibration data"):
        apply_passes(module, [QuantizePass(calibration=str(tmp_path / "missing.npz"))])
    assert module_to_string(module) == before


def test_recipe_errors(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("[layers.fc2]\nweight_bits = 40\n")
    with pytest.raises(DlhwcError, match="layer 'fc2': weight_bits 40 outside 2..32"):
        quantized(recipe=str(recipe))
    recipe.write_text("[layers.nosuch]\nweight_bits = 8\n")
    with pytest.raises(DlhwcError, match="matches no layer"):
        quantized(recipe=str(recipe))


def test_huffman_coded_weights_are_refused():
    from xdsl.dialects.builtin import DenseArrayBase, i64

    module = quantized()
    slot = find_weights(module, "matrix")[0]
    props = dict(slot.source.properties)
    props["index_code"] = DenseArrayBase.from_list(i64, [1, 2])
    replace_source(slot, comp.WeightOp(slot.source.output.type, props, slot.name))
    with pytest.raises(DlhwcError, match="already Huffman-coded; run quantize before huffman"):
        apply_passes(module, [QuantizePass()])
