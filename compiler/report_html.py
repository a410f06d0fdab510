"""`dlhwc report prog.dlhw --html page.html`: one self-contained page about a program.

The page holds, in order:

    summary      the program (target, machine, layers, host segments) and, with a run,
                 its totals per vector against the dense baseline
    layers       one row per layer: shape, density, entries and fillers from the
                 container; cycles, energy, speedup and load efficiency from the run
    weights      per layer (per matrix and direction for ESE) a histogram of the weights
                 the container stores, with the codebook's centroids (EIE) and a table of
                 the codebook: index, code, value, weights that use it
    pe-load      per layer the busy cycles of every PE per vector (stats
                 `pe_busy_cycles`), their mean and maximum
    breakdown    cycles and energy per vector of every layer, split by kind (load,
                 compute, transfer, sync) and by event, next to the dense baseline's
    pareto       (optional) accuracy against compression, cycles and energy of the
                 points `explore` tried, with the Pareto front

The weights are decoded from the container's sections (a layer's codebook and its
sparse-matrix images, through the simulator's checked tables), never from compiler
objects. The run's numbers come from the simulator's stats, of `--input` or of a
`--stats` file; without either the page has the container's parts only.

Plots are matplotlib figures (Agg) inlined as SVG, with text as text and the ids of each
figure prefixed so that figures do not share ids; `svg.hashsalt` and no date make the
page byte-identical for the same input. Nothing on the page refers outside it.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dlhwc.spec.errors import DlhwcError

PARETO_KEYS = ("accuracy", "compression", "cycles", "energy", "recipe")
"""The keys of a Pareto point: accuracy (a fraction, 0..1), compression (a rate, e.g. 27.5
for 27.5x), cycles and energy per vector (cycles; picojoules, as the stats'
`energy_pj_per_vector`; None when not simulated), recipe (what produced the point)."""

CYCLE_KINDS = ("load", "compute", "transfer", "sync")


@dataclass
class Section:
    """One part of the page: its anchor id, its heading and its HTML body."""

    id: str
    title: str
    body: str


# -- the page -----------------------------------------------------------------------------

PAGE_TARGETS = ("eie", "ese")
"""The targets whose programs and stats the page knows how to draw (PEs, blocks)."""


def program_page(
    sim,
    source: str,
    stats: dict | None = None,
    origin: str | None = None,
    stats_file: str | None = None,
    pareto: Sequence[dict] | None = None,
) -> str:
    """The report page of the loaded program ``sim`` (read from ``source``), with a run's
    ``stats`` (the JSON of `Stats.to_json`; ``origin`` says where the run comes from,
    ``stats_file`` names the file they were read from, for errors) and Pareto points."""
    figures = _Figures()
    target = sim.container.target
    if target not in PAGE_TARGETS:
        raise DlhwcError(
            f"report --html draws the sparse PE machines ({', '.join(PAGE_TARGETS)}), not "
            f"a '{target}' program; `dlhwc report` without --html gives its table"
        )
    if stats is not None:
        _check_stats(sim, stats, stats_file)
    try:
        sections = [
            summary_section(sim, source, stats, origin),
            layers_section(sim, stats),
            weights_section(sim, figures),
        ]
        if stats is not None:
            sections.append(load_section(sim, stats, figures))
            sections.append(breakdown_section(stats, figures))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError) as e:
        if stats is None:
            raise
        reason = " ".join(str(e).split())
        raise DlhwcError(
            f"not a complete {target.upper()} stats file: {type(e).__name__} {reason}",
            file=stats_file,
        ) from None
    if pareto is not None:
        sections.append(pareto_section(pareto, figures))
    return page(f"dlhwc report: {source}", sections)


def pareto_page(points: Sequence[dict], title: str = "dlhwc explore") -> str:
    """A page with the Pareto section alone (see `pareto_section`)."""
    return page(title, [pareto_section(points)])


def page(title: str, sections: Sequence[Section]) -> str:
    """A complete HTML document: the title, a table of contents, the sections."""
    nav = " · ".join(f'<a href="#{s.id}">{_e(s.title)}</a>' for s in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
        f"<nav>{nav}</nav>",
    ]
    for s in sections:
        parts.append(f'<section id="{s.id}">\n<h2>{_e(s.title)}</h2>\n{s.body}\n</section>')
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


_CSS = (
    "body{font-family:sans-serif;margin:1.5em auto;max-width:72em;color:#222}"
    "h1{font-size:1.4em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}"
    "h3{font-size:1em;margin-bottom:.3em}"
    "table{border-collapse:collapse;margin:.5em 0 1em}"
    "th,td{border:1px solid #ddd;padding:.2em .6em}td.n{text-align:right}"
    "th{background:#f4f4f4}p.note{color:#555;font-size:.9em}"
    "figure{margin:.5em 0}svg{max-width:100%;height:auto}"
)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def table(
    table_id: str, head: Sequence[str], rows: Sequence[Sequence[object]], numeric_from: int = 1
) -> str:
    """An HTML table; cells from column ``numeric_from`` on are right-aligned."""
    out = [
        f'<table id="{table_id}">',
        "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>",
    ]
    for row in rows:
        cells = [
            f'<td class="n">{_e(c)}</td>' if i >= numeric_from else f"<td>{_e(c)}</td>"
            for i, c in enumerate(row)
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _cyc(x: float) -> str:
    return f"{x:,.1f}"


def _nj(pj: float) -> str:
    return f"{pj / 1000:,.2f}"


def _ratio(x: float) -> str:
    return f"{x:.2f}×"


# -- sections -----------------------------------------------------------------------------


def summary_section(sim, source: str, stats: dict | None, origin: str | None) -> Section:
    """The program and, with a run, its totals against the dense baseline."""
    cfg = sim.config
    target = sim.container.target
    rows = [
        ("program", source),
        ("target", target.upper()),
        ("machine", f"{cfg.num_pes} PEs at {cfg.clock_mhz:g} MHz, FIFO depth {cfg.fifo_depth}"),
        ("instructions", f"{len(sim.program):,}"),
        ("accelerator layers", ", ".join(lay.name for lay in sim.layers) or "none"),
        (
            "host segments",
            ", ".join(f"{s['name']} ({', '.join(s['ops'])})" for s in sim.segments) or "none",
        ),  # fmt: skip
        ("weights resident", "yes" if sim.resident else "no (reloaded for every vector)"),
    ]
    body = [table("program", ("", "value"), rows, numeric_from=2)]
    if stats is None:
        body.append(
            '<p class="note">No run: give <code>--input data.npz</code> (simulate) or '
            "<code>--stats run.json</code> (from <code>dlhwc run --stats</code>) for the "
            "cycles, energy and per-PE load.</p>"
        )
        return Section("summary", "Summary", "\n".join(body))
    t = stats["total"]
    unit = "sequence" if target == "ese" else "vector"
    n = t["vectors"]
    d = t["dense"]
    totals = [
        (f"{unit}s", f"{n:,}"),
        (f"cycles per {unit}", _cyc(t["cycles_per_vector"])),
        (f"time per {unit} (µs)", f"{t['time_us_per_vector']:.3f}"),
        (f"energy per {unit} (nJ)", _nj(t["energy_pj_per_vector"])),
        (f"dense cycles per {unit}", _cyc(d["cycles_per_vector"])),
        (f"dense energy per {unit} (nJ)", _nj(d["energy_pj_per_vector"])),
        ("speedup over dense", _ratio(t["speedup"])),
        ("energy saving over dense", _ratio(t["energy_saving"])),
        ("load efficiency", _pct(t["load_efficiency"])),
    ]
    body.append(f"<h3>Run{f' ({_e(origin)})' if origin else ''}</h3>")
    body.append(table("totals", ("", "value"), totals))
    return Section("summary", "Summary", "\n".join(body))


def layers_section(sim, stats: dict | None) -> Section:
    """One row per layer: the container's shape and sparsity, and the run's costs."""
    static = _static_layers(sim)
    head = ["layer", "kind", "rows×cols", "density", "non-zeros", "entries", "fillers"]
    run = stats is not None
    if run:
        head += ["cycles/vec", "dense cycles/vec", "speedup", "nJ/vec", "dense nJ/vec",
                 "energy saving", "load efficiency"]  # fmt: skip
    rows = []
    for i, s in enumerate(static):
        row = [s["name"], s["kind"], s["shape"], _pct(s["density"]), f"{s['nonzeros']:,}",
               f"{s['entries']:,}", f"{s['fillers']:,}"]  # fmt: skip
        if run:
            e = stats["layers"][i]
            row += [
                _cyc(e["cycles_per_vector"]), _cyc(e["dense"]["cycles_per_vector"]),
                _ratio(e["speedup"]), _nj(e["energy_pj_per_vector"]),
                _nj(e["dense"]["energy_pj_per_vector"]), _ratio(e["energy_saving"]),
                _pct(e["load_efficiency"]),
            ]  # fmt: skip
        rows.append(row)
    body = table("layer-table", head, rows, numeric_from=2)
    if sim.container.target == "ese" and run:
        body += '\n<p class="note">Per vector: per input sequence (all its time steps).</p>'
    return Section("layers", "Layers", body)


def _static_layers(sim) -> list[dict]:
    out = []
    for lay in sim.layers:
        if sim.container.target == "ese":
            mats = list(lay.matrices.values())
            weights = sum(m.rows * m.cols for m in mats)
            shape = ", ".join(f"{m.rows}×{m.cols}" for m in mats)
            kind = lay.kind.lower()
        else:
            weights = lay.rows * lay.cols
            shape = f"{lay.rows}×{lay.cols}"
            kind = "fc"
        out.append(
            {
                "name": lay.name,
                "kind": kind,
                "shape": shape,
                "density": lay.nonzeros / max(1, weights),
                "nonzeros": lay.nonzeros,
                "entries": lay.entries,
                "fillers": lay.fillers,
            }
        )
    return out


@dataclass
class Weights:
    """The stored weights of one matrix (or layer): distinct values and their counts."""

    title: str
    values: np.ndarray  # float64, ascending
    counts: np.ndarray  # int64: weights of each value
    codebook: list[tuple[int, int, float, int]] | None  # (index, code, value, weights)
    note: str


def decode_weights(sim) -> list[Weights]:
    """The kept weights of every layer, from the container's sections."""
    if sim.container.target == "ese":
        return _ese_weights(sim)
    return _eie_weights(sim)


