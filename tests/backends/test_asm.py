"""ISA tables, the assembler and the disassembler (spec/asm.py), and the ISA docs.

Property tests: encode/decode are inverse for every EIE instruction, out-of-range
operands are refused, any 64-bit word decodes and re-encodes to itself or is refused,
and random containers survive disasm -> asm byte for byte.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlhwc.backends import docs
from dlhwc.compiler import cli
from dlhwc.spec import asm as asm_module
from dlhwc.spec.asm import assemble, disassemble, grammar
from dlhwc.spec.container import Container
from dlhwc.spec.eie.isa import EIE_ISA
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.isa import IsaError, IsaTable
from dlhwc.spec.targets import isa_table, targets

INSTRUCTIONS = EIE_ISA.instructions
FIELDS = [(i, f) for i in INSTRUCTIONS for f in i.fields]
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CANONICAL = """\
.target eie
.header {"hw":{"pes":2},"layers":[{"name":"fc","rows":2}],"resident":false}
.section L0.bias <i8 [2] "feffffffffffffff0300000000000000"
.text
    dma.in  sym=0, buf=0
    load    layer=0, block=0
    spmv    layer=0, block=0, src=0, dst=1, first=1, last=1, bias=1, relu=0, shift=-2
    barrier
    dma.out sym=1, buf=1
    host    seg=0
    end
.section L0.B0.spmat |u1 [36]
    "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
    "21222324"
