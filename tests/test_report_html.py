"""`dlhwc report --html`: the page's sections, its numbers against the stats, its plots,
its determinism and self-containment, the Pareto section, and every user error."""

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from dlhwc.compiler.cli import main
from dlhwc.compiler.report_html import page, pareto_front, pareto_page, pareto_section
from tests.test_cli import assert_user_error, dlhwc

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "examples" / "models" / "digits_mlp.onnx"
LSTM = ROOT / "examples" / "models" / "digits_lstm.onnx"
DIGITS = ROOT / "examples" / "data" / "digits_test.npz"
DIGITS_SEQ = ROOT / "examples" / "data" / "digits_test_seq.npz"
PIPELINE = "prune{sparsity=0.9},share-weights{bits=4 zero-code=true}"


class Page(HTMLParser):
    """The parts of a page the tests look at: sections, tables, figures, ids, links."""

    def __init__(self, text: str):
        super().__init__()
        self.sections: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.plots: list[tuple[str, str]] = []  # (section, data-plot)
        self.svgs: dict[str, int] = {}  # section -> inline <svg> elements
        self.ids: list[str] = []
        self.links: list[str] = []
        self.external: list[str] = []
        self._table = self._row = self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        for key in ("src", "href", "xlink:href"):
            if key in a:
                (self.links if a[key].startswith("#") else self.external).append(a[key])
        if tag == "section":
            self.sections.append(a["id"])
        elif tag == "table":
            self._table = self.tables.setdefault(a["id"], [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "figure":
            self.plots.append((self.sections[-1], a["data-plot"]))
        elif tag == "svg":
            self.svgs[self.sections[-1]] = self.svgs.get(self.sections[-1], 0) + 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _rows(table: list[list[str]]) -> dict[str, dict[str, str]]:
    """A table's rows keyed by their first cell, each a dict keyed by the header."""
    head = table[0]
    return {row[0]: dict(zip(head, row, strict=True)) for row in table[1:]}


@pytest.fixture(scope="module")
def eie(tmp_path_factory):
    """A pruned, shared digits MLP for EIE, its HTML report with a run, and the stats."""
    d = tmp_path_factory.mktemp("eie")
    prog, stats, page_ = d / "mlp.dlhw", d / "run.json", d / "mlp.html"
    assert main(["compile", str(MLP), "--target", "eie", "-p", PIPELINE, "-o", str(prog)]) == 0
    assert main(["run", str(prog), "--input", str(DIGITS), "--stats", str(stats),
                 "--output", str(d / "y.npz")]) == 0  # fmt: skip
    assert main(["report", str(prog), "--input", str(DIGITS), "--html", str(page_)]) == 0
    return d, prog, json.loads(stats.read_text()), page_


def test_page_sections_and_plots(eie, capsys):
    _, _, stats, path = eie
    p = Page(path.read_text())
    assert p.sections == ["summary", "layers", "weights", "pe-load", "breakdown"]
    names = [e["name"] for e in stats["layers"]]
    assert names == ["fc1", "fc2", "fc3"]
    plots = set(p.plots)
    for name in names:
        assert ("weights", f"weight histogram {name}") in plots
        assert ("pe-load", f"PE load {name}") in plots
    assert ("breakdown", "breakdown cycles per vector") in plots
    assert ("breakdown", "breakdown energy per vector (nJ)") in plots
    assert len(p.plots) == 2 * len(names) + 2
    assert p.svgs == {"weights": 3, "pe-load": 3, "breakdown": 2}  # every plot is inline SVG


def test_page_is_self_contained_and_byte_identical(eie, tmp_path, capsys):
    d, prog, _, path = eie
    text = path.read_text()
    p = Page(text)
    assert p.external == []
    assert "http://" not in text and "https://" not in text and "<img" not in text
    assert len(p.ids) == len(set(p.ids))  # figures do not share ids
    assert {link[1:] for link in p.links} <= set(p.ids)  # every link lands on the page
    again = tmp_path / "again.html"
    assert main(["report", str(prog), "--input", str(DIGITS), "--html", str(again)]) == 0
    assert again.read_bytes() == path.read_bytes()


def test_tables_hold_the_stats_numbers(eie, capsys):
    _, _, stats, path = eie
    p = Page(path.read_text())
    t, n = stats["total"], stats["total"]["vectors"]
    totals = {row[0]: row[1] for row in p.tables["totals"][1:]}
    assert totals["vectors"] == f"{n:,}"
    assert totals["cycles per vector"] == f"{t['cycles_per_vector']:,.1f}"
    assert totals["energy per vector (nJ)"] == f"{t['energy_pj_per_vector'] / 1000:,.2f}"
    assert totals["dense cycles per vector"] == f"{t['dense']['cycles_per_vector']:,.1f}"
    assert totals["speedup over dense"] == f"{t['speedup']:.2f}×"
    assert totals["energy saving over dense"] == f"{t['energy_saving']:.2f}×"
    assert totals["load efficiency"] == f"{100 * t['load_efficiency']:.1f}%"

    layers = _rows(p.tables["layer-table"])
    load = _rows(p.tables["pe-load-table"])
    cyc = _rows(p.tables["cycles-breakdown"])
    energy = _rows(p.tables["energy-breakdown"])
    per_event = stats["machine"]["energy_pj_per_event"]
    for e in stats["layers"]:
        row = layers[e["name"]]
        assert row["rows×cols"] == f"{e['rows']}×{e['cols']}"
        assert row["non-zeros"] == f"{e['nonzeros']:,}"
        assert row["entries"] == f"{e['entries']:,}" and row["fillers"] == f"{e['fillers']:,}"
        assert row["cycles/vec"] == f"{e['cycles_per_vector']:,.1f}"
        assert row["dense cycles/vec"] == f"{e['dense']['cycles_per_vector']:,.1f}"
        assert row["nJ/vec"] == f"{e['energy_pj_per_vector'] / 1000:,.2f}"
        assert row["speedup"] == f"{e['speedup']:.2f}×"
        busy = np.array(e["pe_busy_cycles"]) / n
        assert load[e["name"]]["mean busy/vec"] == f"{busy.mean():,.1f}"
        assert load[e["name"]]["max busy/vec"] == f"{busy.max():,.1f}"
        b = e["cycles_breakdown"]
        for kind in ("load", "compute", "transfer", "sync"):
            assert cyc[e["name"]][kind] == f"{b[kind] / n:,.1f}"
        assert cyc[e["name"]]["dense compute"] == f"{e['dense']['compute_cycles'] / n:,.1f}"
        # The dense kinds add up to the dense baseline's cycles.
        parts = [e["dense"]["load_cycles"], e["dense"]["compute_cycles"], b["transfer"], b["sync"]]
        assert sum(parts) == e["dense"]["cycles"]
        for event, pj in e["energy_breakdown_pj"].items():
            assert energy[e["name"]][f"{event} nJ"] == f"{pj / n / 1000:,.2f}"
        dense_pj = sum(c * per_event[k] for k, c in e["dense"]["events"].items())
        assert dense_pj == pytest.approx(e["dense"]["energy_pj"])


def test_codebooks_are_decoded_from_the_container(eie, capsys):
    _, prog, stats, path = eie
    from dlhwc.spec.container import Container
    from dlhwc.spec.fixedpoint import FixedFormat

    container = Container.read(prog)
    p = Page(path.read_text())
    for i, e in enumerate(stats["layers"]):
        book = p.tables[f"codebook-{i}"]
        assert book[0] == ["index", "code", "value", "weights"]
        codes = container.sections[f"L{i}.codebook"]
        fmt = FixedFormat(*container.header["layers"][i]["weight_format"])
        assert [int(r[1]) for r in book[1:]] == codes.tolist()
        assert [r[2] for r in book[1:]] == [f"{c * fmt.scale:.6g}" for c in codes.tolist()]
        counts = [int(r[3].replace(",", "")) for r in book[1:]]
        assert counts[0] == e["fillers"]  # index 0: the fillers' zero
        assert sum(counts[1:]) == e["nonzeros"]


def test_report_from_a_stats_file_has_the_same_numbers(eie, tmp_path, capsys):
    d, prog, _, path = eie
    page_ = tmp_path / "from-stats.html"
    code, out, err = dlhwc(capsys, "report", prog, "--stats", d / "run.json", "--html", page_)
    assert code == 0 and "EIE simulation" in out and f"wrote {page_}" in err
    a, b = Page(path.read_text()), Page(page_.read_text())
    for name in ("totals", "layer-table", "pe-load-table", "cycles-breakdown", "energy-breakdown"):
        assert a.tables[name] == b.tables[name]


def test_report_without_a_run_has_the_containers_parts(eie, tmp_path, capsys):
    _, prog, _, _ = eie
    page_ = tmp_path / "static.html"
    code, out, _ = dlhwc(capsys, "report", prog, "--html", page_)
    assert code == 0 and "EIE program" in out
    p = Page(page_.read_text())
    assert p.sections == ["summary", "layers", "weights"]
    assert [plot for _, plot in p.plots] == [f"weight histogram fc{i}" for i in (1, 2, 3)]
    assert "totals" not in p.tables and "codebook-0" in p.tables


def test_ese_page(tmp_path, capsys):
    prog, page_ = tmp_path / "lstm.dlhw", tmp_path / "lstm.html"
    argv = ["compile", LSTM, "--target", "ese", "-p", "prune{sparsity=0.8}", "-o", prog]
    assert dlhwc(capsys, *argv)[0] == 0
    inputs = tmp_path / "x.npz"
    np.savez(inputs, input=np.load(DIGITS_SEQ)["input"][:20])
    code, _, _ = dlhwc(capsys, "report", prog, "--input", inputs, "--html", page_)
    assert code == 0
    p = Page(page_.read_text())
    assert p.sections == ["summary", "layers", "weights", "pe-load", "breakdown"]
    plots = {plot for _, plot in p.plots}
    assert {"weight histogram lstm W", "weight histogram lstm R", "PE load lstm"} <= plots
    assert "breakdown cycles per sequence" in plots
    assert not any(name.startswith("codebook") for name in p.tables)  # linear weights
    assert "density" in p.tables["layer-table"][0]


# -- the Pareto section -------------------------------------------------------------------

POINTS = [
    {"accuracy": 0.984, "compression": 1.0, "cycles": 1032, "energy": 463300.0, "recipe": "float"},
    {"accuracy": 0.964, "compression": 27.0, "cycles": 498, "energy": 200500.0, "recipe": "p90"},
    {"accuracy": 0.950, "compression": 20.0, "cycles": 520, "energy": 210000.0, "recipe": "worse"},
    {"accuracy": 0.900, "compression": 40.0, "cycles": None, "energy": None, "recipe": "p97<b>"},
]


def test_pareto_front_and_section():
    assert pareto_front([_point(p) for p in POINTS]) == {0, 1, 3}  # "worse": p90 beats it
    section = pareto_section(POINTS)
    p = Page(pareto_page(POINTS, "explore"))
    assert pareto_page(POINTS, "explore") == page("explore", [section])  # byte-identical
    assert p.sections == ["pareto"]
    assert [plot for _, plot in p.plots] == ["Pareto front"] and p.svgs == {"pareto": 1}
    rows = _rows(p.tables["pareto-table"])
    assert list(rows) == ["float", "p90", "worse", "p97<b>"]  # by accuracy; text escaped
    assert rows["p90"]["accuracy"] == "96.40%" and rows["p90"]["compression"] == "27.0×"
    assert rows["p90"]["cycles/vec"] == "498.0" and rows["p90"]["nJ/vec"] == "200.50"
    assert [rows[r]["on the front"] for r in rows] == ["yes", "yes", "no", "yes"]
    assert rows["p97<b>"]["cycles/vec"] == "-"
    assert "<b>" not in page("explore", [section]).split("<table")[1].split("</table>")[0]


def _point(p: dict) -> dict:
    return {**p, "accuracy": float(p["accuracy"]), "compression": float(p["compression"])}


def test_pareto_section_on_the_report_page(eie):
    from dlhwc.compiler.cli import _simulator
    from dlhwc.compiler.report_html import program_page

    _, prog, stats, _ = eie
    sim, _ = _simulator(str(prog))
    text = program_page(sim, str(prog), stats, "a run", None, POINTS)
    p = Page(text)
    assert p.sections[-1] == "pareto" and len(p.ids) == len(set(p.ids))


@pytest.mark.parametrize(
    ("point", "reason"),
    [
        ({"accuracy": 0.9, "compression": 2.0, "cycles": 1, "energy": 1}, "has no recipe"),
        ({**POINTS[0], "accuracy": "high"}, "accuracy is 'high', not a finite number"),
        ({**POINTS[0], "compression": float("nan")}, "compression is nan"),
        ({**POINTS[0], "accuracy": None}, "accuracy is None"),
        ([1, 2], "is not a dict"),
    ],
)
def test_bad_pareto_points_are_refused(point, reason):
    with pytest.raises(ValueError, match=reason):
        pareto_section([POINTS[0], point])


# -- errors -------------------------------------------------------------------------------


def test_missing_program(capsys, tmp_path):
    out = tmp_path / "p.html"
    argv = ["report", tmp_path / "none.dlhw", "--html", out]
    assert_user_error(capsys, argv, "none.dlhw", "no such file", output=out)


def test_not_a_container(capsys, tmp_path):
    out = tmp_path / "p.html"
    argv = ["report", MLP, "--html", out]
    assert_user_error(capsys, argv, "digits_mlp.onnx", "not a dlhwc program container", output=out)


def test_unwritable_output(eie, capsys, tmp_path):
    _, prog, _, _ = eie
    argv = ["report", prog, "--html", tmp_path / "no" / "dir" / "p.html"]
    assert_user_error(capsys, argv, "p.html", "the output directory does not exist")
    argv = ["report", prog, "--html", tmp_path]
    assert_user_error(capsys, argv, str(tmp_path), "the output is a directory")
    argv = ["report", prog, "--html", prog]
    assert_user_error(capsys, argv, "mlp.dlhw", "would overwrite the input")


def test_html_output_is_checked_before_simulating(eie, capsys, tmp_path):
    _, prog, _, _ = eie
    argv = ["report", prog, "--input", tmp_path / "none.npz", "--html", tmp_path / "x" / "p.html"]
    assert_user_error(capsys, argv, "the output directory does not exist")


def test_stats_of_another_program(eie, capsys, tmp_path):
    d, prog, stats, _ = eie
    other = dict(stats, layers=[dict(e, name=f"x{i}") for i, e in enumerate(stats["layers"])])
    path = tmp_path / "other.json"
    path.write_text(json.dumps(other))
    out = tmp_path / "p.html"
    argv = ["report", prog, "--stats", path, "--html", out]
    assert_user_error(capsys, argv, "other.json", "stats are of another program", output=out)


def test_incomplete_stats(eie, capsys, tmp_path):
    d, prog, stats, _ = eie
    broken = json.loads(json.dumps(stats))
    del broken["layers"][1]["dense"]["compute_cycles"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    out = tmp_path / "p.html"
    argv = ["report", prog, "--stats", path, "--html", out]
    assert_user_error(capsys, argv, "broken.json", "not a complete EIE stats file",
                      "compute_cycles", output=out)  # fmt: skip
    broken = json.loads(json.dumps(stats))
    broken["layers"][0]["pe_busy_cycles"] = [1, 2, 3]
    path.write_text(json.dumps(broken))
    assert_user_error(capsys, argv, "broken.json", "pe_busy_cycles has 3 PEs, not 64", output=out)


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (("layers", 0, "cycles_breakdown", "load"), -1, "layers[0].cycles_breakdown.load is -1, "
         "outside 0..1e+100"),
        (("layers", 2, "dense", "events", "mac"), 1e308, "layers[2].dense.events.mac is 1e+308"),
        (("total", "vectors"), 0.5, "total.vectors is 0.5, not a count of vectors"),
        (("machine", "energy_pj_per_event", "mac"), "x", "energy_pj_per_event.mac is 'x', not a "
         "number"),
        (("layers", 1, "pe_busy_cycles", 3), None, "layers[1].pe_busy_cycles[3] is None"),
    ],
)  # fmt: skip
def test_stats_numbers_are_checked(eie, capsys, tmp_path, path, value, fragment):
    d, prog, stats, _ = eie
    bad = json.loads(json.dumps(stats))
    parent = bad
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    path_ = tmp_path / "bad.json"
    path_.write_text(json.dumps(bad))
    out = tmp_path / "p.html"
    argv = ["report", prog, "--stats", path_, "--html", out]
    assert_user_error(capsys, argv, "bad.json", "bad EIE stats file", fragment, output=out)
    assert capsys.readouterr().out == ""


def test_stats_of_no_vectors(eie, capsys, tmp_path):
    d, prog, stats, _ = eie
    path = tmp_path / "none.json"
    path.write_text(json.dumps(dict(stats, total=dict(stats["total"], vectors=0))))
    argv = ["report", prog, "--stats", path, "--html", tmp_path / "p.html"]
    assert_user_error(
        capsys, argv, "none.json", "not an EIE stats file", output=tmp_path / "p.html"
    )
    assert_user_error(capsys, argv[:4], "none.json", "not an EIE stats file")


def test_stats_without_per_pe_counts_say_so(eie, capsys, tmp_path):
    d, prog, stats, _ = eie
    old = json.loads(json.dumps(stats))
    for e in old["layers"]:
        del e["pe_busy_cycles"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    out = tmp_path / "p.html"
    assert dlhwc(capsys, "report", prog, "--stats", path, "--html", out)[0] == 0
    p = Page(out.read_text())
    assert "pe-load" in p.sections and not any(s == "pe-load" for s, _ in p.plots)
    assert "no per-PE counts" in out.read_text()
