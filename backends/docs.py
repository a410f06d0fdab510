"""Regenerate the ISA reference in each target's README from its ISA table.

    python -m dlhwc.backends.docs             # rewrite the sections between the markers
    python -m dlhwc.backends.docs --check     # exit 1 if any README is stale
    python -m dlhwc.backends.docs eie         # one target

The reference is the table's `markdown()`, between the lines `<!-- isa:begin -->` and
`<!-- isa:end -->` of the target's hardware guide (its descriptor's `guide`); a README without the markers gets the
section appended, and a missing README is created around it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlhwc.spec.targets import isa_table, targets

BEGIN = "<!-- isa:begin -->"
END = "<!-- isa:end -->"


def readme_path(target: str) -> Path:
    """The target's hardware guide (its descriptor's `guide`)."""
    guide = targets()[target].guide
    return Path(guide) if guide else Path(__file__).resolve().parent / target / "README.md"


def section(target: str) -> str:
    """The generated text between the markers (the markers included)."""
    note = (
        f"<!-- Generated from the ISA table of target '{target}' by "
        "`python -m dlhwc.backends.docs`; "
        "do not edit by hand. -->"
    )
    return f"{BEGIN}\n{note}\n\n{isa_table(target).markdown().rstrip()}\n{END}"


def updated(target: str, text: str | None) -> str:
    """``text`` (a README, or None if there is none) with the ISA section regenerated."""
    if text is None:
        return f"# {target.upper()}\n\n## Instruction set\n\n{section(target)}\n"
    begin, end = text.find(BEGIN), text.find(END)
    if begin < 0 or end < begin:
        return f"{text.rstrip()}\n\n## Instruction set\n\n{section(target)}\n"
    return text[:begin] + section(target) + text[end + len(END) :]


def main(argv: list[str] | None = None, readmes: dict[str, Path] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlhwc.backends.docs", description=__doc__)
    parser.add_argument("targets", nargs="*", help="targets (default: all)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a README is stale")
    args = parser.parse_args(argv)
    status = 0
    for target in args.targets or list(targets()):
        readme = (readmes or {}).get(target) or readme_path(target)
        current = readme.read_text(encoding="utf-8") if readme.exists() else None
        new = updated(target, current)
        if new == current:
            continue
        if args.check:
            print(
                f"{readme}: the ISA section is stale: run python -m dlhwc.backends.docs",
                file=sys.stderr,
            )
            status = 1
            continue
        from dlhwc.spec.fileio import write_atomic

        write_atomic(readme, new)
        print(f"updated {readme}")
    return status


if __name__ == "__main__":
    sys.exit(main())
