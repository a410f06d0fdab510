"""quantize: fixed-point formats for every weight and every layer's activations."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import Float32Type, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from dlhwc.compiler.passes.recipe import Recipe, load_recipe
from dlhwc.compiler.passes.weights import (
    WeightSlot,
    check_finite,
    erase_weight,
    find_weights,
    is_conv,
    layer_names,
)
from dlhwc.dialects import comp
from dlhwc.dialects import onnx as onnx_d
from dlhwc.dialects.onnx import dense_from_array
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.fixedpoint import FixedFormat, frac_bits_for, overflow_rate, quantize

MODES = ("static", "dynamic")

# The ops whose output is a layer's activation, and what may follow them in the layer.
_LAYER_OPS = (onnx_d.GemmOp, onnx_d.MatMulOp, onnx_d.LSTMOp, onnx_d.GRUOp, onnx_d.RNNOp)
_RNN_OPS = (onnx_d.LSTMOp, onnx_d.GRUOp, onnx_d.RNNOp)
_ACTIVATION_OPS = (onnx_d.ReluOp, onnx_d.SigmoidOp, onnx_d.TanhOp)


def default_activation_format(bits: int) -> FixedFormat:
    """The activation format used without calibration data: half the bits after the point.

    At 16 bits this is fixed<16,8> (Q8.8, the activation format of ESE-style designs):
    a range of +-128 with steps of 1/256, room for the pre-activation sums of typical
    layers and 8 fraction bits for sigmoid/tanh outputs in [-1, 1].
    """
    return FixedFormat(bits, bits // 2)


@dataclass(frozen=True)
class QuantizePass(ModulePass):
    """Give every weight and every layer's activations a signed fixed-point format.

    Options:
      weight-bits   bits of the weight formats (matrices and biases), 2..32; default 16.
                    A recipe's `weight_bits` overrides it per layer.
      act-bits      bits of the activation formats, 2..32; default 16.
      mode          how the fraction bits F of a fixed<N,F> are chosen; default static.
                    static:  the most F that represents the largest |value| without
                             saturating (spec/fixedpoint.py frac_bits_for).
                    dynamic: dynamic fixed point (Courbariaux et al. 2015): per tensor,
                             the most F whose overflow rate -- the fraction of values
                             that saturate -- stays <= `overflow`. Trades rare
                             saturation of outliers for resolution. F never grows past
                             the point where the smallest non-zero |value| saturates.
      overflow      the overflow-rate bound of dynamic mode, in [0, 1); default 0.0001.
                    In -p, write it with a decimal point (0.001, 0.0): the pipeline
                    syntax reads 1e-3 as text and 0 as an integer.
      calibration   an .npz of inputs keyed by the model's input names (as `dlhwc run`
                    takes; other arrays are ignored), used to measure activations.
                    `dlhwc compile/opt --calibration FILE` sets it for every quantize
                    pass that does not set it.
      recipe        a TOML/JSON file with per-layer `weight_bits`
                    (see compiler/passes/recipe.py).

    Weights: every matrix and bias slot (compiler/passes/weights.py) becomes a comp.weight
    with `format = #comp.fixed<N, F>` and values exactly representable in it; values stay
    float32. A plain onnx.Constant becomes a comp.weight with its values; a comp.weight
    with a codebook has its codebook quantized (static: F from the largest |centroid|;
    dynamic: the overflow rate is counted over the kept weights, each weight counting
    once, not over the centroids); otherwise its values are quantized. The formats come
    from the weights alone: no calibration is needed. Statistics are taken over the kept
    (unpruned) weights. A weight that rounds to exactly zero is pruned (its mask turns
    false), so the comp.weight invariant "zero means pruned" holds. Huffman-coded weights
    are refused: quantize runs before huffman. Biases use weight-bits too. Non-f32
    weights are left alone, and so is the constant of a MatMul's bias Add, which is no
    weight slot.

    Activations: a comp.quantize op is inserted on
      - every f32 tensor argument of a function (the graph inputs), first in the body;
      - every layer's output. A layer starts at a Gemm, MatMul, Conv, LSTM, GRU or RNN;
        from a Gemm/MatMul/Conv result the layer extends through a bias Add (an Add whose other operand
        is a constant or comp.weight) and then an elementwise Relu, Sigmoid or Tanh, each
        only when it is the sole use of the value before it. The value at the end of that
        chain is quantized, and all its uses read the quantized value. For an LSTM/GRU/RNN,
        each of Y, Y_h, Y_c that is used is quantized;
      - every layer's input that is not already one of these seen through layout-only
        ops (Transpose, Reshape, Squeeze, ...), e.g. the output of a host op (a Scaler)
        that a layer reads.
    Only f32 tensors are quantized; a value already read through a comp.quantize is left
    as it is, so running the pass twice adds nothing.

    Activation formats: with calibration data, the module (weights already quantized,
    activations still float) runs once in the reference interpreter on the whole
    calibration set; each quantized tensor's format is chosen by `mode` from the values it
    took, and the overflow rate it has on that data is recorded in the op's
    `overflow_rate`. Without calibration data every activation gets the default format
    fixed<act-bits, act-bits/2> (fixed<16,8>, Q8.8, at 16 bits) and no overflow rate.
    Only @main is calibrated; other functions get the default format.

    Rounding is half to even and out-of-range values saturate, as everywhere in dlhwc
    (spec/fixedpoint.py); comp.quantize simulates this in the interpreter.
    `quantization_table(module)` lists what was chosen, for the `--report` ledger.
    """

    name: ClassVar[str] = "quantize"
    lossy: ClassVar[bool] = True  # changes values on purpose: `verify` reports, not flags

    weight_bits: int = 16
    act_bits: int = 16
    mode: str = "static"
    overflow: float = 1e-4
    calibration: str | None = None
    recipe: str | None = None

    def __post_init__(self) -> None:
        _check_bits("weight-bits", self.weight_bits)
        _check_bits("act-bits", self.act_bits)
        if self.mode not in MODES:
            raise DlhwcError(
                f"pass 'quantize': unknown mode '{self.mode}' (modes: {', '.join(MODES)})"
            )
        ok = isinstance(self.overflow, int | float) and not isinstance(self.overflow, bool)
        if not ok or not 0.0 <= float(self.overflow) < 1.0:
            raise DlhwcError(f"pass 'quantize': overflow {self.overflow} outside [0, 1)")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        recipe = load_recipe(self.recipe) if self.recipe else None
        if recipe is not None:
            recipe.check_names(layer_names(op))
        # Read the calibration data before changing anything: a bad file leaves the IR as is.
        calibration = self._calibration_inputs(op) if self.calibration else None
        self._quantize_weights(op, recipe)
        functions = [f for f in op.walk() if isinstance(f, func.FuncOp)]
        targets = {fn: activation_targets(fn) for fn in functions}
        observed = {}
        if calibration is not None:
            observed = _observe(*calibration, set(targets[calibration[0]]))
        for fn in functions:
            for value in targets[fn]:
                data = observed.get(value)
                if data is None:
                    _insert_quantize(value, default_activation_format(self.act_bits), None)
                else:
                    fmt = choose_format(data, self.act_bits, self.mode, self.overflow)
                    _insert_quantize(value, fmt, overflow_rate(data, fmt))

    # -- weights -------------------------------------------------------------------

    def _quantize_weights(self, module: ModuleOp, recipe: Recipe | None) -> None:
        groups: dict[Operation, list[WeightSlot]] = {}
        for slot in find_weights(module):
            groups.setdefault(slot.source, []).append(slot)
        replacements = []
        for source, slots in groups.items():
            if not _is_f32(source.results[0].type):
                continue
            check_finite(slots[0])
            bits = {self._weight_bits(slot, recipe) for slot in slots}
            if len(bits) > 1:
                raise DlhwcError(
                    f"quantize: weight '{slots[0].name}' feeds layers "
                    f"{', '.join(repr(s.layer) for s in slots)} with different weight_bits "
                    f"({', '.join(str(b) for b in sorted(bits))})"
                )
            new = _quantized_weight(source, slots[0], bits.pop(), self.mode, self.overflow)
            replacements.append((source, slots, new))
        # Every check passed: only now change the IR.
        for source, slots, new in replacements:
            _replace_weight(source, slots, new)

    def _weight_bits(self, slot: WeightSlot, recipe: Recipe | None) -> int:
        if recipe is None:
            return self.weight_bits
        bits = recipe.settings(slot.keys).get("weight_bits", self.weight_bits)
        if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 32:
            raise DlhwcError(
                f"quantize: layer '{slot.layer}': weight_bits {bits!r} outside 2..32",
                file=recipe.path,
            )
        return bits

    # -- calibration -----------------------------------------------------------------

    def _calibration_inputs(self, module: ModuleOp) -> tuple[func.FuncOp, list[list[np.ndarray]]]:
        """@main and its calibration arguments, checked: one argument list per chunk
        (a model with a static batch runs the samples in chunks of that batch)."""
        from dlhwc.compiler.functions import input_names, main_function
        from dlhwc.compiler.interpreters.interpreter import check_inputs, static_batches
        from dlhwc.spec.fileio import load_arrays

        fn = main_function(module)
        names = input_names(fn)
        try:
            inputs = load_arrays(self.calibration, names[0] if len(names) == 1 else None)
            chunks = static_batches(fn, {k: v for k, v in inputs.items() if k in names})
            args = [check_inputs(fn, chunk, source=self.calibration) for chunk in chunks]
        except DlhwcError as e:
            raise DlhwcError(
                f"calibration data: {e.reason}", file=e.file or self.calibration, where=e.where
            ) from None
        return fn, args


def _observe(
    fn: func.FuncOp, chunks: list[list[np.ndarray]], wanted: set[SSAValue]
) -> dict[SSAValue, np.ndarray]:
    """The values (flattened) the ``wanted`` tensors take when ``fn`` runs on each chunk
    of arguments."""
    from dlhwc.compiler.interpreters.interpreter import Interpreter

    observed: dict[SSAValue, list[np.ndarray]] = {}

    def observe(value: SSAValue, array: Any) -> None:
        observed.setdefault(value, []).append(np.asarray(array).reshape(-1))

    interpreter = Interpreter(fn, watch=wanted.__contains__)
    for args in chunks:
        interpreter.run(args, observe)
    return {v: np.concatenate(parts) for v, parts in observed.items()}


def _check_bits(option: str, bits: object) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 32:
        raise DlhwcError(f"pass 'quantize': {option} {bits} outside 2..32")


# -- formats -----------------------------------------------------------------------------


def choose_format(
    values: np.ndarray, bits: int, mode: str, bound: float, counts: np.ndarray | None = None
) -> FixedFormat:
    """The fixed<bits, F> for ``values`` by ``mode`` (see QuantizePass). Non-finite values
    are left out of the largest magnitude but count as overflowing. ``counts``, when
    given, weighs each value (a codebook entry by the weights that use it; an entry no
    weight uses does not count)."""
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    if counts is not None:
        counts = np.asarray(counts, dtype=np.float64).reshape(-1)
        values, counts = values[counts > 0], counts[counts > 0]
    magnitude = np.abs(values[np.isfinite(values)])
    max_abs = float(magnitude.max()) if magnitude.size else 0.0
    frac = frac_bits_for(max_abs, bits)
    if mode == "static":
        return FixedFormat(bits, frac)
    nonzero = magnitude[magnitude > 0]
    if nonzero.size == 0:
        return FixedFormat(bits, frac)

    def rate(fmt: FixedFormat) -> float:
        if counts is None:
            return overflow_rate(values, fmt)
        scaled = np.rint(values.astype(np.float64) * 2.0**fmt.frac)
        over = (scaled > fmt.qmax) | (scaled < fmt.qmin) | ~np.isfinite(values)
        return float(counts[over].sum() / counts.sum())

    # The overflow rate grows with F: binary search for the last F within the bound,
    # between the static choice (no overflow) and the F where the smallest value saturates.
    lo, hi = frac, max(frac, frac_bits_for(float(nonzero.min()), bits))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if rate(FixedFormat(bits, mid)) <= bound:
            lo = mid
        else:
            hi = mid - 1
    return FixedFormat(bits, lo)


def _index_counts(indices: np.ndarray, mask: np.ndarray, entries: int) -> np.ndarray:
    """How many kept weights use each codebook entry, a block at a time."""
    counts = np.zeros(entries, dtype=np.int64)
    flat_i, flat_m = indices.reshape(-1), mask.reshape(-1)
    step = 1 << 24
    for start in range(0, flat_i.size, step):
        part = flat_i[start : start + step][flat_m[start : start + step]]
        counts += np.bincount(part, minlength=entries)[:entries]
    return counts


def _quantized_weight(
    source: Operation, slot: WeightSlot, bits: int, mode: str, bound: float
) -> comp.WeightOp:
    """The comp.weight that replaces ``source`` with its values in a fixed<bits, F>."""
    if isinstance(source, comp.WeightOp):
        if source.index_code is not None or source.run_code is not None:
            raise DlhwcError(
                f"quantize: weight '{slot.name}' is already Huffman-coded; "
                "run quantize before huffman"
            )
        mask = source.mask_array()
        props = dict(source.properties)
        node_name = source.node_name
    else:
        value = np.asarray(source.to_array(), dtype=np.float32)
        mask = value != 0
        props = {"values": dense_from_array(value)}
        node_name = slot.name
    if isinstance(source, comp.WeightOp) and source.is_shared:
        # Each kept weight counts once, through its codebook entry: no dense tensor.
        codebook, indices = source.codebook_array(), source.indices_array()
        counts = _index_counts(indices, mask, len(codebook))
        fmt = choose_format(codebook, bits, mode, bound, counts)
        codebook = quantize(codebook, fmt)
        zero = (codebook == 0) & (counts > 0)
        if zero.any():
            mask = mask & ~zero[indices]
            props["mask"] = dense_from_array(mask)
        props["codebook"] = dense_from_array(codebook)
    else:
        dense = source.dense() if isinstance(source, comp.WeightOp) else value
        fmt = choose_format(dense[mask], bits, mode, bound)
        values = quantize(np.where(mask, dense, np.float32(0)), fmt)
        mask = mask & (values != 0)
        props["values"] = dense_from_array(values)
        props["mask"] = dense_from_array(mask)
    props["format"] = comp.FixedAttr.get(fmt)
    return comp.WeightOp(source.results[0].type, props, node_name)


def _replace_weight(source: Operation, slots: list[WeightSlot], new: comp.WeightOp) -> None:
    """Feed every slot of ``slots`` from ``new`` (placed where ``source`` is)."""
    block = source.parent_block()
    block.insert_op_before(new, source)
    new.results[0].name_hint = source.results[0].name_hint
    for slot in slots:
        slot.consumer.operands[slot.operand] = new.results[0]
    if not source.results[0].uses:
        erase_weight(source)


# -- activations -------------------------------------------------------------------------


def activation_targets(fn: func.FuncOp) -> list[SSAValue]:
    """The values of ``fn`` the pass quantizes, in program order (see QuantizePass)."""
    targets: list[SSAValue] = [a for a in fn.body.block.args if _is_f32(a.type)]
    for op in fn.body.block.ops:
        conv = is_conv(op)
        if (conv or isinstance(op, (*_RNN_OPS, *_LAYER_OPS))) and op.operands:
            # A layer reads fixed point: its input, unless that is a quantized value
            # seen through layout-only ops (e.g. the output of a host op like Scaler).
            if not _derived_from(op.operands[0], targets):
                targets.append(op.operands[0])
        if isinstance(op, _RNN_OPS):
            targets.extend(r for r in op.results if _is_f32(r.type) and r.uses)
        elif (conv or isinstance(op, _LAYER_OPS)) and op.results:
            targets.append(layer_output(op.results[0]))
    seen: set[SSAValue] = set()
    unique = []
    for value in targets:
        if value in seen or not value.uses or not _is_f32(value.type) or _is_quantized(value):
            continue
        seen.add(value)
        unique.append(value)
    return unique


def _derived_from(value: SSAValue, targets: list[SSAValue]) -> bool:
    """Whether ``value`` is a target, or is quantized, through layout-only ops."""
    while True:
        if value in targets or _is_quantized(value) or isinstance(value.owner, comp.QuantizeOp):
            return True
        owner = value.owner
        if isinstance(owner, comp.LAYOUT_OPS) and owner.operands:
            value = owner.operands[0]
            continue
        return isinstance(owner, onnx_d.ConstantOp | comp.WeightOp)


def layer_output(value: SSAValue) -> SSAValue:
    """The end of the layer that starts at ``value`` (a Gemm/MatMul/Conv result): through
    a sole-use bias Add of a constant, then a sole-use Relu, Sigmoid or Tanh."""
    user = _sole_user(value)
    if isinstance(user, onnx_d.AddOp):
        other = user.B if user.A is value else user.A
        if isinstance(other.owner, onnx_d.ConstantOp | comp.WeightOp):
            value = user.results[0]
            user = _sole_user(value)
    if isinstance(user, _ACTIVATION_OPS):
        value = user.results[0]
    return value


def _sole_user(value: SSAValue) -> Operation | None:
    uses = list(value.uses)
    return uses[0].operation if len(uses) == 1 else None


def _is_quantized(value: SSAValue) -> bool:
    return any(isinstance(use.operation, comp.QuantizeOp) for use in value.uses)


def _is_f32(typ) -> bool:
    return isinstance(typ, TensorType) and isinstance(typ.get_element_type(), Float32Type)


def _insert_quantize(value: SSAValue, fmt: FixedFormat, overflow: float | None) -> None:
    q = comp.QuantizeOp(value, fmt, overflow)
    if isinstance(value.owner, Operation):
        value.owner.parent_block().insert_op_after(q, value.owner)
    else:
        block = value.owner
        first = block.first_op
        # After the arguments' earlier quantize ops, so inputs stay in argument order.
        while isinstance(first, comp.QuantizeOp) and isinstance(first.input.owner, type(block)):
            first = first.next_op
        if first is None:
            block.add_op(q)
        else:
            block.insert_op_before(q, first)
    value.replace_uses_with_if(q.output, lambda use: use.operation is not q)
    if value.name_hint:
        q.output.name_hint = f"{value.name_hint}_q"


def _activation_name(value: SSAValue) -> str:
    if value.name_hint:
        return value.name_hint
    owner = value.owner
    if isinstance(owner, Operation):
        base = getattr(owner, "node_name", None) or owner.name
        return base if len(owner.results) == 1 else f"{base}#{value.index}"
    return f"arg{value.index}"


# -- reporting and the CLI -------------------------------------------------------------------


def quantization_table(module: ModuleOp) -> list[dict[str, object]]:
    """What the module's formats are, one entry per quantized tensor in program order.

    Each entry: ``name`` (weight name or activation value name), ``kind`` ("weight",
    "bias" or "activation"), ``format`` (e.g. "fixed<16,8>"), ``overflow_rate`` (the
    fraction of calibration values that saturated, or None: not calibrated, and for
    weights, whose overflow is not kept in the IR).
    """
    roles: dict[Operation, tuple[str, str]] = {}
    for slot in find_weights(module):
        roles.setdefault(slot.source, (slot.name, "bias" if slot.role == "bias" else "weight"))
    table: list[dict[str, object]] = []
    for fn in module.walk():
        if not isinstance(fn, func.FuncOp):
            continue
        for op in fn.body.block.ops:
            if isinstance(op, comp.WeightOp) and op.fixed_format is not None:
                name, kind = roles.get(op, (op.node_name or "weight", "weight"))
                table.append(_entry(name, kind, op.fixed_format, None))
            elif isinstance(op, comp.QuantizeOp):
                rate = None if op.overflow_rate is None else op.overflow_rate.value.data
                table.append(_entry(_activation_name(op.input), "activation", op.format.format,
                                    rate))  # fmt: skip
    return table


def _entry(name: str, kind: str, fmt: FixedFormat, rate: float | None) -> dict[str, object]:
    return {"name": name, "kind": kind, "format": str(fmt), "overflow_rate": rate}


def with_calibration(passes: Iterable[ModulePass], path: str) -> tuple[list[ModulePass], bool]:
    """``passes`` with `calibration=path` on every quantize pass that has none; and whether
    any pass took it."""
    result, used = [], False
    for p in passes:
        if p.name == QuantizePass.name and getattr(p, "calibration", "") is None:
            p = dataclasses.replace(p, calibration=path)
            used = True
        result.append(p)
    return result, used


def calibrating(path: str | None) -> Callable[[list[ModulePass]], list[ModulePass]]:
    """The `configure` hook of `compile_for_target` for `--calibration`: every quantize
    pass without calibration data takes ``path`` (None: the passes stay as they are)."""
    if not path:
        return list
    return lambda passes: with_calibration(passes, path)[0]