def _eie_weights(sim) -> list[Weights]:
    """Per layer: the codebook (codes at the weight format) and how many entries of the
    sparse-matrix images use each index (the low index_bits of an entry); index 0 is the
    fillers' zero."""
    cfg = sim.config
    k = cfg.codebook_entries
    out = []
    for lay in sim.layers:
        i = lay.index
        codes = sim.section(f"L{i}.codebook", "iu", (k,)).astype(np.int64)
        counts = np.zeros(k, dtype=np.int64)
        for b in range(len(lay.blocks)):
            spmat = sim.section(f"L{i}.B{b}.spmat", "u", None)
            counts += np.bincount(np.asarray(spmat, dtype=np.int64) & (k - 1), minlength=k)
        values = codes * lay.weight_format.scale
        book = [(j, int(codes[j]), float(values[j]), int(counts[j])) for j in range(k)]
        used = counts[1:] > 0
        order = np.argsort(values[1:][used], kind="stable")
        out.append(
            Weights(
                title=lay.name,
                values=values[1:][used][order],
                counts=counts[1:][used][order],
                codebook=book,
                note=f"weight format {lay.weight_format}; index 0 is the fillers' zero "
                f"({int(counts[0]):,} fillers)",
            )
        )
    return out


def _ese_weights(sim) -> list[Weights]:
    """Per layer, direction and matrix: the 12-bit weight codes of the sparse-matrix
    images (low weight_bits of an entry, two's complement; fillers are code 0), at the
    matrix's fraction (fw for W, fr for R and Rh)."""
    from dlhwc.spec.ese.isa import MATRICES

    cfg = sim.config
    wb = cfg.weight_bits
    out = []
    for lay in sim.layers:
        for (d, mat), m in lay.matrices.items():
            name = MATRICES[mat]
            codes = []
            for b in range(len(m.blocks)):
                spmat = sim.section(f"L{lay.index}.D{d}.{name}.B{b}.spmat", "u", None)
                c = np.asarray(spmat, dtype=np.int64) & ((1 << wb) - 1)
                codes.append(np.where(c >> (wb - 1), c - (1 << wb), c))
            flat = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64)
            distinct, counts = np.unique(flat[flat != 0], return_counts=True)
            frac = lay.formats.fw if mat == 0 else lay.formats.fr
            direction = f", direction {d}" if lay.dirs > 1 else ""
            out.append(
                Weights(
                    title=f"{lay.name} {name}{direction}",
                    values=distinct * 2.0**-frac,
                    counts=counts.astype(np.int64),
                    codebook=None,
                    note=f"linear {wb}-bit weights at fraction {frac} (no codebook); "
                    f"{int(m.fillers):,} fillers",
                )
            )
    return out


