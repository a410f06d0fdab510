"""`dlhwc eval`: how far a compressed model's outputs are from its float model's.

`compare` runs both modules in the reference interpreter on the same inputs and
measures, for every model output (by name):

    max_abs_error        max |ref - cmp|
    sqnr_db              10 log10(sum ref^2 / sum (ref - cmp)^2), in dB; inf when the
                         outputs are identical (-inf when ref is all zeros and cmp is not)
    top1_agreement       the share of rows where argmax over the last axis agrees; for
                         2-D float outputs only
    float_accuracy,      with labels (a 1-D integer array, one per row): the share of
    compressed_accuracy  rows whose prediction is the label. The prediction is the argmax
                         over the last axis of an [N, classes] float output, or the value
                         of an [N] integer output (a classifier's label output)

A metric that does not apply to an output is None (`-` in the table, null in JSON).
Non-finite numbers are written to JSON as the strings "inf", "-inf" and "nan".

With a target (`eval --target`), `compare_program` measures the compiled program's
outputs (its simulator's) against the float model the same way; the table shows them
as `<output> [program]` rows under the compressed IR's, whose accuracy column is then
the program's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from dlhwc.spec.errors import DlhwcError

METRICS = (
    "max_abs_error",
    "sqnr_db",
    "top1_agreement",
    "float_accuracy",
    "compressed_accuracy",
)


def split_data(
    arrays: Mapping[str, np.ndarray],
    input_names: Sequence[str],
    labels_key: str | None,
    source: str | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray | None, list[str]]:
    """Separate a data file's arrays into model inputs, labels and ignored arrays.

    Returns ``(inputs, labels, ignored)``: the arrays named like the model's inputs, the
    array under ``labels_key`` (None without one), and the sorted names of the others.
    """
    labels = None
    if labels_key is not None:
        if labels_key not in arrays:
            raise DlhwcError(
                f"no array '{labels_key}' for --labels (arrays: {', '.join(sorted(arrays))})",
                file=source,
            )
        if labels_key in input_names:
            raise DlhwcError(
                f"--labels '{labels_key}' names a model input, not the labels", file=source
            )
        labels = np.asarray(arrays[labels_key])
    inputs = {k: v for k, v in arrays.items() if k in input_names}
    ignored = sorted(k for k in arrays if k not in input_names and k != labels_key)
    return inputs, labels, ignored


def compare(
    float_module: ModuleOp,
    comp_module: ModuleOp,
    inputs: Mapping[str, np.ndarray],
    labels: np.ndarray | None = None,
    source: str | None = None,
) -> dict:
    """Run both modules on ``inputs`` and measure the compressed outputs against the float
    ones (see the module docstring); ``source`` names the data in error messages.

    Returns ``{"samples": N, "outputs": {name: {"shape", "dtype", *METRICS}}}``, where N
    is the first dimension of the first input (None for a scalar input or no input).
    """
    from dlhwc.compiler.interpreters.interpreter import run_module

    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.dtype.kind not in "iub":
            raise DlhwcError(
                f"labels must be a 1-D integer array, not {labels.dtype} of shape "
                f"{list(labels.shape)}",
                file=source,
            )
    reference = run_module(float_module, inputs, source)
    compressed = run_module(comp_module, inputs, source)
    outputs = _compare_outputs(reference, compressed, labels, "compressed")
    if labels is not None and all(o["float_accuracy"] is None for o in outputs.values()):
        raise DlhwcError(
            f"the labels ({labels.shape[0]} of them) fit no output: an accuracy needs an "
            f"[N, classes] float output or an [N] integer output with N = {labels.shape[0]}",
            file=source,
        )
    first = next(iter(inputs.values()), None)
    samples = int(np.shape(first)[0]) if first is not None and np.ndim(first) else None
    return {"samples": samples, "outputs": outputs}


def compare_program(
    float_module: ModuleOp,
    program_outputs: Mapping[str, np.ndarray],
    inputs: Mapping[str, np.ndarray],
    labels: np.ndarray | None = None,
    source: str | None = None,
) -> dict:
    """The program's outputs (from its simulator) against the float model's, by name."""
    from dlhwc.compiler.interpreters.interpreter import run_module

    reference = run_module(float_module, inputs, source)
    return _compare_outputs(reference, program_outputs, labels, "program")


def _compare_outputs(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    labels: np.ndarray | None,
    what: str,
) -> dict:
    if list(reference) != list(candidate):
        raise DlhwcError(
            f"the models have different outputs: float {', '.join(reference)}; "
            f"{what} {', '.join(candidate)}"
        )
    outputs = {}
    for name, ref in reference.items():
        ref, cmp = np.asarray(ref), np.asarray(candidate[name])
        if ref.shape != cmp.shape:
            raise DlhwcError(
                f"output '{name}' has shape {list(ref.shape)} in the float model but "
                f"{list(cmp.shape)} in the {what} one"
            )
        outputs[name] = _metrics(ref, cmp, labels)
    return outputs


def _metrics(ref: np.ndarray, cmp: np.ndarray, labels: np.ndarray | None) -> dict:
    entry: dict[str, object] = {"shape": list(ref.shape), "dtype": str(ref.dtype)}
    entry.update(dict.fromkeys(METRICS))
    if ref.dtype.kind not in "biuf":
        return entry  # strings and other non-numeric outputs: nothing to measure
    r, c = ref.astype(np.float64), cmp.astype(np.float64)
    diff = r - c
    entry["max_abs_error"] = float(np.max(np.abs(diff))) if diff.size else 0.0
    signal, noise = float(np.sum(r * r)), float(np.sum(diff * diff))
    if noise == 0.0:
        entry["sqnr_db"] = math.inf
    elif signal == 0.0:
        entry["sqnr_db"] = -math.inf
    else:
        entry["sqnr_db"] = 10.0 * math.log10(signal / noise)
    is_float = ref.dtype.kind == "f"
    if is_float and ref.ndim == 2 and ref.shape[0] > 0:
        entry["top1_agreement"] = float(np.mean(ref.argmax(-1) == cmp.argmax(-1)))
    if labels is not None and ref.shape[:1] == labels.shape and labels.size:
        if is_float and ref.ndim == 2:
            entry["float_accuracy"] = float(np.mean(ref.argmax(-1) == labels))
            entry["compressed_accuracy"] = float(np.mean(cmp.argmax(-1) == labels))
        elif ref.dtype.kind in "iub" and ref.ndim == 1:
            entry["float_accuracy"] = float(np.mean(ref == labels))
            entry["compressed_accuracy"] = float(np.mean(cmp == labels))
    return entry


# -- presentation ------------------------------------------------------------------------

_COLUMNS = (
    ("max_abs_error", "max abs error"),
    ("sqnr_db", "SQNR (dB)"),
    ("top1_agreement", "top-1 agreement"),
    ("float_accuracy", "float accuracy"),
    ("compressed_accuracy", "compressed accuracy"),
)


def _cell(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    value = float(value)
    if not math.isfinite(value):
        return str(value)  # inf, -inf, nan
    if key == "max_abs_error":
        return f"{value:.3e}"
    if key == "sqnr_db":
        return f"{value:.2f}"
    return f"{value:.2%}"


def format_report(result: dict, header: Sequence[tuple[str, str]] = ()) -> str:
    """The comparison as text: ``header`` lines (label, value), then one aligned row per
    output with the numbers right-aligned under their column titles."""
    lines = []
    if header:
        width = max(len(label) for label, _ in header)
        lines += [f"{label.ljust(width)}  {value}" for label, value in header]
        lines.append("")
    entries = []
    for name, entry in result["outputs"].items():
        entries.append((name, entry))
        if "program" in result:
            entries.append((f"{name} [program]", result["program"][name]))
    first = max([len("output"), *(len(n) for n, _ in entries)])
    titles = ["output".ljust(first)] + [title for _, title in _COLUMNS]
    rows = [
        [name.ljust(first)] + [_cell(key, entry[key]) for key, _ in _COLUMNS]
        for name, entry in entries
    ]
    widths = [max(len(r[i]) for r in [titles, *rows]) for i in range(len(titles))]
    for row in [titles, *rows]:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def to_json(result: dict) -> str:
    """The comparison as JSON text (non-finite numbers as "inf", "-inf", "nan")."""

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value

    return json.dumps(clean(result), indent=2, allow_nan=False) + "\n"