.section "scalar #1" <f4 [] "0000803f"
.section empty <i2 [0, 4] ""
"""


# -- strategies ------------------------------------------------------------------------


@st.composite
def operands(draw, instr):
    return {f.name: draw(st.integers(f.min, f.max)) for f in instr.fields}


@st.composite
def words(draw):
    """Uniform 64-bit words, and words with a valid opcode and random or zero reserved bits."""
    if draw(st.booleans()):
        return draw(st.integers(0, 2**64 - 1))
    instr = draw(st.sampled_from(INSTRUCTIONS))
    opcode_mask = ((1 << (instr.opcode_hi - instr.opcode_lo + 1)) - 1) << instr.opcode_lo
    noise = draw(st.integers(0, 2**64 - 1)) & ~opcode_mask
    if draw(st.booleans()):
        noise &= sum(((1 << f.width) - 1) << f.lo for f in instr.fields)
    return (instr.opcode << instr.opcode_lo) | noise


@st.composite
def instruction_words(draw):
    instr = draw(st.sampled_from(INSTRUCTIONS))
    return instr.encode(**draw(operands(instr)))


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
HEADERS = st.dictionaries(
    st.text(max_size=6).filter(lambda k: k not in ("target", "sections")), JSON_VALUES, max_size=3
)
DTYPES = ["|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8", "|b1"]
SECTION_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_./-]{0,8}", fullmatch=True) | st.text(
    min_size=1, max_size=8
)


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(st.lists(st.integers(0, 4), max_size=3))
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    data = draw(st.binary(min_size=size, max_size=size))
    return np.frombuffer(data, dtype=dtype).reshape(shape)


@st.composite
def containers(draw):
    names = draw(st.lists(SECTION_NAMES.filter(lambda n: n != "text"), unique=True, max_size=4))
    items = [(name, draw(arrays())) for name in names]
    text = draw(st.none() | st.lists(instruction_words(), max_size=12))
    if text is not None:
        items.insert(draw(st.integers(0, len(items))), ("text", np.array(text, dtype="<u8")))
    return Container("eie", draw(HEADERS), dict(items))


# -- the registry ----------------------------------------------------------------------


def test_isa_table_registry():
    assert isa_table("eie") is EIE_ISA
    with pytest.raises(DlhwcError, match=r"unknown target 'npu' \(targets: [^)]*\)") as e:
        isa_table("npu")
    # Installed plugins (the example target) are named too.
    assert {"eie", "ese"} <= set(e.value.reason.split("(targets: ")[1].rstrip(")").split(", "))


# -- encode / decode -------------------------------------------------------------------


@pytest.mark.parametrize("instr", INSTRUCTIONS, ids=lambda i: i.mnemonic)
@FAST
@given(data=st.data())
def test_decode_inverts_encode(instr, data):
    values = data.draw(operands(instr))
    word = instr.encode(**values)
    assert 0 <= word < 2**64
    assert EIE_ISA.decode(word) == (instr, values)
    assert EIE_ISA.encode(instr.mnemonic, **values) == word


@pytest.mark.parametrize(
    "instr,field", FIELDS, ids=lambda x: getattr(x, "mnemonic", None) or x.name
)
@FAST
@given(data=st.data())
def test_out_of_range_operands_are_refused(instr, field, data):
    bad = data.draw(st.integers(max_value=field.min - 1) | st.integers(min_value=field.max + 1))
    values = {f.name: f.min for f in instr.fields} | {field.name: bad}
    kind = "signed" if field.signed else "unsigned"
    message = f"{field.name}={bad} outside {field.min}..{field.max} ({field.width}-bit {kind})"
    with pytest.raises(IsaError) as e:
        instr.encode(**values)
    assert message in str(e.value)
    ops = ", ".join(f"{k}={v}" for k, v in values.items())
    with pytest.raises(DlhwcError) as e:
        assemble(f".target eie\n.text\n{instr.mnemonic} {ops}\n", "p.s")
    col = len(instr.mnemonic) + 2 + ops.index(f"{field.name}=")
    assert e.value.message == f"p.s:3:{col}: {message}"


@settings(max_examples=500, deadline=None)
@given(word=words())
def test_any_word_decodes_and_reencodes_or_is_refused(word):
    try:
        instr, values = EIE_ISA.decode(word)
    except IsaError:
        return
    assert instr.encode(**values) == word


@settings(max_examples=100, deadline=None)
@given(instr=st.sampled_from(INSTRUCTIONS), noise=st.integers(0, 2**64 - 1))
def test_words_with_zero_reserved_bits_decode(instr, noise):
    word = (instr.opcode << instr.opcode_lo) | (
        noise & sum(((1 << f.width) - 1) << f.lo for f in instr.fields)
    )
    assert EIE_ISA.decode(word)[0] is instr


def test_decode_refuses_unknown_opcode_and_reserved_bits():
    with pytest.raises(IsaError, match=r"unknown opcode 0x7f in word 0x7f00000000000000"):
        EIE_ISA.decode(0x7F << 56)
    with pytest.raises(IsaError, match=r"spmv: bits 13\.\.0 of 0x0500000000000001 must be 0x0"):
        EIE_ISA.decode(0x0500000000000001)


# -- IsaTable checks -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,message",
    [
        ("a 63..56=1 x=55..32 y=40..0", "line 1: a: bits 40..32 are claimed twice"),
        ("a 63..56=1 x=55..40 y=31..0", "line 1: a: bits 39..32 are not covered"),
        ("a 63..56=1 x=50..40 y=31..1", "line 1: a: bits 0, 39..32, 55..51 are not covered"),
        ("a 63..56=1 55..0=0\nb 63..56=1 55..0=0", "b: opcode 0x1 (bits 63..56) already used by a"),
        (
            "a 63..56=1 x=55..28 x=27..0",
            "line 1: a: operand 'x' named twice (bits 55..28 and 27..0)",
        ),
        ("a 63..56=1 55..0=0\na 63..56=2 55..0=0", "a: mnemonic declared twice"),
        ("a 63..56=0x100 55..0=0", "line 1: value 0x100 does not fit bits 63..56"),
        ("a 63..56=-1 55..0=0", "line 1: value -1 does not fit bits 63..56"),
        ("a 63..56=zz 55..0=0", "line 1: bad value 'zz' for bits 63..56"),
        ("a 64..56=1 55..0=0", "line 1: bit range '64..56' outside 63..0"),
        ("a-b 63..56=1 55..0=0", "line 1: bad mnemonic 'a-b'"),
        ("a 63..56=1 x.y=55..0", "line 1: bad operand name 'x.y'"),
        ("a 63..56=1 55..0=0\nb 63..60=2 59..0=0", "same bits"),
        ("a x=63..0", "line 1: a has no opcode range"),
        ("    | doc first", "line 1: semantics before any instruction"),
        ("# nothing", "empty ISA table"),
        ("a @jump 63..56=1 55..0=0", "line 1: a: one class of halt, sync, transfer_in"),
        ("a @halt @sync 63..56=1 55..0=0", "line 1: a: one class of"),
    ],
)
def test_table_checks(text, message):
    with pytest.raises(IsaError) as e:
        IsaTable.parse("t", text)
    assert message in str(e.value)


def test_eie_table_covers_every_bit_once():
    for instr in INSTRUCTIONS:
        ranges = [(hi, lo) for hi, lo, _ in instr.fixed] + [(f.hi, f.lo) for f in instr.fields]
        bits = sorted(b for hi, lo in ranges for b in range(lo, hi + 1))
        assert bits == list(range(64)), instr.mnemonic


# -- assembler / disassembler round trips ----------------------------------------------


def test_canonical_text_round_trips():
    container = assemble(CANONICAL, "c.s")
    assert list(container.sections) == ["L0.bias", "text", "L0.B0.spmat", "scalar #1", "empty"]
    assert container.sections["scalar #1"].shape == ()
    assert disassemble(container) == CANONICAL
    data = container.to_bytes()
    assert assemble(disassemble(Container.from_bytes(data))).to_bytes() == data


def test_non_canonical_text_gives_the_same_container():
    text = """
        # comments, blank lines, operand order, hex, signs, split data, JSON spacing

        .target eie
        .header { "resident" : false, "layers": [{"rows": 2, "name": "fc"}], "hw": {"pes": 2} }
        .section L0.bias <i8 [2] "FEFFFFFFFFFFFFFF" # first value
            "03000000" "00000000"
        .text
        dma.in buf=0, sym=0
        load block=0x0, layer=+0
        spmv shift=-0x2, relu=0, bias=1, last=1, first=1, dst=1, src=0, block=0, layer=0
        barrier
        dma.out sym=1, buf=1   # out
        host seg=0
        end
        .section L0.B0.spmat u1 [36]
          "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20" "21222324"
        .section "scalar #1" float32 [] "0000803f"
        .section empty <i2 [0,4]
    """
    assert assemble(text).to_bytes() == assemble(CANONICAL).to_bytes()


def test_show_encoding_comments():
    text = disassemble(assemble(CANONICAL), show_encoding=True)
    lines = text.splitlines()
    spmv = next(line for line in lines if "spmv" in line)
    word = EIE_ISA.encode(
        "spmv", layer=0, block=0, src=0, dst=1, first=1, last=1, bias=1, relu=0, shift=-2
    )
    assert spmv.endswith(f"# {word:#018x}")
    columns = {line.index("#") for line in lines if line.startswith("    ") and "# 0x" in line}
    assert len(columns) == 1  # aligned
    assert assemble(text).to_bytes() == assemble(CANONICAL).to_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(container=containers())
def test_random_containers_round_trip(container):
    data = container.to_bytes()
    text = disassemble(Container.from_bytes(data))
    again = assemble(text, "r.s")
    assert again.to_bytes() == data
    assert disassemble(again) == text
    assert assemble(disassemble(again, show_encoding=True)).to_bytes() == data


@settings(max_examples=100, deadline=None)
@given(text=st.lists(words(), min_size=1, max_size=6))
def test_disasm_of_any_words_round_trips_or_names_the_word(text):
    container = Container("eie", {}, {"text": np.array(text, dtype="<u8")})
    try:
        asm = disassemble(container, source="w.dlhw")
    except DlhwcError as e:
        n = int(e.message.split("word ", 1)[1].split(":")[0])
        with pytest.raises(IsaError):
            EIE_ISA.decode(text[n])
        assert all(EIE_ISA.decode(w) for w in text[:n])
        return
    assert assemble(asm).sections["text"].tolist() == text


def test_disasm_names_the_bad_word_of_a_valid_container(tmp_path):
    path = tmp_path / "bad.dlhw"
    words = np.array([0x0100000000000000, 0x7F00000000000000], dtype="<u8")
    Container("eie", {}, {"text": words}).write(path)
    Container.read(path)  # the checksum is fine
    with pytest.raises(DlhwcError) as e:
        asm_module.disassemble_file(path)
    assert e.value.message == (f"{path}: word 1: unknown opcode 0x7f in word 0x7f00000000000000")


def test_big_sections_are_fast():
    data = np.arange(1 << 18, dtype="<u4")  # 1 MiB
    container = Container("eie", {}, {"w": data, "text": np.zeros(1, dtype="<u8")})
    again = assemble(disassemble(container))
    assert again.to_bytes() == container.to_bytes()


# -- error messages --------------------------------------------------------------------

HEAD = ".target eie\n.text\n"
ERRORS = [
    ("", "1:1: missing .target: the program must start with '.target NAME'"),
    ("# c\n.text\n", "2:1: missing .target: the program must start with '.target NAME'"),
    (".target\n", "1:1: malformed .target directive: expected '.target NAME'"),
    (".target eie x\n", "1:1: malformed .target directive: expected '.target NAME'"),
    (" .target npu\n", f"1:10: unknown target 'npu' (targets: {', '.join(targets())})"),
    (".target eie\n.target eie\n", "2:9: duplicate .target"),
    (HEAD + "spvm\n", "3:1: unknown mnemonic 'spvm'; did you mean 'spmv'?"),
    (
        HEAD + "xyz\n",
        "3:1: unknown mnemonic 'xyz' (eie has end, barrier, dma.in, dma.out, load, spmv, host)",
    ),  # fmt: skip
    (HEAD + "endx\n", "3:1: unknown mnemonic 'endx'; did you mean 'end'?"),
    (HEAD + "load layer=1, layer=2, block=0\n", "3:15: duplicate operand 'layer'"),
    (HEAD + "load layer=1, blk=0\n", "3:15: load has no operand 'blk'; did you mean 'block'?"),
    (HEAD + "host xyz=0\n", "3:6: host has no operand 'xyz' (operands: seg)"),
    (HEAD + "end x=1\n", "3:5: end takes no operands (got 'x')"),
    (HEAD + "load\n", "3:1: load: missing operands layer, block"),
    (HEAD + "dma.in sym=0\n", "3:1: dma.in: missing operand buf"),
    (HEAD + "host seg=0x100\n", "3:6: seg=256 outside 0..255 (8-bit unsigned)"),
    (HEAD + "host seg=1_0\n", "3:10: bad number '1_0'"),
    (HEAD + "host seg=--1\n", "3:10: bad number '--1'"),
    (HEAD + "host seg=0x\n", "3:10: bad number '0x'"),
    (HEAD + "host seg=\n", "3:10: unexpected end of line; expected a number"),
    (HEAD + "host seg 1\n", "3:10: unexpected '1'; expected '='"),
    (HEAD + "load layer=1 block=2\n", "3:14: unexpected 'block'; expected ',' or end of line"),
    (HEAD + "load layer=1,\n", "3:14: unexpected end of line; expected an operand name"),
    (
        HEAD + "  @\n",
        "3:3: unexpected '@'; expected a directive, a quoted string, an instruction or end of line",
    ),  # fmt: skip
    (
        ".target eie\nend\n",
        "2:1: instruction before .text (instructions go between .text and any .section)",
    ),  # fmt: skip
    (
        HEAD + ".section a |u1 [0]\nend\n",
        "4:1: instruction after the text block (instructions go between .text and any .section)",
    ),  # fmt: skip
    (HEAD + ".text\n", "3:1: duplicate .text"),
    (
        ".target eie\n.text x\n",
        "2:7: malformed .text directive: unexpected 'x'; expected end of line",
    ),  # fmt: skip
    (
        ".target eie\n.data\n",
        "2:1: unknown directive '.data' (directives: .target, .header, .section, .text)",
    ),  # fmt: skip
    (
        ".target eie\n.header\n",
        "2:8: malformed .header directive: unexpected end of line; expected a JSON object",
    ),  # fmt: skip
    ('.target eie\n.header {"a": 1\n', "2:16: malformed .header: Expecting ',' delimiter"),
    (".target eie\n.header [1]\n", "2:9: malformed .header: not a JSON object"),
    (".target eie\n.header {} x\n", "2:12: malformed .header: text after the JSON object"),
    (".target eie\n.header {}  # ok\n.header {}\n", "3:9: duplicate .header"),
    (
        '.target eie\n.header {"target": 1}\n',
        "2:9: the .header may not set 'target' (it comes from .target)",
    ),  # fmt: skip
    (
        '.target eie\n.header {"sections": 1}\n',
        "2:9: the .header may not set 'sections' (it comes from .section)",
    ),  # fmt: skip
    (HEAD + ".header {}\n", "3:9: .header must come before the sections and .text"),
    (
        ".target eie\n.section\n",
        "2:9: malformed .section directive: unexpected end of line; "
        "expected a quoted string or a section name",
    ),  # fmt: skip
    ('.target eie\n.section a |u1 [2] "0g"\n', "2:22: bad hex digit 'g' in section data"),
    ('.target eie\n.section a |u1 [2] "0\\""\n', "2:22: bad hex digit '\\' in section data"),
    (
        '.target eie\n.section a |u1 [2] "000"\n',
        "2:20: odd number of hex digits (each string holds whole bytes)",
    ),  # fmt: skip
    (
        '.target eie\n.section a |u1 [2] "00\n',
        "2:20: malformed .section directive: unterminated string",
    ),  # fmt: skip
    (
        '.target eie\n.section a |u1 [3] "0000"\n',
        "2:10: section 'a': |u1 [3] is 3 bytes, the data has 2",
    ),  # fmt: skip
    (
        '.target eie\n.section a <u4 [2, 2]\n  "00"\n\n  # c\n  "00"\n',
        "2:10: section 'a': <u4 [2, 2] is 16 bytes, the data has 2",
    ),  # fmt: skip
    ('.target eie\n.section a u3 [1] "00"\n', "2:12: bad dtype 'u3'"),
    (
        '.target eie\n.section a >u2 [1] "0000"\n',
        "2:12: big-endian dtype '>u2': section data is little-endian",
    ),  # fmt: skip
    ('.target eie\n.section a O [1] "00"\n', "2:12: dtype 'O' is not a plain numeric dtype"),
    ('.target eie\n.section a V0 [1] "00"\n', "2:12: dtype 'V0' has no size"),
    ('.target eie\n.section a |u1 [-1] "00"\n', "2:17: bad dimension '-1'"),
    (
        '.target eie\n.section a |u1 [1 3] "00"\n',
        "2:19: malformed .section directive: unexpected '3'; expected ',' or ']'",
    ),  # fmt: skip
    ('.target eie\n.section "" |u1 [0]\n', "2:10: empty section name"),
    (
        ".target eie\n.section text <u8 [0]\n",
        "2:10: section 'text' holds the instructions: write them after .text",
    ),  # fmt: skip
    (".target eie\n.section a |u1 [0]\n.section a |u1 [0]\n", "3:10: duplicate section 'a'"),
    ('.target eie\n"00"\n', "2:1: section data outside a section (it must follow .section)"),
    (
        '.target eie\n.section a |u1 [0]\n.text\n"00"\n',
        "4:1: section data outside a section (it must follow .section)",
    ),  # fmt: skip
]


@pytest.mark.parametrize("text,message", ERRORS)
def test_error_messages(text, message):
    with pytest.raises(DlhwcError) as e:
        assemble(text, "p.s")
    assert e.value.message == f"p.s:{message}"
    assert "\n" not in e.value.message


def test_crlf_line_ends():
    assert assemble(CANONICAL.replace("\n", "\r\n")).to_bytes() == assemble(CANONICAL).to_bytes()


# -- generic over the table ------------------------------------------------------------

TOY_ISA = IsaTable.parse(
    "toy",
    """
