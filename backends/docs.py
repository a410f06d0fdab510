"""Regenerate the generated references in each target's README: its ISA and its
container header.

    python -m dlhwc.backends.docs             # rewrite the sections between the markers
    python -m dlhwc.backends.docs --check     # exit 1 if any README is stale
    python -m dlhwc.backends.docs eie         # one target

The ISA reference is the ISA table's `markdown()`, between the lines `<!-- isa:begin -->`
and `<!-- isa:end -->` of the target's hardware guide (its descriptor's `guide`); the
container reference is `spec/container.header_markdown` (the header's records, with the
target's layer record), between `<!-- container:begin -->` and `<!-- container:end -->`.
A README without the markers gets the section appended, and a missing README is created
around it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlhwc.spec.targets import isa_table, targets

BEGIN = "<!-- isa:begin -->"
END = "<!-- isa:end -->"
CONTAINER_BEGIN = "<!-- container:begin -->"
CONTAINER_END = "<!-- container:end -->"


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


def container_section(name: str) -> str:
    """The generated container reference between its markers (the markers included)."""
    from dlhwc.spec.container import header_markdown

    record = targets()[name].layer_record
    note = (
        "<!-- Generated from spec/container.py and "
        f"{record.__module__.removeprefix('dlhwc.').replace('.', '/')}.py by `python -m dlhwc.backends.docs`; do not edit by hand. -->"
    )
    body = header_markdown(name).rstrip()
    return f"{CONTAINER_BEGIN}\n{note}\n\n{body}\n{CONTAINER_END}"


def _replace(text: str, begin: str, end: str, title: str, generated: str) -> str:
    """``text`` with the part between the markers ``begin`` and ``end`` replaced, or with
    a section ``title`` appended when the markers are missing."""
    b, e = text.find(begin), text.find(end)
    if b < 0 or e < b:
        return f"{text.rstrip()}\n\n## {title}\n\n{generated}\n"
    return text[:b] + generated + text[e + len(end) :]


def updated(target: str, text: str | None) -> str:
    """``text`` (a README, or None if there is none) with the generated sections
    regenerated."""
    text = f"# {target.upper()}\n" if text is None else text
    text = _replace(text, BEGIN, END, "Instruction set", section(target))
    return _replace(text, CONTAINER_BEGIN, CONTAINER_END, "Container layout",
                    container_section(target))  # fmt: skip


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
                f"{readme}: a generated section is stale: run python -m dlhwc.backends.docs",
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