def weights_section(sim, figures: _Figures) -> Section:
    """A histogram of every layer's weights with its centroids, and its codebook."""
    body = []
    for n, w in enumerate(decode_weights(sim)):
        total = int(w.counts.sum())
        body.append(f"<h3>{_e(w.title)}: {total:,} weights</h3>")
        if total == 0:
            body.append('<p class="note">No weight is kept.</p>')
            continue
        body.append(figures.histogram(w))
        body.append(f'<p class="note">{_e(w.note)}</p>')
        if w.codebook is not None:
            rows = [(j, code, f"{value:.6g}", f"{count:,}") for j, code, value, count in w.codebook]
            body.append(table(f"codebook-{n}", ("index", "code", "value", "weights"), rows, 0))
    return Section("weights", "Weights and codebooks", "\n".join(body))


def load_section(sim, stats: dict, figures: _Figures) -> Section:
    """Busy cycles of each PE per vector, per layer."""
    n = stats["total"]["vectors"]
    unit = "sequence" if sim.container.target == "ese" else "vector"
    pes = sim.config.num_pes
    layers = stats["layers"]
    if any("pe_busy_cycles" not in e for e in layers):
        body = (
            '<p class="note">These stats have no per-PE counts (<code>pe_busy_cycles</code>): '
            "they were written by an older dlhwc. Simulate again with <code>--input</code> "
            "or <code>dlhwc run --stats</code>.</p>"
        )
        return Section("pe-load", "Load per PE", body)
    rows, body = [], []
    for e in layers:
        busy = np.asarray(e["pe_busy_cycles"], dtype=np.float64) / n
        if busy.shape != (pes,):
            raise ValueError(f"layer {e['name']}: pe_busy_cycles has {busy.size} PEs, not {pes}")
        mean, peak = float(busy.mean()), float(busy.max())
        rows.append(
            (e["name"], _cyc(float(busy.min())), _cyc(mean), _cyc(peak),
             _ratio(peak / mean) if mean else "-", _pct(e["load_efficiency"]))
        )  # fmt: skip
        body.append(figures.pe_load(e["name"], busy, e["load_efficiency"], unit))
    head = ("layer", "min busy/vec", "mean busy/vec", "max busy/vec", "max/mean",
            "load efficiency")  # fmt: skip
    note = (
        '<p class="note">Busy cycles: the cycles of work each PE did (entries, fillers, '
        "the pointer read of an empty column), per vector. A layer takes as long as its "
        "busiest PE; load efficiency is busy PE-cycles over PEs × compute cycles.</p>"
    )
    return Section(
        "pe-load", "Load per PE", "\n".join([table("pe-load-table", head, rows), note, *body])
    )


