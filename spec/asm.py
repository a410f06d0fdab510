"""Assembler and disassembler of program containers, generic over an ISA table.

The assembly text is the whole container in text form: the target, the header, every
section, and the instruction stream (the section "text") as one instruction per line.
`disassemble` prints it; `assemble` reads it back to a container with the same bytes.

Syntax (one statement per line; `#` starts a comment that runs to the end of the line):

    .target eie                                  # required, the first statement
    .header {"hw":{"pes":64},"resident":true}    # optional, once, before sections
    .section L0.codebook <i2 [4] "0000ff7f0180fe01"
    .section host0 |u1 [80]                      # long data: continuation lines
        "0801120474657374..."
        "..."
    .text
        dma.in  sym=0, buf=0
        spmv    layer=0, block=0, src=0, dst=1, first=1, last=1, bias=1, relu=1, shift=-3
        end

- `.target NAME` selects the ISA table (`backends.isa_table`); the mnemonics and
  operand names the grammar accepts come from that table.
- `.header JSON` is a JSON object on one line: the container header without `target`
  and `sections`. The disassembler prints it canonically (keys sorted, no spaces) and
  leaves it out when it is empty.
- `.section NAME DTYPE [d0, d1, ...] "HEX"...`: a named numpy array. NAME is bare
  (`[A-Za-z_][A-Za-z0-9_./-]*`) or a JSON string; DTYPE a numpy dtype string such as
  `<u4`, `|u1`, `<f4` (little-endian or byte-order free); the shape is a list of
  dimensions (`[]` for a scalar); the data is the hex of the array's little-endian bytes,
  in one or more quoted strings: on the `.section` line and/or on the lines that
  follow, each holding whole bytes. Its length must be the shape's size in bytes.
- `.text` starts the instruction stream; the instructions run until the next
  `.section` or the end of the file. Where `.text` stands among the sections is where
  the "text" section goes in the container (the section order is the file's order).
  Without `.text` the container has no "text" section.
- An instruction is `MNEMONIC name=value, name=value, ...`, giving every operand of the
  instruction exactly once, in any order (the disassembler prints them in table
  order). Values are decimal or hex (`0x..`), with an optional sign; each must fit its
  field (`-2^(w-1)..2^(w-1)-1` for a signed field of w bits, `0..2^w-1` otherwise).
- `disassemble(..., show_encoding=True)` appends `# 0x<16 hex digits>` to each
  instruction line: the 64-bit word (a comment, so the text still assembles).

The disassembler's output is the canonical form: `.target`, `.header` (if not empty),
then the sections and `.text` in container order; data of up to 32 bytes on the
`.section` line, longer data in lines of 32 bytes below it, lowercase hex; instructions
indented by four spaces, the mnemonic padded to the longest of the table, operands in
table order and in decimal. Canonical text assembles and disassembles to itself.

Errors are one-line `DlhwcError`s `file:line:col: reason`: the first syntax error, or if
there is none, the first other error in the file.

A program (a header with a symbol table, as every compiled program has) is then loaded
as `run` loads it, so that `asm` refuses what `run` would: an operand naming a symbol,
layer, block or host segment the header does not have is reported at its instruction's
line, any other defect at the `.header` line: a field of the header that does not fit
its typed record (spec/container.py, e.g. `header.layers[0].rows: expected int >= 1,
got "x"`), a missing section. A fragment (a header without a symbol table, as in the
encoding tests) is only assembled. The header's fields are those of `Header`; `target`
and `sections` (`Envelope`) come from `.target` and the sections.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput, UnexpectedToken

from dlhwc.spec.container import Container, Envelope
from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.isa import Instruction, IsaError, IsaTable, range_text
from dlhwc.spec.targets import isa_table

TEXT = "text"
"""The section holding the instruction words (uint64)."""

INLINE_HEX_BYTES = 32
"""Sections up to this many bytes keep their data on the `.section` line."""

HEX_BYTES_PER_LINE = 32
"""Bytes per continuation line of longer sections."""

_DIRECTIVES = (".target", ".header", ".section", ".text")
_SECNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
_NUMBER = re.compile(r"([+-]?)(?:0[xX]([0-9a-fA-F]+)|([0-9]+))")
_HEX = re.compile(r"[0-9a-fA-F]*")
_NOT_HEX = re.compile(r"[^0-9a-fA-F]")
_DIM = re.compile(r"[0-9]+")
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')

_GRAMMAR = r"""
start: _line*
_line: _stmt? _NL
_stmt: target | header | section | text | hexcont | directive | {instructions}