nop    63..60=0x0 59..0=0
    | nothing
add    63..60=0x1 dst=59..56 a=55..48:s b=47..40:s 39..0=0
    | r[dst] = a + b
b.eq   63..60=0x2 nop=59..58 off=57..0:s
    | if flags.eq: pc += off       (an operand named like an instruction)
""",
)


def test_grammar_comes_from_the_table(monkeypatch):
    eie = grammar(EIE_ISA)
    for instr in INSTRUCTIONS:
        assert f'"{instr.mnemonic}"' in eie
        for f in instr.fields:
            assert f'"{f.name}"' in eie
    assert grammar(EIE_ISA) is eie  # cached per table
    toy = grammar(TOY_ISA)
    assert '"b.eq"' in toy and '"spmv"' not in toy

    monkeypatch.setattr(
        asm_module, "isa_table", lambda name: TOY_ISA if name == "toy" else isa_table(name)
    )
    text = """\
.target toy
.text
    nop
    add  dst=15, a=-128, b=127
    b.eq nop=3, off=-1
"""
    container = assemble(text)
    assert container.sections["text"].tolist() == [
        0,
        0x1 << 60 | 15 << 56 | 0x80 << 48 | 0x7F << 40,
        0x2 << 60 | 3 << 58 | (1 << 58) - 1,
    ]
    assert disassemble(container) == text
    with pytest.raises(DlhwcError, match=r"1:9: unknown target 'eie2'"):
        assemble(".target eie2\n")
    with pytest.raises(DlhwcError, match=r"3:6: a=128 outside -128\.\.127 \(8-bit signed\)"):
        assemble(".target toy\n.text\nadd  a=128, b=0, dst=0\n")


# -- the command line ------------------------------------------------------------------


def test_cli_asm_and_disasm(tmp_path, capsys):
    src, out, back = tmp_path / "p.s", tmp_path / "p.dlhw", tmp_path / "back.s"
    src.write_text(CANONICAL)
    assert cli.main(["asm", str(src), "-o", str(out)]) == 0
    assert cli.main(["disasm", str(out)]) == 0
    assert capsys.readouterr().out == CANONICAL
    assert cli.main(["disasm", "--show-encoding", str(out), "-o", str(back)]) == 0
    assert capsys.readouterr().out == ""
    assert "# 0x0000000000000000" in back.read_text()
    assert cli.main(["asm", str(back), "-o", str(tmp_path / "again.dlhw")]) == 0
    assert (tmp_path / "again.dlhw").read_bytes() == out.read_bytes()


def test_cli_errors_leave_no_output(tmp_path, capsys):
    src, out = tmp_path / "p.s", tmp_path / "p.dlhw"
    src.write_text(".target eie\n.text\n    spmv layer=4096\n")
    assert cli.main(["asm", str(src), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err == f"dlhwc: error: {src}:3:10: layer=4096 outside 0..4095 (12-bit unsigned)\n"
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [src]  # no temporary file either
    out.write_bytes(b"old")
    assert cli.main(["asm", str(src), "-o", str(out)]) == 1
    assert out.read_bytes() == b"old"
    capsys.readouterr()
    src.write_text(".target eie\n" + "#" * 100)
    assert cli.main(["disasm", str(src)]) == 1
    assert (
        capsys.readouterr().err
        == f"dlhwc: error: {src}: not a dlhwc program container (bad magic)\n"
    )
    assert cli.main(["asm", str(tmp_path / "missing.s"), "-o", str(out)]) == 1
    assert capsys.readouterr().err.endswith("missing.s: no such file\n")
    (tmp_path / "bin.s").write_bytes(b"\xff\xfe")
    assert cli.main(["asm", str(tmp_path / "bin.s"), "-o", str(out)]) == 1
    assert "not UTF-8 text" in capsys.readouterr().err


# -- the ISA reference in backends/eie/README.md ---------------------------------------


def test_readme_isa_section_is_up_to_date(capsys):
    assert docs.main(["--check"]) == 0, "stale: run python -m dlhwc.backends.docs"


def test_docs_regenerates_only_the_marked_section(tmp_path, capsys):
    readme = tmp_path / "README.md"
    container = f"{docs.CONTAINER_BEGIN}\nold\n{docs.CONTAINER_END}"
    readme.write_text(
        f"# EIE\n\nintro\n\n{docs.BEGIN}\nold\n{docs.END}\n\nafter\n\n{container}\n\nend\n"
    )
    assert docs.main(["eie", "--check"], {"eie": readme}) == 1
    assert "stale" in capsys.readouterr().err
    assert docs.main(["eie"], {"eie": readme}) == 0
    text = readme.read_text()
    assert text.startswith(f"# EIE\n\nintro\n\n{docs.BEGIN}\n")
    assert f"{docs.END}\n\nafter\n\n{docs.CONTAINER_BEGIN}\n" in text
    assert text.endswith(f"{docs.CONTAINER_END}\n\nend\n")
    assert EIE_ISA.markdown().rstrip() in text and "\nold\n" not in text
    assert "### `EIELayer`" in text and "| `acc_reach_bits` |" in text
    assert docs.main(["eie", "--check"], {"eie": readme}) == 0

    readme.write_text("# EIE\n\nno markers yet\n")
    docs.main(["eie"], {"eie": readme})
    assert readme.read_text().startswith("# EIE\n\nno markers yet\n\n## Instruction set\n")
    assert docs.main(["eie", "--check"], {"eie": readme}) == 0

    readme.unlink()
    assert docs.main(["eie", "--check"], {"eie": readme}) == 1
    docs.main(["eie"], {"eie": readme})
    assert readme.read_text().startswith("# EIE\n\n## Instruction set\n")
    assert docs.main(["eie", "--check"], {"eie": readme}) == 0


def test_markdown_lists_every_instruction():
    md = EIE_ISA.markdown()
    for instr in INSTRUCTIONS:
        assert f"| `{instr.mnemonic}` | `{instr.opcode:#04x}` |" in md
    assert "`shift` 19..14 (signed)" in md and "`first` 23," in md