def breakdown_section(stats: dict, figures: _Figures) -> Section:
    """Cycles by kind and energy by event per vector, each layer next to its dense
    baseline (the same layer uncompressed on the same machine)."""
    n = stats["total"]["vectors"]
    unit = "sequence" if stats.get("target") == "ese" else "vector"
    per_event = stats["machine"]["energy_pj_per_event"]
    events = list(per_event)
    layers = stats["layers"]
    cycles, dense_cycles, cycle_rows = [], [], []
    energies, dense_energies, energy_rows = [], [], []
    for e in layers:
        b, dense = e["cycles_breakdown"], e["dense"]
        # The dense baseline has the layer's own transfers and barriers.
        mine = [b[k] / n for k in CYCLE_KINDS]
        base = [dense["load_cycles"] / n, dense["compute_cycles"] / n, b["transfer"] / n,
                b["sync"] / n]  # fmt: skip
        cycles.append(mine)
        dense_cycles.append(base)
        cycle_rows.append(
            [e["name"], *map(_cyc, mine), _cyc(e["cycles_per_vector"]), *map(_cyc, base),
             _cyc(dense["cycles_per_vector"])]
        )  # fmt: skip
        mine_e = [e["energy_breakdown_pj"].get(k, 0.0) / n for k in events]
        base_e = [dense["events"].get(k, 0) * per_event[k] / n for k in events]
        energies.append([x / 1000 for x in mine_e])
        dense_energies.append([x / 1000 for x in base_e])
        energy_rows.append(
            [e["name"], *map(_nj, mine_e), _nj(e["energy_pj_per_vector"]), *map(_nj, base_e),
             _nj(dense["energy_pj_per_vector"])]
        )  # fmt: skip
    names = [e["name"] for e in layers]
    cycle_head = ["layer", *CYCLE_KINDS, "total", *(f"dense {k}" for k in CYCLE_KINDS),
                  "dense total"]  # fmt: skip
    energy_head = ["layer", *(f"{k} nJ" for k in events), "total nJ",
                   *(f"dense {k} nJ" for k in events), "dense total nJ"]  # fmt: skip
    cycle_label, energy_label = f"cycles per {unit}", f"energy per {unit} (nJ)"
    body = [
        f"<h3>Cycles per {unit}</h3>",
        figures.stacked(cycle_label, names, CYCLE_KINDS, cycles, dense_cycles),
        table("cycles-breakdown", cycle_head, cycle_rows),
        f"<h3>Energy per {unit}</h3>",
        figures.stacked(energy_label, names, events, energies, dense_energies),
        table("energy-breakdown", energy_head, energy_rows),
        '<p class="note">Dense: the same layer uncompressed on the same machine (every '
        "weight stored, every activation broadcast), with the same host transfers and "
        "barriers; computed by the simulator next to the run.</p>",
    ]
    return Section("breakdown", "Cycles and energy against dense", "\n".join(body))