target: _K_TARGET NAME
header: _K_HEADER REST
section: _K_SECTION (SECNAME | STRING) DTYPE shape STRING*
shape: "[" [DIM ("," DIM)*] "]"
text: K_TEXT
hexcont: STRING+
directive: DIRECTIVE REST?

{rules}

_K_TARGET: ".target"
_K_HEADER: ".header"
_K_SECTION: ".section"
K_TEXT: ".text"
{terminals}
DIRECTIVE: /\.[A-Za-z_][A-Za-z0-9_.]*/
NAME: /[A-Za-z_][A-Za-z0-9_.]*/
SECNAME: /[A-Za-z_][A-Za-z0-9_.\/-]*/
STRING: /"(?:[^"\\\n]|\\.)*"/
DTYPE: /[^\s\[\]"#,]+/
DIM: /[^\s,\]#]+/
VALUE: /[^\s,#]+/
REST: /[^\s#][^\n]*/
COMMENT: /#[^\n]*/
_NL: /\n/
%ignore /[ \t\f\r]+/
%ignore COMMENT
"""

_READABLE = {
    "_NL": "end of line",
    "COMMA": "','",
    "EQUAL": "'='",
    "LSQB": "'['",
    "RSQB": "']'",
    "VALUE": "a number",
    "DIM": "a dimension",
    "DTYPE": "a dtype",
    "STRING": "a quoted string",
    "NAME": "a name",
    "OPERAND": "an operand name",
    "MNEMONIC": "an instruction",
    "SECNAME": "a section name",
    "REST": "a JSON object",
    "DIRECTIVE": "a directive",
    "_K_TARGET": "'.target'",
    "_K_HEADER": "'.header'",
    "_K_SECTION": "'.section'",
    "K_TEXT": "'.text'",
}


@dataclass(frozen=True)
class _Grammar:
    text: str
    parser: Lark
    words: dict[str, str]  # keyword terminal -> its word (a mnemonic or an operand name)


_PARSERS: weakref.WeakKeyDictionary[IsaTable, _Grammar] = weakref.WeakKeyDictionary()


# -- the grammar -----------------------------------------------------------------------


def grammar(table: IsaTable) -> str:
    """The lark grammar of the assembly text of ``table``'s target."""
    return _parser(table).text


def _parser(table: IsaTable) -> _Grammar:
    """The grammar of ``table`` and its LALR parser, built once per table."""
    cached = _PARSERS.get(table)
    if cached is None:
        text, words = _build_grammar(table)
        parser = Lark(text, parser="lalr", lexer="contextual", maybe_placeholders=False)
        cached = _PARSERS[table] = _Grammar(text, parser, words)
    return cached


def _build_grammar(table: IsaTable) -> tuple[str, dict[str, str]]:
    """Grammar text with one rule per instruction, naming its operands, from the table.

    Each instruction `i_K` is its mnemonic and operands `o_K`, whose names are the
    instruction's operand names; any other name (`NAME`) is accepted by the grammar so
    that the assembler can say what is wrong with it, and an unknown mnemonic is `i_x`.
    """
    terms: dict[str, str] = {}  # word -> terminal

    def term(word: str) -> str:
        return terms.setdefault(word, f"W{len(terms)}")

    rules = []
    for k, instr in enumerate(table.instructions):
        names = " | ".join([term(f.name) for f in instr.fields] + ["NAME"])
        rules.append(f'i_{k}: {term(instr.mnemonic)} [o_{k} ("," o_{k})*]')
        rules.append(f'o_{k}: ({names}) "=" VALUE')
    every = sorted({term(f.name) for i in table.instructions for f in i.fields})
    rules.append('i_x: NAME [o_x ("," o_x)*]')
    rules.append(f'o_x: ({" | ".join([*every, "NAME"])}) "=" VALUE')
    instructions = " | ".join([f"i_{k}" for k in range(len(table.instructions))] + ["i_x"])
    terminals = "\n".join(f'{t}: "{word}"' for word, t in terms.items())
    text = (
        _GRAMMAR.replace("{instructions}", instructions)
        .replace("{rules}", "\n".join(rules))
        .replace("{terminals}", terminals)
    )
    return text, {t: word for word, t in terms.items()}


# -- assembling ------------------------------------------------------------------------


def assemble(text: str, source: str = "<asm>") -> Container:
    """The container of an assembly text; errors are `DlhwcError`s ``source:line:col``."""
    text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    table = _target_table(lines, source)
    g = _parser(table)
    try:
        tree = g.parser.parse(text + "\n")
    except UnexpectedInput as e:
        raise _syntax_error(e, lines, g, source) from None
    asm = _Assembler(table, source)
    container = asm.run(tree)
    _check_loadable(container, asm)
    return container


def assemble_file(path: str | Path, output: str | Path) -> Container:
    """Assemble the file ``path`` and write the container to ``output`` atomically."""
    container = assemble(_read_text(path), str(path))
    container.write(output)
    return container


_INSTRUCTION_ERROR = re.compile(r"instruction (\d+) ")


def _check_loadable(container: Container, asm: _Assembler) -> None:
    """Load a complete program in its target's simulator, as `run` would (see the module
    docstring); its errors get the line of the instruction or of `.header`."""
    from dlhwc.spec.targets import targets

    if container.target not in targets() or asm.header_token is None:
        return
    if "symbols" not in container.header:
        return  # a fragment: no program without a symbol table
    simulator = targets()[container.target].simulator_module().Simulator
    try:
        simulator(container, asm.source)
    except DlhwcError as e:
        m = _INSTRUCTION_ERROR.match(e.reason)
        if m and int(m.group(1)) < len(asm.word_tokens):
            raise asm.error(asm.word_tokens[int(m.group(1))], e.reason) from None
        raise asm.error(asm.header_token, e.reason) from None


def _read_text(path: str | Path) -> str:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DlhwcError("no such file", file=str(path)) from None
    except OSError as e:
        raise DlhwcError(f"cannot read the file ({e.strerror})", file=str(path)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DlhwcError(f"not UTF-8 text (byte {e.start})", file=str(path)) from None


def _target_table(lines: list[str], source: str) -> IsaTable:
    """The ISA table named by the `.target` that must be the file's first statement.

    The grammar depends on the table, so `.target` is found before parsing.
    """
    for lineno, line in enumerate(lines, 1):
        code = line.split("#", 1)[0]
        if not code.strip():
            continue
        col = len(code) - len(code.lstrip()) + 1
        words = code.split()
        if words[0] != ".target":
            raise DlhwcError(
                "missing .target: the program must start with '.target NAME'",
                file=source,
                where=f"{lineno}:{col}",
            )
        if len(words) != 2 or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", words[1]):
            raise DlhwcError(
                "malformed .target directive: expected '.target NAME'",
                file=source,
                where=f"{lineno}:{col}",
            )
        name_col = code.index(words[1], col - 1 + len(".target")) + 1
        try:
            return isa_table(words[1])
        except DlhwcError as e:
            raise DlhwcError(e.reason, file=source, where=f"{lineno}:{name_col}") from None
    raise DlhwcError(
        "missing .target: the program must start with '.target NAME'", file=source, where="1:1"
    )


def _syntax_error(e: UnexpectedInput, lines: list[str], g: _Grammar, source: str) -> DlhwcError:
    """A one-line message for lark's syntax error ``e``."""
    line = lines[e.line - 1] if 0 < e.line <= len(lines) else ""
    col = e.column
    if line[col - 1 : col] == '"' and not _STRING.match(line, col - 1):
        reason = "unterminated string"
    else:
        word = _word_at(line, col)
        reason = f"unexpected '{word}'" if word else "unexpected end of line"
        names = _readable(_expected(e), g.words)
        if names:
            reason += "; expected " + _either(names)
    stripped = line.lstrip()
    if stripped.startswith(_DIRECTIVES):
        directive = stripped.split()[0]
        if directive in _DIRECTIVES:
            reason = f"malformed {directive} directive: {reason}"
    return DlhwcError(reason, file=source, where=f"{e.line}:{col}")


def _expected(e: UnexpectedInput) -> set[str]:
    """The terminals the parser would have taken where ``e`` happened.

    When the contextual lexer fails, lark reports the terminals of the state's lexer, in
    which keywords are folded into NAME; the parse table still has them.
    """
    state = getattr(e, "state", None)
    if state is not None:
        table = state.parse_conf.parse_table.states.get(state.position, {})
        terminals = {t for t in table if t.lstrip("_")[:1].isupper()}
        if terminals:
            return terminals
    return set(e.expected if isinstance(e, UnexpectedToken) else e.allowed or ())


def _word_at(line: str, col: int) -> str:
    """The word (or the one character) at 1-based column ``col`` of ``line``."""
    m = re.compile(r'[^\s,=\[\]"#]+|\S').match(line, col - 1)
    return m.group(0) if m else ""


def _readable(expected: set[str], words: dict[str, str]) -> list[str]:
    if "NAME" in expected:  # any name parses there, and is checked later
        kind = "MNEMONIC" if "DIRECTIVE" in expected else "OPERAND"  # line start or not
        expected = {t for t in expected if t not in words and t != "NAME"} | {kind}
    if "DIRECTIVE" in expected:
        expected = {t for t in expected if not t.startswith(("_K_", "K_"))}
    names = {_READABLE.get(t) or (f"'{words[t]}'" if t in words else t) for t in expected}
    return sorted(names)


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


class _Assembler:
    """Walks the parse tree in file order, checking and building the container."""

    def __init__(self, table: IsaTable, source: str):
        self.table = table
        self.source = source
        self.target: str | None = None
        self.header: dict | None = None
        self.order: list[str] = []  # section names in file order, TEXT included
        self.sections: dict[str, np.ndarray] = {}
        self.text_state = "before"  # before | in | after
        self.words: list[int] = []
        self.word_tokens: list[Token] = []  # each word's mnemonic, for errors
        self.header_token: Token | None = None
        self.pending: dict | None = None  # the section whose data lines may follow

    def error(self, token: Token, reason: str) -> DlhwcError:
        return DlhwcError(reason, file=self.source, where=f"{token.line}:{token.column}")

    def run(self, tree: Tree) -> Container:
        for stmt in tree.children:
            kind = str(stmt.data)
            if kind != "hexcont":
                self.finish_section()
            if kind.startswith("i_"):
                self.instruction(stmt)
            else:
                getattr(self, f"do_{kind}")(stmt)
        self.finish_section()
        sections = {
            name: np.array(self.words, dtype="<u8") if name == TEXT else self.sections[name]
            for name in self.order
        }
        # Not Container.add: np.ascontiguousarray would make a 0-d section 1-d.
        return Container(self.target or self.table.target, self.header or {}, sections)

    # -- directives --------------------------------------------------------------------

    def do_target(self, stmt: Tree) -> None:
        (name,) = stmt.children
        if self.target is not None:
            raise self.error(name, "duplicate .target")
        self.target = str(name)

    def do_header(self, stmt: Tree) -> None:
        (rest,) = stmt.children
        if self.header is not None:
            raise self.error(rest, "duplicate .header")
        if self.order:
            raise self.error(rest, ".header must come before the sections and .text")
        try:
            value, end = json.JSONDecoder().raw_decode(str(rest))
        except json.JSONDecodeError as e:
            where = Token("REST", "", line=rest.line, column=rest.column + e.pos)
            raise self.error(where, f"malformed .header: {e.msg}") from None
        except RecursionError:
            raise self.error(rest, "malformed .header: it nests too deeply") from None
        tail = str(rest)[end:].strip()
        if tail and not tail.startswith("#"):
            where = Token("REST", "", line=rest.line, column=rest.column + str(rest).index(tail))
            raise self.error(where, "malformed .header: text after the JSON object")
        if not isinstance(value, dict):
            raise self.error(rest, "malformed .header: not a JSON object")
        for key in (f.name for f in dataclasses.fields(Envelope)):  # written by the container
            if key in value:
                raise self.error(
                    rest, f"the .header may not set '{key}' (it comes from .{key.rstrip('s')})"
                )
        self.header = value
        self.header_token = rest

    def do_text(self, stmt: Tree) -> None:
        if TEXT in self.order:
            raise self.error(stmt.children[0], "duplicate .text")
        self.order.append(TEXT)
        self.text_state = "in"

    def do_directive(self, stmt: Tree) -> None:
        token = stmt.children[0]
        raise self.error(
            token, f"unknown directive '{token}' (directives: {', '.join(_DIRECTIVES)})"
        )

    def do_section(self, stmt: Tree) -> None:
        name_tok, dtype_tok, shape, *strings = stmt.children
        if name_tok.type == "STRING":
            try:
                name = json.loads(str(name_tok))
            except json.JSONDecodeError as e:
                raise self.error(name_tok, f"bad section name: {e.msg}") from None
            if not name:
                raise self.error(name_tok, "empty section name")
        else:
            name = str(name_tok)
        if name == TEXT:
            raise self.error(
                name_tok, f"section '{TEXT}' holds the instructions: write them after .text"
            )
        if name in self.sections:
            raise self.error(name_tok, f"duplicate section '{name}'")
        dtype = _dtype(dtype_tok, self)
        dims = []
        for dim in shape.children:
            if not _DIM.fullmatch(str(dim)):
                raise self.error(dim, f"bad dimension '{dim}'")
            dims.append(int(str(dim)))
        self.order.append(name)
        if self.text_state == "in":
            self.text_state = "after"
        self.sections[name] = None  # reserved; the data comes in finish_section
        self.pending = {"token": name_tok, "name": name, "dtype": dtype, "shape": dims,
                        "chunks": []}  # fmt: skip
        self.add_hex(strings)

    def do_hexcont(self, stmt: Tree) -> None:
        if self.pending is None:
            raise self.error(
                stmt.children[0], "section data outside a section (it must follow .section)"
            )
        self.add_hex(stmt.children)

    def add_hex(self, strings: list[Token]) -> None:
        for s in strings:
            digits = str(s)[1:-1]
            if not _HEX.fullmatch(digits):
                bad = _NOT_HEX.search(digits)
                where = Token("STRING", "", line=s.line, column=s.column + 1 + bad.start())
                raise self.error(where, f"bad hex digit '{bad.group(0)}' in section data")
            if len(digits) % 2:
                raise self.error(s, "odd number of hex digits (each string holds whole bytes)")
            self.pending["chunks"].append(bytes.fromhex(digits))

    def finish_section(self) -> None:
        p, self.pending = self.pending, None
        if p is None:
            return
        data = b"".join(p["chunks"])
        dtype, shape = p["dtype"], p["shape"]
        need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if need != len(data):
            raise self.error(
                p["token"],
                f"section '{p['name']}': {dtype.str} {_shape(shape)} is {need} bytes, "
                f"the data has {len(data)}",
            )
        self.sections[p["name"]] = np.frombuffer(data, dtype=dtype).reshape(shape).copy()

    # -- instructions ------------------------------------------------------------------

    def instruction(self, stmt: Tree) -> None:
        mn_tok, *operands = stmt.children
        mnemonic = str(mn_tok)
        instr = self.table.by_mnemonic.get(mnemonic)
        if instr is None:
            raise self.error(mn_tok, self.unknown_mnemonic(mnemonic))
        if self.text_state != "in":
            where = "before .text" if self.text_state == "before" else "after the text block"
            raise self.error(
                mn_tok, f"instruction {where} (instructions go between .text and any .section)"
            )
        values: dict[str, int] = {}
        for op in operands:
            name_tok, value_tok = op.children
            name = str(name_tok)
            field_ = next((f for f in instr.fields if f.name == name), None)
            if field_ is None:
                raise self.error(name_tok, _unknown_operand(instr, name))
            if name in values:
                raise self.error(name_tok, f"duplicate operand '{name}'")
            value = _number(str(value_tok))
            if value is None:
                raise self.error(value_tok, f"bad number '{value_tok}'")
            if not field_.min <= value <= field_.max:
                raise self.error(name_tok, f"{name}={value} outside {range_text(field_)}")
            values[name] = value
        missing = [f.name for f in instr.fields if f.name not in values]
        if missing:
            s = "s" if len(missing) > 1 else ""
            raise self.error(mn_tok, f"{mnemonic}: missing operand{s} {', '.join(missing)}")
        self.words.append(instr.encode(**values))
        self.word_tokens.append(mn_tok)

    def unknown_mnemonic(self, mnemonic: str) -> str:
        known = [i.mnemonic for i in self.table.instructions]
        close = difflib.get_close_matches(mnemonic, known, n=1)
        if close:
            return f"unknown mnemonic '{mnemonic}'; did you mean '{close[0]}'?"
        return f"unknown mnemonic '{mnemonic}' ({self.table.target} has {', '.join(known)})"


def _unknown_operand(instr: Instruction, name: str) -> str:
    known = [f.name for f in instr.fields]
    if not known:
        return f"{instr.mnemonic} takes no operands (got '{name}')"
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f" (operands: {', '.join(known)})"
    return f"{instr.mnemonic} has no operand '{name}'{hint}"


def _number(text: str) -> int | None:
    m = _NUMBER.fullmatch(text)
    if m is None:
        return None
    sign, hexdigits, decimal = m.groups()
    value = int(hexdigits, 16) if hexdigits is not None else int(decimal, 10)
    return -value if sign == "-" else value


def _dtype(token: Token, asm: _Assembler) -> np.dtype:
    text = str(token)
    try:
        dtype = np.dtype(text)
    except (TypeError, ValueError, SyntaxError):
        raise asm.error(token, f"bad dtype '{text}'") from None
    if dtype.byteorder == ">":
        raise asm.error(token, f"big-endian dtype '{text}': section data is little-endian")
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise asm.error(token, f"dtype '{text}' is not a plain numeric dtype")
    if dtype.itemsize == 0:
        raise asm.error(token, f"dtype '{text}' has no size")
    return dtype


def _shape(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


# -- disassembling ---------------------------------------------------------------------


def disassemble(
    container: Container, *, show_encoding: bool = False, source: str = "<container>"
) -> str:
    """The assembly text of ``container``: assembling it gives the same bytes."""
    try:
        table = isa_table(container.target)
    except DlhwcError as e:
        raise DlhwcError(e.reason, file=source) from None
    out = [f".target {container.target}"]
    header = {k: v for k, v in container.header.items() if k not in ("target", "sections")}
    if header:
        out.append(".header " + json.dumps(header, sort_keys=True, separators=(",", ":")))
    for name, array in container.sections.items():
        if name == TEXT:
            out.append(".text")
            out.extend(_instruction_lines(table, array, show_encoding, source))
        else:
            out.extend(_section_lines(name, array))
    return "\n".join(out) + "\n"


def disassemble_file(
    path: str | Path, *, show_encoding: bool = False, output: str | Path | None = None
) -> str:
    """The assembly text of the container file ``path``, also written to ``output``."""
    text = disassemble(Container.read(path), show_encoding=show_encoding, source=str(path))
    if output is not None:
        from dlhwc.spec.fileio import write_atomic

        write_atomic(output, text)
    return text


def _instruction_lines(
    table: IsaTable, array: np.ndarray, show_encoding: bool, source: str
) -> list[str]:
    if array.dtype.kind != "u" or array.dtype.itemsize != 8 or array.ndim != 1:
        raise DlhwcError(
            f"section '{TEXT}' must be a 1-D array of <u8 instruction words, "
            f"not {array.dtype.str} {_shape(array.shape)}",
            file=source,
        )
    width = max(len(i.mnemonic) for i in table.instructions)
    words = [int(w) for w in array.tolist()]
    lines = []
    for n, word in enumerate(words):
        try:
            instr, values = table.decode(word)
        except IsaError as e:
            raise DlhwcError(f"word {n}: {e}", file=source) from None
        ops = ", ".join(f"{f.name}={values[f.name]}" for f in instr.fields)
        lines.append(f"    {instr.mnemonic:<{width}} {ops}" if ops else f"    {instr.mnemonic}")
    if show_encoding and lines:
        col = max(len(line) for line in lines) + 2
        lines = [f"{line:<{col}}# {word:#018x}" for line, word in zip(lines, words, strict=True)]
    return lines


def _section_lines(name: str, array: np.ndarray) -> list[str]:
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    data = np.ascontiguousarray(array, dtype=dtype).tobytes().hex()
    shown = name if _SECNAME.fullmatch(name) else json.dumps(name)
    head = f".section {shown} {dtype.str} {_shape(array.shape)}"
    if len(data) <= 2 * INLINE_HEX_BYTES:
        return [f'{head} "{data}"']
    step = 2 * HEX_BYTES_PER_LINE
    return [head] + [f'    "{data[i : i + step]}"' for i in range(0, len(data), step)]
