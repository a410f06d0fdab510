"""Printing and parsing of dlhwc IR.

Two printing modes, both readable by `parse_module` unless elided:

- *saved* IR (`-o out.mlir`): every dense constant larger than `HEX_THRESHOLD` elements is
  written as MLIR's hex form `dense<"0x...">`, straight from its bytes, so writing and
  reading a 100M-weight model costs a hex conversion and no per-element Python work;
- *dumps* (`--print-ir-after-all`, `--emit` to the terminal): constants with more than
  `elide_threshold` elements print as `dense_resource<__elided__>` like MLIR's
  `--mlir-elide-elementsattrs-if-larger`. Such dumps are for reading, not for parsing back.

Print, parse and print again gives the same bytes.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from xdsl.context import Context
from xdsl.dialects import builtin, func
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp
from xdsl.ir import Attribute
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError, VerifyException
from xdsl.utils.mlir_lexer import MLIRLexer

from dlhwc.spec.errors import DlhwcError

HEX_THRESHOLD = 16
DEFAULT_ELIDE_THRESHOLD = 16

# xDSL 0.74 lexes a string literal with `"(?:[^"...]+|\\...)*"`: a `+` inside a `*` that
# backtracks exponentially when the closing quote is missing (an IR file truncated inside
# a hex payload never finished lexing). The same language with possessive quantifiers
# matches in linear time and never backtracks.
MLIRLexer._unescaped_characters_regex = re.compile(
    r'"(?:[^"\\\n\v\f]++|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*+"'
)


class IRPrinter(Printer):
    """An xDSL printer that writes large dense constants as hex, or elides them."""

    elide_threshold: int | None = None

    def print_attribute(self, attribute: Attribute) -> None:
        if isinstance(attribute, DenseIntOrFPElementsAttr):
            count = len(attribute)
            if self.elide_threshold is not None and count > self.elide_threshold:
                self.print_string("dense_resource<__elided__> : ")
                self.print_attribute(attribute.get_type())
                return
            if count > HEX_THRESHOLD:
                self.print_string('dense<"0x')
                self.print_string(attribute.data.data.hex().upper())
                self.print_string('"> : ')
                self.print_attribute(attribute.get_type())
                return
        super().print_attribute(attribute)


def module_to_string(module: ModuleOp, elide_threshold: int | None = None) -> str:
    """The module's text; constants above ``elide_threshold`` elements are elided if given."""
    stream = io.StringIO()
    printer = IRPrinter(stream=stream)
    printer.elide_threshold = elide_threshold
    printer.print_op(module)
    stream.write("\n")
    return stream.getvalue()


def context() -> Context:
    """A context with every dialect dlhwc's IR may contain."""
    from dlhwc.dialects import CORE_DIALECTS
    from dlhwc.spec.targets import targets

    ctx = Context()
    ctx.load_dialect(builtin.Builtin)
    ctx.load_dialect(func.Func)
    for dialect in CORE_DIALECTS:
        ctx.load_dialect(dialect)
    for target in targets().values():
        ctx.load_dialect(target.dialect.load())
    return ctx


# Hex payloads at least this long are lifted out of the text before parsing.
LIFT_HEX_CHARS = 1 << 16


def _lift_blobs(text: str) -> tuple[str, list[str]]:
    """``text`` with every long `dense<"0x...">` payload replaced by `dlhwc_blob<i>`."""
    pieces: list[str] = []
    blobs: list[str] = []
    pos = 0
    opener = 'dense<"0x'
    while (start := text.find(opener, pos)) >= 0:
        hex_start = start + len(opener)
        end = text.find('"', hex_start)
        if end < 0:
            break
        if end - hex_start >= LIFT_HEX_CHARS and text.startswith('">', end):
            pieces.append(text[pos:start])
            pieces.append(f"dlhwc_blob<{len(blobs)}>")
            blobs.append(text[hex_start:end])
            pos = end + 2
        else:
            pieces.append(text[pos:hex_start])
            pos = hex_start
    pieces.append(text[pos:])
    return "".join(pieces), blobs


def parse_module(text: str, filename: str = "<stdin>") -> ModuleOp:
    """Parse and verify IR text; errors become one-line `DlhwcError`s with line:column.

    Large hex constants are lifted out of the text first (see `dialects.onnx.HEX_BLOBS`):
    xDSL's lexer takes seconds on a string literal of hundreds of MB. Should anything in
    the lifted text not parse, the text is parsed again as it is, so errors keep their
    positions.
    """
    from dlhwc.dialects.onnx import HEX_BLOBS

    lifted, blobs = _lift_blobs(text) if len(text) > LIFT_HEX_CHARS else (text, [])
    if blobs:
        token = HEX_BLOBS.set(blobs)
        try:
            module = Parser(context(), lifted, name=filename).parse_module()
            module.verify()
            return module
        except (ParseError, VerifyException, ValueError, RecursionError, NotImplementedError,
                OverflowError):  # fmt: skip
            pass  # reported by the plain parse below
        finally:
            HEX_BLOBS.reset(token)
            del lifted, blobs
    try:
        module = Parser(context(), text, name=filename).parse_module()
    except ParseError as e:
        loc = e.span.get_location()
        reason = e.msg.strip().splitlines()[0] if e.msg.strip() else "parse error"
        raise DlhwcError(reason, file=filename, where=f"{loc.line}:{loc.col}") from None
    except RecursionError:
        raise DlhwcError(_TOO_DEEP, file=filename) from None
    except VerifyException as e:  # an attribute checked as it is built, e.g. #comp.fixed
        raise DlhwcError(f"invalid IR: {_first_line(str(e))}", file=filename) from None
    except (NotImplementedError, OverflowError) as e:  # xDSL: e.g. a dense i2147483648
        raise DlhwcError(f"unsupported IR: {_first_line(str(e))}", file=filename) from None
    try:
        module.verify()
    except VerifyException as e:
        raise DlhwcError(f"invalid IR: {_first_line(str(e))}", file=filename) from None
    except RecursionError:
        raise DlhwcError(_TOO_DEEP, file=filename) from None
    return module


_TOO_DEEP = "the IR nests too deeply (attributes, regions or types)"


def read_module(path: str | Path) -> ModuleOp:
    """Read and verify a `.mlir` file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DlhwcError("no such file", file=str(path)) from None
    except (IsADirectoryError, UnicodeDecodeError) as e:
        raise DlhwcError(f"cannot read IR: {e.__class__.__name__}", file=str(path)) from None
    return parse_module(text, str(path))


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text