def pareto_section(points: Sequence[dict], figures: _Figures | None = None) -> Section:
    """Accuracy against compression, cycles and energy of ``points`` (see PARETO_KEYS),
    with the points on the Pareto front (best accuracy and compression, fewest cycles
    and least energy; a missing cycles or energy counts as the worst) marked."""
    figures = figures or _Figures()
    checked = [_check_point(i, p) for i, p in enumerate(points)]
    front = pareto_front(checked)
    order = sorted(range(len(checked)), key=lambda i: (-checked[i]["accuracy"],
                                                       -checked[i]["compression"], i))  # fmt: skip
    rows = []
    for i in order:
        p = checked[i]
        rows.append(
            (p["recipe"], f"{100 * p['accuracy']:.2f}%", f"{p['compression']:.1f}×",
             "-" if p["cycles"] is None else _cyc(p["cycles"]),
             "-" if p["energy"] is None else _nj(p["energy"]),
             "yes" if i in front else "no")
        )  # fmt: skip
    head = ("recipe", "accuracy", "compression", "cycles/vec", "nJ/vec", "on the front")
    body = [
        figures.pareto(checked, front) if checked else '<p class="note">No points.</p>',
        table("pareto-table", head, rows),
        '<p class="note">Filled markers are on the front of all four objectives; each '
        "panel's line is the front of its two.</p>",
    ]
    return Section("pareto", "Pareto front", "\n".join(body))


