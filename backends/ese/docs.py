"""Regenerate the ISA reference in backends/ese/README.md from the ISA table.

    python -m backends.ese.docs           # rewrite the section between the markers
    python -m backends.ese.docs --check   # exit 1 if the README is stale

The reference is `ESE_ISA.markdown()`, between the lines `<!-- isa:begin -->` and
`<!-- isa:end -->`. Only that section is touched; a README without the markers gets the
section appended, and a missing README is created around it (as backends/eie/docs.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backends.ese.isa import ESE_ISA

README = Path(__file__).resolve().with_name("README.md")
BEGIN = "<!-- isa:begin -->"
END = "<!-- isa:end -->"
NOTE = (
    "<!-- Generated from backends/ese/isa.py by `python -m backends.ese.docs`; "
    "do not edit by hand. -->"
)


def section() -> str:
    """The generated text between the markers (the markers included)."""
    return f"{BEGIN}\n{NOTE}\n\n{ESE_ISA.markdown().rstrip()}\n{END}"


def updated(text: str | None) -> str:
    """``text`` (a README, or None if there is none) with the ISA section regenerated."""
    if text is None:
        return f"# ESE\n\n## Instruction set\n\n{section()}\n"
    begin, end = text.find(BEGIN), text.find(END)
    if begin < 0 or end < begin:
        return f"{text.rstrip()}\n\n## Instruction set\n\n{section()}\n"
    return text[:begin] + section() + text[end + len(END) :]


def main(argv: list[str] | None = None, readme: Path = README) -> int:
    parser = argparse.ArgumentParser(prog="python -m backends.ese.docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the README is stale")
    args = parser.parse_args(argv)
    current = readme.read_text(encoding="utf-8") if readme.exists() else None
    new = updated(current)
    if args.check:
        if new != current:
            print(
                f"{readme}: the ISA section is stale: run python -m backends.ese.docs",
                file=sys.stderr,
            )
            return 1
        return 0
    if new != current:
        from compiler.fileio import write_atomic

        write_atomic(readme, new)
        print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
