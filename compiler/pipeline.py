"""The compile pipeline: one straight-line function with named stages.

Without a target:

    onnx    import: ONNX file -> `onnx` IR (compiler/frontend), then the `-p` passes

With `--target eie` (or `ese`):

    onnx    import, then fold-constants
    comp    compression: the `-p` passes, or the target's default pipeline; passes the
            target needs and `-p` lacks (share-weights, quantize) are appended
    eie     lowering to the target dialect (convert-onnx-to-eie; for ese: the stage `ese`,
            convert-onnx-to-ese)
    asm     the program as assembly text
    dlhw    the program container (the default)

Every stage's IR is verified; `--emit STAGE` stops after it, and `--print-ir-after-all`
prints the IR after the import and after every pass, headed by its name. The same hook
(`dump`: any callable taking the stage's name and the module) prints the compression
ledger for `--ledger-after-all` (compiler/instrument.py), and a `PassTimer` (`timer`)
times the import, every pass and the program's encoding for `--time-passes`.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import ArgSpecParseError, VerifyException

from dlhwc.compiler.instrument import AFTER_PASS, PassTimer, timed
from dlhwc.compiler.irio import DEFAULT_ELIDE_THRESHOLD, context, module_to_string
from dlhwc.compiler.plugins import plugin_error
from dlhwc.spec.errors import DlhwcError

STAGES = ("onnx", "comp")

AfterPass = Callable[[str, ModuleOp], None]
"""What runs after the import and each pass: `IRDumper`, `LedgerAfterAll`, or both."""


def parse_pipeline(
    spec: str, available: dict[str, Callable[[], type[ModulePass]]]
) -> list[ModulePass]:
    """Turn a `-p` string like ``'prune{sparsity=0.9},share-weights'`` into pass instances."""
    from xdsl.utils.arg_spec import parse_pipeline as parse_specs

    try:
        specs = list(parse_specs(_spaces_between_options(spec)))
    except ArgSpecParseError as e:
        reason = str(e).strip().splitlines()[-1].strip()
        raise DlhwcError(f"bad pass pipeline '{spec}': {reason}") from None
    passes = []
    for s in specs:
        if s.name not in available:
            known = ", ".join(sorted(available))
            raise DlhwcError(f"unknown pass '{s.name}' (known passes: {known})")
        cls = available[s.name]()
        options = [f.name.replace("_", "-") for f in dataclasses.fields(cls)]
        unknown = [k for k in s.parameters if k.replace("_", "-") not in options]
        if unknown:
            raise DlhwcError(
                f"pass '{s.name}' has no option {', '.join(repr(u) for u in unknown)} "
                f"(options: {', '.join(options) or 'none'})"
            )
        try:
            passes.append(cls.from_pass_spec(s))
        except (ValueError, TypeError) as e:
            raise DlhwcError(f"pass '{s.name}': {_one_line(e)}") from None
    return passes


def _spaces_between_options(spec: str) -> str:
    """Accept `pass{a=1,b=2}` as well as MLIR's `pass{a=1 b=2}`, and unquoted paths.

    Inside braces, a comma followed by `name=` starts a new option; other commas still
    separate the items of a list value (`opt=1,2,3`).
    """
    out, depth = [], 0
    for i, ch in enumerate(spec):
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth > 0 and re.match(r"\s*[A-Za-z_][\w-]*\s*=", spec[i + 1 :]):
            ch = " "
        out.append(ch)
    return re.sub(r"(?<==)([^\s,{}\"']+)", _quote_path, "".join(out))


def _quote_path(match: re.Match) -> str:
    # Paths (recipe.toml, data/calib.npz) are not tokens of xDSL's pipeline syntax.
    value = match.group(1)
    try:
        float(value)
        return value
    except ValueError:
        return f'"{value}"' if re.search(r"[/.~\\]", value) else value


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


@dataclass
class IRDumper:
    """Prints the IR after a stage or pass (for `--print-ir-after-all`)."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    elide_threshold: int | None = DEFAULT_ELIDE_THRESHOLD

    def __call__(self, after: str, module: ModuleOp) -> None:
        self.stream.write(f"// -----// IR Dump After {after} //----- //\n")
        self.stream.write(module_to_string(module, self.elide_threshold))
        self.stream.write("\n")