def _check_point(i: int, point: dict) -> dict:
    if not isinstance(point, dict):
        raise ValueError(f"Pareto point {i} is not a dict")
    missing = [k for k in PARETO_KEYS if k not in point]
    if missing:
        raise ValueError(f"Pareto point {i} has no {', '.join(missing)}")
    out = {"recipe": str(point["recipe"])}
    for key in ("accuracy", "compression", "cycles", "energy"):
        value = point[key]
        if value is None and key in ("cycles", "energy"):
            out[key] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise ValueError(f"Pareto point {i}: {key} is {value!r}, not a finite number")
        out[key] = float(value)
    return out


def pareto_front(points: Sequence[dict]) -> set[int]:
    """Indices of the points no other point dominates (accuracy and compression higher,
    cycles and energy lower; None is worse than any number)."""
    inf = float("inf")
    keys = [
        (-p["accuracy"], -p["compression"],
         inf if p["cycles"] is None else p["cycles"], inf if p["energy"] is None else p["energy"])
        for p in points
    ]  # fmt: skip
    front = set()
    for i, a in enumerate(keys):
        dominated = any(all(x <= y for x, y in zip(b, a, strict=True)) and b != a for b in keys)
        if not dominated:
            front.add(i)
    return front


def _check_stats(sim, stats: dict, source: str | None) -> None:
    """The stats must be of this program: its target and its layers, in order."""
    mine = [lay.name for lay in sim.layers]
    try:
        theirs = [e["name"] for e in stats["layers"]]
    except (KeyError, TypeError) as e:
        raise DlhwcError(f"not a stats file: missing {e}", file=source) from None
    if stats.get("target", sim.container.target) != sim.container.target or theirs != mine:
        raise DlhwcError(
            f"these stats are of another program: layers {', '.join(theirs) or 'none'}, the "
            f"program's {', '.join(mine) or 'none'}",
            file=source,
        )
    try:
        for path, value in _numbers(stats):
            _check_number(path, value)
    except (KeyError, TypeError, AttributeError) as e:
        raise DlhwcError(
            f"not a complete {sim.container.target.upper()} stats file: missing {e}", file=source
        ) from None
    except ValueError as e:
        raise DlhwcError(
            f"bad {sim.container.target.upper()} stats file: {e}", file=source
        ) from None


MAX_STAT = 1e100
"""The largest number the page takes from a stats file: a simulator never counts more,
and sums and products of such numbers stay finite."""


