"""How a container and a run read to a person: the placement table and summary of a
container header, and the warnings a run's numbers call for (from the stats JSON's layer
records, whose shape every target shares)."""

from __future__ import annotations

from typing import Any

from dlhwc.spec.errors import DlhwcError

SATURATION_WARN_FRACTION = 1e-3
"""A layer whose results saturate more often than this (0.1%) gets a warning on stderr:
above the `quantize` pass's default overflow budget (1e-4) by ten, so that calibrated
formats on data like the calibration data do not trigger it, while a format that does
not fit the data does."""


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def numerics_warnings(stats: Any) -> list[str]:
    """The warnings a run's numbers call for, one line per layer: saturation above
    SATURATION_WARN_FRACTION, or every output vector all zero."""
    lines = []
    for e in stats.layers:
        num = e.get("numerics")
        if not num or not num["results"]:
            continue
        where = f"layer '{e['name']}'"
        fmt = e.get("out_format")
        fmt_text = f" (output format {fmt})" if fmt else ""
        if num["saturated_fraction"] > SATURATION_WARN_FRACTION:
            lines.append(
                f"warning: {where} saturated {pct(num['saturated_fraction'])} of its results "
                f"({num['saturated']} of {num['results']}){fmt_text}: these inputs exceed the "
                "range it was calibrated for (compile with --calibration data like them)"
            )
        if num["zero_vectors"] == num["vectors"]:
            lines.append(
                f"warning: {where}: every output vector is all zero{fmt_text}: its values "
                "underflow the format, or the layer is dead (compile with --calibration)"
            )
    return lines


def placement_lines(header: dict) -> list[str]:
    """Which op runs where (and, for ops left to the host, why), from a container header."""
    rows = header.get("placement", [])
    if not rows:
        return []
    text_fields = ("name", "op", "where", "reason")
    if not isinstance(rows, list) or not all(
        isinstance(r, dict) and all(isinstance(r.get(k, ""), str) for k in text_fields)
        for r in rows
    ):
        raise DlhwcError("malformed container: bad placement table")
    width = max(len(r.get("name") or r.get("op", "")) for r in rows)
    lines = ["placement:"]
    for r in rows:
        name = r.get("name") or r.get("op", "")
        reason = f" ({r['reason']})" if r.get("reason") else ""
        lines.append(f"  {name.ljust(width)}  {r.get('op', ''):<14} {r.get('where', '')}{reason}")
    return lines


def summary_lines(header: dict) -> list[str]:
    """The placement summary of a container header: weights and MACs on the accelerator
    (count and share), ops on the host; a warning when nothing runs on the accelerator."""
    s = header.get("summary")
    if not s:
        return []
    target = header.get("target") or "the accelerator"
    weights = s["weights_accel"] + s["weights_host"]
    macs = s["macs_accel"] + s["macs_host"]

    def share(part: int, whole: int) -> str:
        return f"{part:,} of {whole:,} ({pct(part / whole) if whole else '-'})"

    lines = [
        f"on {target}: weights {share(s['weights_accel'], weights)}, MACs per input row "
        f"{share(s['macs_accel'], macs)}; {s['host_ops']} ops on the host"
    ]
    if not s["weights_accel"]:
        lines.append(
            f"warning: nothing runs on {target}: every layer stays on the host "
            "(the placement says why)"
        )
    return lines