def apply_passes(
    module: ModuleOp,
    passes: Iterable[ModulePass],
    dump: AfterPass | None = None,
    timer: PassTimer | None = None,
) -> ModuleOp:
    """Run ``passes`` in order on ``module``, verifying the IR after each one (the
    verification is part of the pass's time)."""
    ctx = context()
    for p in passes:
        with timed(timer, p.name):
            _apply(p, ctx, module)
        after(dump, p.name, module, timer)
    return module


def after(dump: AfterPass | None, name: str, module: ModuleOp, timer: PassTimer | None) -> None:
    """Run the after-pass hook, if any (its time is one grouped row of the timer)."""
    if dump is not None:
        with timed(timer, AFTER_PASS, group=True):
            dump(name, module)


def _apply(p: ModulePass, ctx, module: ModuleOp) -> None:
    try:
        p.apply(ctx, module)
    except DlhwcError:
        raise
    except (Exception, SystemExit) as e:  # noqa: BLE001 - a plugin's error is the user's
        if (error := plugin_error(p, e)) is None:
            raise
        raise error from None
    try:
        module.verify()
    except VerifyException as e:
        raise DlhwcError(f"pass '{p.name}' produced invalid IR: {_one_line(e)}") from None


def compile_model(
    model_path: str,
    passes: list[ModulePass],
    emit: str = "onnx",
    dump: AfterPass | None = None,
    timer: PassTimer | None = None,
):
    """Import ``model_path`` and run the ``-p`` passes (no target: stages onnx, comp)."""
    from dlhwc.compiler.frontend.onnx_importer import import_file

    if emit not in STAGES:
        raise DlhwcError(f"unknown stage '{emit}' for --emit (stages: {', '.join(STAGES)})")
    with timed(timer, "import"):
        module = import_file(model_path)
    after(dump, "import", module, timer)
    return apply_passes(module, passes, dump, timer)


def target_stages(target_name: str) -> tuple[str, ...]:
    """The stages `--emit` can stop at when compiling for ``target_name``."""
    return ("onnx", "comp", target_name, "asm", "dlhw")


def compile_for_target(
    model_path: str,
    target_name: str,
    pipeline: str | None,
    available: dict[str, Callable[[], type[ModulePass]]],
    emit: str = "dlhw",
    hw: str | None = None,
    dump: AfterPass | None = None,
    configure: Callable[[list[ModulePass]], list[ModulePass]] = lambda passes: passes,
    after_compression: Callable[[ModuleOp], None] | None = None,
    timer: PassTimer | None = None,
):
    """Compile ``model_path`` for a target, stopping after stage ``emit``.

    Returns the IR module for the onnx, comp and eie stages, and the program container
    for asm and dlhw. ``configure`` may adjust the compression passes (e.g. calibration).
    ``timer`` times the import, each pass, and the encoding of the program.
    """
    from dlhwc.compiler.frontend.onnx_importer import import_file
    from dlhwc.spec.targets import target as get_target

    target = get_target(target_name)
    stages = target_stages(target_name)
    if emit not in stages:
        raise DlhwcError(f"unknown stage '{emit}' for --emit (stages: {', '.join(stages)})")
    config = target.load_config(hw)

    with timed(timer, "import"):
        module = import_file(model_path)
    after(dump, "import", module, timer)
    apply_passes(module, parse_pipeline("fold-constants", available), dump, timer)
    if emit == "onnx":
        return module
    from dlhwc.compiler.passes.weights import check_finite, find_weights

    for slot in find_weights(module):
        check_finite(slot)

    compression = parse_pipeline(pipeline or target.default_passes(config), available)
    present = {p.name for p in compression}
    for spec in target.required_passes(config):
        extra = parse_pipeline(spec, available)[0]
        if extra.name not in present:
            compression.append(extra)
    apply_passes(module, configure(compression), dump, timer)
    if after_compression is not None:
        after_compression(module)
    if emit == "comp":
        return module

    apply_passes(module, parse_pipeline(target.lowering_passes(hw), available), dump, timer)
    if emit == target_name:
        return module
    with timed(timer, f"encode the {target_name} program"):
        return target.build(module, config)