def _numbers(stats: dict):
    """(path, value) of every number the page takes from ``stats``."""
    t = stats["total"]
    yield "total.vectors", t["vectors"]
    for key in ("cycles_per_vector", "time_us_per_vector", "energy_pj_per_vector", "speedup",
                "energy_saving", "load_efficiency"):  # fmt: skip
        yield f"total.{key}", t[key]
    for key in ("cycles_per_vector", "energy_pj_per_vector"):
        yield f"total.dense.{key}", t["dense"][key]
    for event, pj in stats["machine"]["energy_pj_per_event"].items():
        yield f"machine.energy_pj_per_event.{event}", pj
    for i, e in enumerate(stats["layers"]):
        where = f"layers[{i}]"
        for key in ("cycles_per_vector", "energy_pj_per_vector", "speedup", "energy_saving",
                    "load_efficiency"):  # fmt: skip
            yield f"{where}.{key}", e[key]
        for key in CYCLE_KINDS:
            yield f"{where}.cycles_breakdown.{key}", e["cycles_breakdown"][key]
        for event, pj in e["energy_breakdown_pj"].items():
            yield f"{where}.energy_breakdown_pj.{event}", pj
        dense = e["dense"]
        for key in ("cycles_per_vector", "energy_pj_per_vector", "load_cycles", "compute_cycles"):
            yield f"{where}.dense.{key}", dense[key]
        for event, count in dense["events"].items():
            yield f"{where}.dense.events.{event}", count
        for k, cycles in enumerate(e.get("pe_busy_cycles", [])):
            yield f"{where}.pe_busy_cycles[{k}]", cycles


