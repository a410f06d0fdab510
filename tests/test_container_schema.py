"""The typed container schema (spec/schema.py, spec/container.py, spec/<target>/container.py):
records write the JSON they read, and every defect is one error naming the field path."""

import copy

import pytest

from dlhwc.spec.container import ColumnBlock, Container, Header, Symbol, read_header
from dlhwc.spec.eie.container import EIELayer
from dlhwc.spec.ese.container import ESELayer
from dlhwc.spec.fixedpoint import FixedFormat
from dlhwc.spec.schema import SchemaError


def _eie_header() -> dict:
    layer = EIELayer(
        name="fc", nonzeros=3, rows=4, cols=3, in_format=FixedFormat(16, 8),
        weight_format=FixedFormat(16, 8), out_format=FixedFormat(16, 8), shift=8, relu=True,
        bias=False,
        blocks=[ColumnBlock(col_start=0, col_end=3, entries=[2, 1], fillers=[0, 0])],
    )  # fmt: skip
    symbols = [
        Symbol(name="x", kind="input", shape=(3,), format=FixedFormat(16, 8)),
        Symbol(name="y", kind="output", shape=(4,), format=FixedFormat(16, 8), batch_axis=None),
    ]
    return Header(hw={"num_pes": 2}, symbols=symbols, host_segments=[], layers=[layer],
                  resident=True).to_json()  # fmt: skip


def _read(header: dict, target: str = "eie"):
    return read_header(Container(target, header), num_pes=2)


def test_records_write_what_they_read():
    header = _eie_header()
    assert "batch_axis" not in header["symbols"][0] and header["symbols"][1]["batch_axis"] is None
    assert "acc_reach_bits" not in header["layers"][0] and "placement" not in header
    typed = _read(header)
    assert isinstance(typed.layers[0], EIELayer) and typed.layers[0].in_format.frac == 8
    assert typed.to_json() == header


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("layers", 0, "rows"), "x", 'header.layers[0].rows: expected int >= 1, got "x"'),
        (("layers", 0, "relu"), 1, "header.layers[0].relu: expected bool, got 1"),
        (("layers", 0, "shift"), 99, "header.layers[0].shift: expected int in [-32, 31]"),
        (("layers", 0, "blocks", 0, "entries"), [1], "entries: expected 2 counts (one per PE)"),
        (("layers", 0, "cols"), 5, "header.layers[0].blocks: column blocks cover 3 of its 5"),
        (("symbols", 0, "kind"), "in", 'header.symbols[0].kind: expected one of "input"'),
        (("symbols", 0, "batch_axis"), 3, "header.symbols[0].batch_axis: expected int in [0, 1]"),
        (("symbols", 1, "name"), "x", "header.symbols[1].name: 'x' is not unique"),
        (("symbols", 0, "format"), [1, 0], "header.symbols[0].format: expected [bits, frac]"),
        (("symbols", 0, "dtype"), "nonsense", "header.symbols[0].dtype: not a numpy dtype"),
        (("host_segments",), [{"name": "h", "inputs": [5], "outputs": [], "ops": [],
                                "section": "h"}],
         "header.host_segments[0].inputs[0]: no symbol 5 (the table has 2)"),
        (("layers", 0, "colour"), 1, "header.layers[0]: unknown field 'colour'"),
    ],
)  # fmt: skip
def test_defects_name_the_field(path, value, message):
    header = copy.deepcopy(_eie_header())
    parent = header
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    with pytest.raises(SchemaError) as info:
        _read(header)
    assert message in info.value.reason and "\n" not in info.value.reason


def test_missing_field_and_unregistered_target():
    header = _eie_header()
    del header["layers"][0]["rows"]
    with pytest.raises(SchemaError, match=r"header.layers\[0\]: missing field 'rows'"):
        _read(header)
    with pytest.raises(SchemaError, match="no Layer record is registered for target 'tpu'"):
        _read(_eie_header(), "tpu")


def test_ese_layer_checks_its_kind():
    layer = {
        "name": "rnn", "nonzeros": 0, "kind": "RNN", "direction": "forward", "dirs": 1,
        "hidden": 2, "input": 2, "gates": 1, "layout": 0,
        "formats": {k: 8 for k in ("fx", "fh", "fw", "fr", "fl", "fc", "fp")},
        "weight_bits": [12, 12], "clip": None, "activations": [["Tanh"]],
        "input_forget": False, "linear_before_reset": False, "lut_segments": 128,
        "peepholes": False, "rb_h": False,
        "matrices": [
            {"dir": 0, "mat": m, "name": n, "rows": 2, "cols": 2, "nonzeros": 0, "entries": 0,
             "fillers": 0, "blocks": [{"col_start": 0, "col_end": 2, "entries": [0, 0],
                                       "fillers": [0, 0]}]}
            for m, n in ((0, "W"), (1, "R"))
        ],
    }  # fmt: skip
    header = {"hw": {}, "symbols": [], "host_segments": [], "layers": [layer]}
    assert isinstance(_read(header, "ese").layers[0], ESELayer)
    for key, value, message in [
        ("gates", 4, "header.layers[0].gates: a RNN has 1 gates, not 4"),
        ("activations", [["Swish"]], "header.layers[0].activations[0][0]: expected one of"),
        ("activations", [["Tanh", "Tanh"]], "expected 1 lists of 1 functions"),
        ("hidden", 3, "header.layers[0].matrices: matrix W of direction 0 is missing or not"),
    ]:
        bad = copy.deepcopy(header)
        bad["layers"][0][key] = value
        with pytest.raises(SchemaError) as info:
            _read(bad, "ese")
        assert message in info.value.reason