def _check_number(path: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{path} is {value!r}, not a number")
    if not 0 <= value <= MAX_STAT:  # also NaN
        raise ValueError(f"{path} is {value!r}, outside 0..{MAX_STAT:g}")
    if path == "total.vectors" and (not isinstance(value, int) or value < 1):
        raise ValueError(f"{path} is {value!r}, not a count of vectors")


# -- plots --------------------------------------------------------------------------------


class _Figures:
    """Makes the page's figures as inline SVG, numbering them for unique ids."""

    def __init__(self) -> None:
        self.count = 0

    def _svg(self, fig, alt: str) -> str:
        import matplotlib

        self.count += 1
        prefix = f"f{self.count}-"
        buf = io.StringIO()
        with matplotlib.rc_context({"svg.hashsalt": f"dlhwc-{self.count}", "svg.fonttype": "none"}):
            fig.savefig(buf, format="svg", bbox_inches="tight",
                        metadata={"Date": None, "Creator": None, "Format": None, "Type": None})  # fmt: skip
        text = buf.getvalue()
        text = text[text.index("<svg") :]
        text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text, count=2)
        text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', text)
        text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", text)
        text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', text)
        text = text.replace("<svg ", f'<svg role="img" aria-label="{_e(alt)}" ', 1)
        return f'<figure class="plot" data-plot="{_e(alt)}">\n{text.strip()}\n</figure>'

    @staticmethod
    def _figure(width: float, height: float):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(width, height), dpi=72)
        FigureCanvasAgg(fig)  # the Agg backend: no display, no global pyplot state
        return fig

    def histogram(self, w: Weights) -> str:
        fig = self._figure(7.5, 2.6)
        ax = fig.subplots()
        lo, hi = float(w.values.min()), float(w.values.max())
        bins = np.linspace(lo, hi, 65) if hi > lo else np.array([lo - 0.5, hi + 0.5])
        ax.hist(w.values, bins=bins, weights=w.counts, color="#4c72b0")
        if w.codebook is not None:
            centroids = [v for j, _, v, _ in w.codebook if j > 0]
            for v in centroids:
                ax.axvline(v, color="#dd8452", linewidth=0.8, linestyle="--")
            ax.plot([], [], color="#dd8452", linestyle="--", label=f"{len(centroids)} centroids")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_xlabel("weight value")
        ax.set_ylabel("weights")
        ax.set_title(f"{w.title}: {int(w.counts.sum()):,} weights", fontsize=10)
        return self._svg(fig, f"weight histogram {w.title}")

    def pe_load(self, name: str, busy: np.ndarray, efficiency: float, unit: str) -> str:
        fig = self._figure(7.5, 2.4)
        ax = fig.subplots()
        ax.bar(np.arange(busy.size), busy, width=0.8, color="#55a868")
        ax.axhline(float(busy.mean()), color="#333333", linewidth=0.8, linestyle="--",
                   label=f"mean {busy.mean():,.1f}")  # fmt: skip
        ax.axhline(float(busy.max()), color="#c44e52", linewidth=0.8,
                   label=f"max {busy.max():,.1f}")  # fmt: skip
        ax.set_xlabel("PE")
        ax.set_ylabel(f"busy cycles per {unit}")
        ax.set_title(f"{name}: load efficiency {_pct(efficiency)}", fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
        return self._svg(fig, f"PE load {name}")

    def stacked(
        self,
        label: str,
        names: list[str],
        kinds: Sequence[str],
        values: list[list[float]],
        dense: list[list[float]],
    ) -> str:
        fig = self._figure(7.5, 3.0)
        ax = fig.subplots()
        x = np.arange(len(names), dtype=np.float64)
        width = 0.38
        colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3",
                  "#8c8c8c", "#ccb974", "#64b5cd"]  # fmt: skip
        mine = np.asarray(values, dtype=np.float64).reshape(len(names), len(kinds))
        base = np.asarray(dense, dtype=np.float64).reshape(len(names), len(kinds))
        bottom_m = np.zeros(len(names))
        bottom_d = np.zeros(len(names))
        for k, kind in enumerate(kinds):
            color = colors[k % len(colors)]
            ax.bar(x - width / 2, mine[:, k], width, bottom=bottom_m, color=color, label=kind)
            ax.bar(x + width / 2, base[:, k], width, bottom=bottom_d, color=color, alpha=0.5,
                   hatch="//", edgecolor="white", linewidth=0)  # fmt: skip
            bottom_m += mine[:, k]
            bottom_d += base[:, k]
        top = float(max(bottom_m.max(initial=0.0), bottom_d.max(initial=0.0)))
        ax.set_ylim(0, 1.08 * top if top > 0 else 1.0)
        ax.set_xticks(x, [f"{n}\ncompressed | dense" for n in names], fontsize=8)
        ax.set_ylabel(label)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.set_title(f"{label}: compressed (left) and dense (right, hatched)", fontsize=10)
        return self._svg(fig, f"breakdown {label}")

    def pareto(self, points: list[dict], front: set[int]) -> str:
        fig = self._figure(10.0, 3.0)
        axes = fig.subplots(1, 3)
        panels = (("compression", "compression rate (×)", 1.0, True),
                  ("cycles", "cycles per vector", 1.0, False),
                  ("energy", "energy per vector (nJ)", 1e-3, False))  # fmt: skip
        for ax, (key, xlabel, scale, higher_better) in zip(axes, panels, strict=True):
            have = [i for i, p in enumerate(points) if p[key] is not None]
            if not have:
                ax.set_axis_off()
                ax.set_title(f"no {key}", fontsize=9)
                continue
            xs = np.array([points[i][key] * scale for i in have])
            ys = np.array([100 * points[i]["accuracy"] for i in have])
            on = np.array([i in front for i in have])
            ax.scatter(xs[~on], ys[~on], facecolors="none", edgecolors="#4c72b0", s=24)
            ax.scatter(xs[on], ys[on], color="#c44e52", s=24)
            line = _front_2d(xs, ys, higher_better)
            ax.plot(xs[line], ys[line], color="#c44e52", linewidth=0.8, drawstyle="steps-post")
            ax.set_xlabel(xlabel, fontsize=8)
            ax.set_ylabel("accuracy (%)", fontsize=8)
            ax.tick_params(labelsize=7)
        fig.suptitle(f"{len(points)} points, {len(front)} on the front", fontsize=10)
        return self._svg(fig, "Pareto front")


def _front_2d(xs: np.ndarray, ys: np.ndarray, higher_better: bool) -> np.ndarray:
    """Indices of the 2-D front (accuracy up; x up or down), in increasing x."""
    order = np.lexsort((-ys, -xs if higher_better else xs))
    best = -np.inf
    keep = []
    for i in order:
        if ys[i] > best:
            keep.append(i)
            best = ys[i]
    return np.array(sorted(keep, key=lambda i: (xs[i], ys[i])), dtype=np.int64)
