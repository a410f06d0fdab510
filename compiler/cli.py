"""The `dlhwc` command line.

    dlhwc compile model.onnx [--target eie|ese] [--emit STAGE] [-p PIPELINE] [-o OUT]
                  [--print-ir-after-all] [--ledger-after-all] [--time-passes]
                  [--hw CONFIG.toml] [--calibration DATA.npz]
    dlhwc opt in.mlir -p PIPELINE [-o OUT] [--print-ir-after-all] [--ledger-after-all]
              [--time-passes] [--calibration DATA.npz]
    dlhwc run model.onnx|in.mlir --input x.npy|inputs.npz [--output out.npz]
    dlhwc run prog.dlhw --input x.npy|inputs.npz [--output out.npz] [--stats stats.json]
              [--report]
    dlhwc report prog.dlhw [--input data.npz | --stats stats.json] [--html page.html]
    dlhwc export in.mlir|model.onnx -o model.onnx [--quantize-as qdq|float]
    dlhwc eval MODEL --data data.npz [--labels KEY] (-p PIPELINE | --compressed COMP.mlir)
               [--json FILE]
    dlhwc eval MODEL --target eie|ese --data data.npz [--labels KEY] [-p PIPELINE]
               [--calibration DATA.npz] [--hw CONFIG.toml] [--json FILE]
    dlhwc verify MODEL --target eie|ese --input data.npz [-p PIPELINE]
               [--calibration DATA.npz] [--hw CONFIG.toml] [--tolerance-db DB]
               [--lossy-tolerance-db DB] [--json FILE]
    dlhwc explore MODEL --target eie|ese --train TRAIN.npz --data DATA.npz
               [--max-drop POINTS] [--trials N] [--jobs J] [--seed S] [--out DIR]
               [--ray ADDRESS] [--search-hw] [--hw CONFIG.toml]  (compiler/explore.py)
    dlhwc passes
    dlhwc asm prog.s -o prog.dlhw
    dlhwc disasm prog.dlhw [--show-encoding] [-o prog.s]

`--report` on compile and opt prints the compression ledger (compiler/compression/
ledger.py) to stdout: after the IR when there is no -o, alone when the IR goes to -o;
with --target, the ledger of the comp stage, before anything the later stages print.
`--report-json FILE` writes the ledger as JSON. `--ledger-after-all` prints the ledger in
short after the import and every pass, and `--time-passes` the wall time of every stage,
both to stderr (compiler/instrument.py).

Heavy modules (xDSL, onnx, onnxruntime) are imported only by the command that needs
them, so `dlhwc --help` starts fast. Errors in the user's input print one line and exit
with status 1; a bug in dlhwc prints one line too (set DLHWC_TRACEBACK=1 to see its
traceback) and exits with status 70. `verify` exits with status 3 when a stage's error
jumps beyond its tolerance.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_USER_ERROR = 1
EXIT_VERIFY_FAILED = 3
EXIT_INTERNAL_ERROR = 70


def _add_pass_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-p",
        "--passes",
        dest="pipeline",
        default=None,
        help="pass pipeline, e.g. 'fold-constants,prune{sparsity=0.9}'",
    )
    p.add_argument(
        "--load-pass-plugin",
        action="append",
        default=[],
        metavar="FILE.py",
        help="run FILE.py as Python code (with your rights) and register every ModulePass "
        "subclass it defines (repeatable)",
    )
    p.add_argument(
        "--print-ir-after-all",
        action="store_true",
        help="print the IR after the import and after every pass to stderr",
    )
    p.add_argument(
        "--elide-threshold",
        type=int,
        default=16,
        metavar="N",
        help="in IR printed to the terminal, elide constants with more than N elements "
        "(default 16; -1 prints everything). Files written with -o are never elided.",
    )
    p.add_argument(
        "--calibration",
        metavar="DATA.npz",
        default=None,
        help="inputs keyed by input name for every quantize pass that sets no calibration",
    )


def _add_instrument_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ledger-after-all",
        action="store_true",
        help="print the compression ledger (bytes, non-zeros, bits per weight; with "
        "--target a static estimate of cycles and energy) after the import and after "
        "every pass to stderr, with what the pass changed",
    )
    p.add_argument(
        "--time-passes",
        action="store_true",
        help="print the wall time of the import, every pass, the encoding and the output "
        "to stderr at the end",
    )


def _add_report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--report",
        action="store_true",
        help="print the compression ledger (bits per layer, compression rates) to stdout, "
        "after the IR when there is no -o",
    )
    p.add_argument(
        "--report-json",
        metavar="FILE",
        default=None,
        help="write the compression ledger as JSON to FILE",
    )


def _report(module, args) -> None:
    """The compression ledger for --report (stdout) and --report-json (a file)."""
    if not (getattr(args, "report", False) or getattr(args, "report_json", None)):
        return
    import json

    from dlhwc.compiler.compression.ledger import ledger
    from dlhwc.spec.fileio import write_atomic

    table = ledger(module)
    if args.report_json:
        write_atomic(args.report_json, json.dumps(table.to_json(), indent=2) + "\n")
    if args.report:
        sys.stdout.write(table.format_table())


class _TargetNames:
    """The registered targets' names, looked up only when a help text shows them (the
    entry-point scan would otherwise cost every command its start-up)."""

    def __str__(self) -> str:
        from dlhwc.spec.targets import target_names

        return ", ".join(target_names())


def _add_target_option(p: argparse.ArgumentParser, help: str, required: bool = False) -> None:
    """``--target``; ``%(targets)s`` in ``help`` shows the registered targets."""
    action = p.add_argument("--target", required=required, help=help)
    vars(action)["targets"] = _TargetNames()  # argparse formats help from vars(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlhwc",
        description="Compile ONNX models for modeled sparse inference accelerators.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compile", help="import an ONNX model and run the compile pipeline")
    p.add_argument("model", help="the ONNX model")
    p.add_argument(
        "--emit",
        default=None,
        help="the stage to stop at and write: onnx, comp; with --target also the target's "
        "dialect (eie, ese, ...), asm, dlhw (default: onnx, or dlhw with --target)",
    )
    _add_target_option(p, "compile for an accelerator: %(targets)s")
    p.add_argument("--hw", metavar="CONFIG.toml", help="hardware parameters of the target")
    _add_report_options(p)
    p.add_argument("-o", "--output", help="write the result here (default: print it)")
    _add_pass_options(p)
    _add_instrument_options(p)

    p = sub.add_parser("opt", help="run passes over a .mlir file")
    p.add_argument("input", help="the .mlir file")
    _add_report_options(p)
    p.add_argument("-o", "--output", help="write the result here (default: print it)")
    _add_pass_options(p)
    _add_instrument_options(p)

    p = sub.add_parser(
        "run", help="run a model in the reference interpreter, or a .dlhw in its simulator"
    )
    p.add_argument("model", help="an ONNX model, a .mlir file or a program container (.dlhw)")
    p.add_argument("--input", required=True, help=".npz keyed by input name, or .npy")
    p.add_argument("--output", help="write the outputs here (.npz keyed by output name)")
    p.add_argument(
        "--stats",
        metavar="FILE.json",
        help="(.dlhw) write the simulator's cycles, energy and efficiency as JSON",
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="(.dlhw) print the per-layer stats table to stdout (default: a one-line "
        "summary on stderr)",
    )

    p = sub.add_parser("report", help="the per-layer table of a program container")
    p.add_argument("program", help="the .dlhw container")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--input", help="simulate these inputs (.npz or .npy) and report")
    group.add_argument("--stats", metavar="FILE.json", help="report a stats file of `run`")
    p.add_argument(
        "--html",
        metavar="PAGE.html",
        help="also write a self-contained HTML page: weight histograms and codebooks, and "
        "with --input or --stats per-PE load and cycle and energy breakdowns against dense",
    )

    p = sub.add_parser("export", help="write a .mlir (or an imported ONNX model) as ONNX")
    p.add_argument("input", help="a .mlir file at the onnx or comp level, or an ONNX model")
    p.add_argument("-o", "--output", help="the ONNX file to write (required)")
    p.add_argument(
        "--quantize-as",
        choices=("qdq", "float"),
        default="qdq",
        help="comp.quantize as QuantizeLinear/DequantizeLinear (qdq, default) or as "
        "Mul/Round/Clip/Mul in float (float); both are exact",
    )

    p = sub.add_parser("eval", help="compare a compressed model with its float model")
    p.add_argument("model", help="the float model: an ONNX model or a .mlir file")
    p.add_argument("--data", required=True, help=".npz keyed by input name, or .npy")
    p.add_argument("--labels", metavar="KEY", help="the array of the data file with labels")
    p.add_argument(
        "--compressed",
        metavar="COMP.mlir",
        help="the compressed model (default: MODEL compiled with -p)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the numbers as JSON to FILE")
    _add_target_option(
        p,
        "also compile MODEL for this accelerator (%(targets)s) and report the program's "
        "outputs, simulated, next to the compressed IR's",
    )
    p.add_argument("--hw", metavar="CONFIG.toml", help="(--target) hardware parameters")
    _add_pass_options(p)

    p = sub.add_parser(
        "verify",
        help="run the same inputs through onnxruntime, every IR stage, the golden model and "
        "the simulator, and name the first stage and layer where the error jumps",
    )
    p.add_argument("model", help="the ONNX model")
    _add_target_option(p, "the accelerator: %(targets)s", required=True)
    p.add_argument("--input", required=True, help=".npz keyed by input name, or .npy")
    p.add_argument("--hw", metavar="CONFIG.toml", help="hardware parameters of the target")
    p.add_argument(
        "--tolerance-db",
        type=float,
        default=1.0,
        metavar="DB",
        help="how far a stage that should not lose accuracy (import, fold-constants, the "
        "lowering) may fall below the stage before in SQNR (default 1.0)",
    )
    p.add_argument(
        "--lossy-tolerance-db",
        type=float,
        default=None,
        metavar="DB",
        help="judge compression passes too, with this tolerance (default: report only)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the table as JSON to FILE")
    _add_pass_options(p)

    p = sub.add_parser("asm", help="assemble a program's text form (.s) into a .dlhw")
    p.add_argument("input", help="the assembly text (syntax: spec/asm.py)")
    p.add_argument("-o", "--output", required=True, help="the .dlhw container to write")

    p = sub.add_parser("disasm", help="print a .dlhw container as assembly text")
    p.add_argument("input", help="the .dlhw container")
    p.add_argument(
        "--show-encoding",
        action="store_true",
        help="append each instruction's 64-bit word as a '# 0x...' comment",
    )
    p.add_argument("-o", "--output", help="write the text here (default: print it)")

    _add_explore_parser(sub)

    p = sub.add_parser("passes", help="list the registered passes with their options")
    p.add_argument("--load-pass-plugin", action="append", default=[], metavar="FILE.py",
                   help="run FILE.py as Python code and list its passes too")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from dlhwc.spec.errors import DlhwcError, Terminated, on_sigterm_raise
    from dlhwc.spec.fileio import check_inputs, check_outputs

    on_sigterm_raise()
    try:
        inputs, outputs = _arg_paths(args)
        check_inputs(inputs)
        check_outputs(outputs, inputs)
        status = COMMANDS[args.command](args)
        sys.stdout.flush()  # a full device fails here, not silently at exit
        return status
    except DlhwcError as e:
        print(f"dlhwc: error: {e.message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:
        # The reader of stdout has gone (`dlhwc passes | head -1`): stop quietly, as a
        # program killed by SIGPIPE would.
        _drop_stdout()
        return 128 + 13
    except OSError as e:
        # The system refused a read or a write (a full disk, a permission): the user's
        # environment, not a bug. Without a file name it was stdout.
        print(f"dlhwc: error: {e.filename or '<stdout>'}: {e.strerror or e}", file=sys.stderr)
        if not e.filename:
            _drop_stdout()
        return EXIT_USER_ERROR
    except MemoryError:
        # An input that describes more data than the machine holds (a splat constant of
        # 10^12 elements): a limit of the machine, not a bug.
        print("dlhwc: error: out of memory: the input describes more data than this "
              "machine can hold", file=sys.stderr)  # fmt: skip
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("dlhwc: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("dlhwc: terminated", file=sys.stderr)
        return 128 + 15
    except Exception as e:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("DLHWC_TRACEBACK"):
            raise
        detail = " ".join(str(e).split())
        print(
            f"dlhwc: internal error (a bug in dlhwc): {type(e).__name__}: {detail} "
            "(set DLHWC_TRACEBACK=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL_ERROR


def _drop_stdout() -> None:
    """Send what is left in stdout's buffer to /dev/null, so that the exit does not fail
    on it again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


OUTPUT_ARGS = ("output", "stats", "report_json", "json", "html")
"""The arguments that name files a command writes (`report --stats` reads its file)."""
INPUT_ARGS = ("model", "input", "program", "data", "compressed", "hw", "calibration",
              "load_pass_plugin")  # fmt: skip
"""The arguments that name files a command reads: no output may overwrite them."""


def _arg_paths(args) -> tuple[list[str], list[str]]:
    """(the files the command reads, the files it writes), from its arguments."""
    paths: dict[str, list[str]] = {"in": [], "out": []}
    for name in INPUT_ARGS + OUTPUT_ARGS:
        value = getattr(args, name, None)
        side = "in" if name in INPUT_ARGS or (args.command, name) == ("report", "stats") else "out"
        paths[side].extend(value if isinstance(value, list) else [value] if value else [])
    return paths["in"], paths["out"]


def _threshold(args) -> int | None:
    return None if args.elide_threshold < 0 else args.elide_threshold


def _emit_module(module, args, report: bool = True, timer=None) -> None:
    from dlhwc.compiler.instrument import timed
    from dlhwc.compiler.irio import module_to_string
    from dlhwc.spec.fileio import write_atomic

    with timed(timer, "output"):
        if args.output:
            write_atomic(args.output, module_to_string(module))
        else:
            sys.stdout.write(module_to_string(module, _threshold(args)))
    if report:
        _report(module, args)


def _after_pass(args, target: str | None = None, config=None):
    """The after-pass hook of --print-ir-after-all and --ledger-after-all (None: neither);
    a ``target`` and its hardware ``config`` add the ledger's cycle and energy estimate."""
    from dlhwc.compiler.instrument import LedgerAfterAll, after_each
    from dlhwc.compiler.pipeline import IRDumper

    dump = IRDumper(elide_threshold=_threshold(args)) if args.print_ir_after_all else None
    ledger = None
    if getattr(args, "ledger_after_all", False):
        ledger = LedgerAfterAll(target=target, config=config)
    return after_each(dump, ledger)


def _timer(args):
    """The PassTimer of --time-passes, or None."""
    if not getattr(args, "time_passes", False):
        return None
    from dlhwc.compiler.instrument import PassTimer

    return PassTimer()


def _load_modules(timer, target: str | None = None) -> None:
    """With --time-passes: load the libraries the pipeline uses (onnx, xdsl, every pass,
    the target's back end) first, so that loading them is a row of its own rather than
    part of the first stage that needs them."""
    if timer is None:
        return
    from dlhwc.compiler.instrument import timed
    from dlhwc.spec.targets import targets

    with timed(timer, "load modules"):
        import dlhwc.compiler.frontend.onnx_importer  # noqa: F401
        from dlhwc.compiler.passes import dlhwc_passes

        for get in dlhwc_passes().values():
            get()
        if target in targets():
            targets()[target].builder.load()


def _print_timing(timer) -> None:
    if timer is not None:
        sys.stdout.flush()
        sys.stderr.write(timer.format())


def _passes_and_dumper(args):
    from dlhwc.compiler.pipeline import parse_pipeline
    from dlhwc.compiler.plugins import available_passes

    available = available_passes(args.load_pass_plugin)
    passes = parse_pipeline(args.pipeline, available) if args.pipeline else []
    if args.calibration:
        from dlhwc.compiler.passes.quantize import with_calibration

        passes, used = with_calibration(passes, args.calibration)
        if not used:
            print("dlhwc: note: --calibration unused: no quantize pass takes it", file=sys.stderr)
    return passes, _after_pass(args)


def cmd_compile(args) -> int:
    timer = _timer(args)
    _load_modules(timer, args.target)
    if args.target:
        status = _compile_for_target(args, timer)
    else:
        from dlhwc.compiler.pipeline import compile_model

        passes, dump = _passes_and_dumper(args)
        module = compile_model(args.model, passes, args.emit or "onnx", dump, timer)
        _emit_module(module, args, timer=timer)
        status = 0
    _print_timing(timer)
    return status


def _compile_for_target(args, timer=None) -> int:
    from dlhwc.compiler.instrument import timed
    from dlhwc.compiler.pipeline import compile_for_target
    from dlhwc.compiler.plugins import available_passes
    from dlhwc.spec.container import Container
    from dlhwc.spec.targets import target as get_target

    available = available_passes(args.load_pass_plugin)
    config = get_target(args.target).load_config(args.hw) if args.ledger_after_all else None
    dump = _after_pass(args, args.target, config)

    from dlhwc.compiler.passes.quantize import calibrating

    configure = calibrating(args.calibration)

    emit = args.emit or "dlhw"
    if emit == "dlhw" and not args.output:  # the default output: checked like -o
        from dlhwc.spec.fileio import check_outputs

        check_outputs([f"{Path(args.model).stem}.dlhw"], [args.model])
    report = getattr(args, "report", False) or getattr(args, "report_json", None)
    warnings: list[str] = []

    def after_compression(module) -> None:
        from dlhwc.compiler.numerics import uncalibrated_warning

        if report:
            _report(module, args)
        warnings.extend(uncalibrated_warning(module))

    result = compile_for_target(
        args.model, args.target, args.pipeline, available, emit, args.hw, dump, configure,
        after_compression=after_compression, timer=timer,
    )  # fmt: skip
    for line in warnings:
        print(f"dlhwc: {line}", file=sys.stderr)
    if not isinstance(result, Container):
        # The ledger was printed at the comp stage.
        _emit_module(result, args, report=False, timer=timer)
        return 0
    _print_placement(result)
    if emit == "asm":
        from dlhwc.spec.asm import disassemble

        with timed(timer, "output"):
            text = disassemble(result)
            if args.output:
                from dlhwc.spec.fileio import write_atomic

                write_atomic(args.output, text)
            else:
                sys.stdout.write(text)
        return 0
    output = args.output or f"{Path(args.model).stem}.dlhw"
    with timed(timer, "output"):
        result.write(output)
    print(f"dlhwc: wrote {output}", file=sys.stderr)
    return 0


def _print_placement(container) -> None:
    """Which op runs where (to stderr, so that stdout stays the program's)."""
    from dlhwc.spec.report import placement_lines, summary_lines

    header = {**container.header, "target": container.target}
    for line in placement_lines(header):
        print(line, file=sys.stderr)
    for line in summary_lines(header):
        print(f"dlhwc: {line}", file=sys.stderr)


def cmd_opt(args) -> int:
    from dlhwc.compiler.instrument import timed
    from dlhwc.compiler.irio import read_module
    from dlhwc.compiler.pipeline import after, apply_passes

    timer = _timer(args)
    _load_modules(timer)
    passes, dump = _passes_and_dumper(args)
    with timed(timer, "parse"):
        module = read_module(args.input)
    after(dump, "parse", module, timer)
    apply_passes(module, passes, dump, timer)
    _emit_module(module, args, timer=timer)
    _print_timing(timer)
    return 0


def load_program(path: str):
    """An ONNX model or a .mlir file, as an IR module."""
    if Path(path).suffix == ".mlir":
        from dlhwc.compiler.irio import read_module

        return read_module(path)
    from dlhwc.compiler.frontend.onnx_importer import import_file

    return import_file(path)


def _is_container(path: str) -> bool:
    """A program container: the .dlhw suffix, or the container's magic bytes."""
    if Path(path).suffix == ".dlhw":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"DLHW"
    except OSError:
        return False


def _simulator(program: str):
    """(the container at ``program`` loaded in its target's simulator, that module)."""
    from dlhwc.spec.container import Container
    from dlhwc.spec.targets import simulator_module

    container = Container.read(program)
    module = simulator_module(container.target, program)
    return module.Simulator(container, program), module


def _simulate(sim, input_path: str):
    """Run a loaded container on an input file; returns (outputs, stats)."""
    from dlhwc.spec.fileio import load_arrays

    names = [s.name for s in sim.symbols if s.kind == "input"]
    inputs = load_arrays(input_path, names[0] if len(names) == 1 else None)
    extra = sorted(set(inputs) - set(names))
    outputs, stats = sim.run({k: v for k, v in inputs.items() if k in names})
    if extra:
        print(
            f"dlhwc: note: ignoring arrays not among the program's inputs: {', '.join(extra)}",
            file=sys.stderr,
        )
    from dlhwc.spec.report import numerics_warnings

    for line in numerics_warnings(stats):
        print(f"dlhwc: {line}", file=sys.stderr)
    return outputs, stats


def _run_container(args) -> int:
    from dlhwc.spec.fileio import save_arrays, write_atomic

    sim, module = _simulator(args.model)
    outputs, stats = _simulate(sim, args.input)
    if args.output:
        save_arrays(args.output, outputs)
    else:
        _print_outputs(outputs)
    if args.stats:
        write_atomic(args.stats, stats.dumps())
    if args.report:
        sys.stdout.write(stats.format_table())
    else:
        print(f"dlhwc: {module.summary_line(stats)}", file=sys.stderr)
    return 0


def _print_outputs(outputs) -> None:
    import numpy as np

    with np.printoptions(precision=6, suppress=True, threshold=200):
        for name, value in outputs.items():
            print(f"{name}: shape {list(value.shape)} {value.dtype}")
            print(value)


def cmd_report(args) -> int:
    sim, module = _simulator(args.program)  # the program must be readable in any case
    stats = origin = None
    if args.stats:
        import json

        from dlhwc.spec.errors import DlhwcError

        try:
            data = json.loads(Path(args.stats).read_text())
        except FileNotFoundError:
            raise DlhwcError("no such stats file", file=args.stats) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DlhwcError(f"not a JSON file: {e}", file=args.stats) from None
        except RecursionError:
            raise DlhwcError("not a stats file: it nests too deeply", file=args.stats) from None
        if not isinstance(data, dict):
            target = sim.container.target.upper()
            raise DlhwcError(f"not an {target} stats file", file=args.stats)
        stats, origin = module.Stats.from_json(data, args.stats), f"stats file {args.stats}"
    elif args.input:
        _, stats = _simulate(sim, args.input)
        origin = f"simulated on {args.input}"
    page = None
    if args.html:  # made before anything is printed: a stats file it refuses prints nothing
        from dlhwc.compiler.report_html import program_page

        data = None if stats is None else stats.to_json()
        page = program_page(sim, args.program, data, origin, args.stats)
    sys.stdout.write(module.static_report(sim) if stats is None else stats.format_table())
    if page is not None:
        from dlhwc.spec.fileio import write_atomic

        write_atomic(args.html, page)
        print(f"dlhwc: wrote {args.html}", file=sys.stderr)
    return 0


def cmd_run(args) -> int:
    from dlhwc.compiler.functions import input_names, main_function
    from dlhwc.compiler.interpreters.interpreter import run_module
    from dlhwc.spec.fileio import load_arrays, save_arrays

    if _is_container(args.model):
        return _run_container(args)
    if args.stats or args.report:
        from dlhwc.spec.errors import DlhwcError

        raise DlhwcError("--stats and --report need a program container (.dlhw)")
    module = load_program(args.model)
    names = input_names(main_function(module))
    inputs = load_arrays(args.input, names[0] if len(names) == 1 else None)
    extra = sorted(set(inputs) - set(names))
    inputs = {k: v for k, v in inputs.items() if k in names}
    outputs = run_module(module, inputs, source=args.input)
    if extra:
        # After the run: a failing run prints its error alone.
        print(
            f"dlhwc: note: ignoring arrays not among the model's inputs: {', '.join(extra)}",
            file=sys.stderr,
        )
    if args.output:
        save_arrays(args.output, outputs)
    else:
        import numpy as np

        with np.printoptions(precision=6, suppress=True, threshold=200):
            for name, value in outputs.items():
                print(f"{name}: shape {list(value.shape)} {value.dtype}")
                print(value)
    return 0


def cmd_export(args) -> int:
    from dlhwc.spec.errors import DlhwcError

    if not args.output:
        raise DlhwcError("export needs -o FILE.onnx: where to write the model")
    from dlhwc.compiler.frontend.onnx_exporter import export_module
    from dlhwc.spec.fileio import write_atomic

    model = export_module(load_program(args.input), quantize_as=args.quantize_as)
    write_atomic(args.output, model.SerializeToString())
    if any(n.op_type == "QuantizeLinear" for n in model.graph.node):
        print(
            "dlhwc: note: onnxruntime's default QDQ optimizations requantize float weights "
            "next to QuantizeLinear/DequantizeLinear; for dlhwc's exact values run with "
            "session config session.disable_quant_qdq=1, or export with --quantize-as float",
            file=sys.stderr,
        )
    return 0


def cmd_eval(args) -> int:
    from dlhwc.spec.errors import DlhwcError

    if args.target:
        if args.compressed:
            raise DlhwcError(
                "eval --target compiles MODEL with -p (or the target's default pipeline); "
                "--compressed cannot be compiled for a target"
            )
    elif bool(args.pipeline) == bool(args.compressed):
        raise DlhwcError(
            "eval needs the compressed model: give either -p PIPELINE (to compile MODEL) "
            "or --compressed COMP.mlir" + (", not both" if args.pipeline else "")
        )
    elif args.hw:
        raise DlhwcError("--hw needs --target")
    from dlhwc.compiler.evaluate import compare, compare_program, format_report, split_data, to_json
    from dlhwc.compiler.functions import input_names, main_function
    from dlhwc.compiler.pipeline import apply_passes
    from dlhwc.spec.fileio import load_arrays, write_atomic

    float_module = load_program(args.model)
    names = input_names(main_function(float_module))
    arrays = load_arrays(args.data, names[0] if len(names) == 1 else None)
    inputs, labels, ignored = split_data(arrays, names, args.labels, args.data)
    program = None
    if args.target:
        comp_module, program = _compile_for_eval(args)
        described = f"{args.model} with -p '{args.pipeline or 'the target default'}'"
    elif args.compressed:
        comp_module, described = load_program(args.compressed), args.compressed
    else:
        passes, dump = _passes_and_dumper(args)
        comp_module = load_program(args.model)
        apply_passes(comp_module, passes, dump)
        described = f"{args.model} with -p '{args.pipeline}'"
    if ignored:
        print(
            f"dlhwc: note: ignoring arrays not among the model's inputs: {', '.join(ignored)}",
            file=sys.stderr,
        )
    result = compare(float_module, comp_module, inputs, labels, source=args.data)
    header = [("float model", args.model), ("compressed model", described)]
    if program is not None:
        from dlhwc.spec.report import numerics_warnings

        sim, _ = program
        outputs, stats = sim.run(inputs)
        for line in numerics_warnings(stats):
            print(f"dlhwc: {line}", file=sys.stderr)
        result["program"] = compare_program(float_module, outputs, inputs, labels, args.data)
        header.append(("program", f"{args.target.upper()} simulator (compiled as above)"))
    data = f"{args.data} ({result['samples']} samples"
    data += f", labels '{args.labels}')" if args.labels else ")"
    header.append(("data", data))
    sys.stdout.write(format_report(result, header))
    if args.json:
        info = {"float_model": args.model, "compressed_model": described, "data": args.data}
        info["labels"] = args.labels
        if args.target:
            info["target"] = args.target
        write_atomic(args.json, to_json({**info, **result}))
    return 0


def _compile_for_eval(args):
    """(the comp-stage IR, (simulator, its module)) of MODEL compiled for --target."""

    from dlhwc.compiler.numerics import uncalibrated_warning
    from dlhwc.compiler.pipeline import compile_for_target
    from dlhwc.compiler.plugins import available_passes
    from dlhwc.spec.container import Container
    from dlhwc.spec.targets import simulator_module

    compressed = []
    warnings: list[str] = []

    def after_compression(module) -> None:
        compressed.append(module.clone())
        warnings.extend(uncalibrated_warning(module))

    from dlhwc.compiler.passes.quantize import calibrating

    configure = calibrating(args.calibration)

    container = compile_for_target(
        args.model, args.target, args.pipeline, available_passes(args.load_pass_plugin),
        "dlhw", args.hw, None, configure, after_compression,
    )  # fmt: skip
    for line in warnings:
        print(f"dlhwc: {line}", file=sys.stderr)
    container = Container.from_bytes(container.to_bytes(), "<program>")
    module = simulator_module(container.target)
    return compressed[0], (module.Simulator(container, "<program>"), module)


def cmd_verify(args) -> int:
    from dlhwc.spec.errors import DlhwcError

    for option in ("tolerance_db", "lossy_tolerance_db"):
        value = getattr(args, option)
        if value is not None and not (value >= 0 and value != float("inf")):
            flag = "--" + option.replace("_", "-")
            raise DlhwcError(f"{flag} must be a finite number >= 0, not {value}")
    from dlhwc.compiler.evaluate import to_json
    from dlhwc.compiler.functions import input_names, main_function
    from dlhwc.compiler.numerics import uncalibrated_warning
    from dlhwc.compiler.plugins import available_passes
    from dlhwc.compiler.verify import format_report, verify
    from dlhwc.spec.fileio import load_arrays, write_atomic

    names = input_names(main_function(load_program(args.model)))
    arrays = load_arrays(args.input, names[0] if len(names) == 1 else None)
    ignored = sorted(set(arrays) - set(names))
    inputs = {k: v for k, v in arrays.items() if k in names}
    warnings: list[str] = []

    def on_compressed(module) -> None:
        warnings.extend(uncalibrated_warning(module))

    report = verify(
        args.model, args.target, inputs, args.pipeline, available_passes(args.load_pass_plugin),
        hw=args.hw, calibration=args.calibration, tolerance_db=args.tolerance_db,
        lossy_tolerance_db=args.lossy_tolerance_db, on_compressed=on_compressed,
    )  # fmt: skip
    for line in warnings:
        print(f"dlhwc: {line}", file=sys.stderr)
    if ignored:
        print(
            f"dlhwc: note: ignoring arrays not among the model's inputs: {', '.join(ignored)}",
            file=sys.stderr,
        )
    sys.stdout.write(format_report(report))
    if args.json:
        import json

        write_atomic(args.json, to_json(json.loads(json.dumps(report.to_json(), default=str))))
    return 0 if report.jump is None else EXIT_VERIFY_FAILED


def _option_text(option) -> str:
    """`name: type = default`; types come quoted from postponed annotations."""
    text = f"{option.name.replace('_', '-')}: {option.expected_type.strip(QUOTE)}"
    if option.default_value is not None:
        text += f" = {option.default_value}"
    return text


QUOTE = "'"


def cmd_passes(args) -> int:
    import inspect

    from xdsl.passes import get_pass_option_infos

    from dlhwc.compiler.plugins import available_passes

    for name, get in sorted(available_passes(args.load_pass_plugin).items()):
        cls = get()
        options = get_pass_option_infos(cls)
        opts = ", ".join(_option_text(o) for o in options)
        print(f"{name}" + (f"{{{opts}}}" if opts else ""))
        doc = inspect.getdoc(cls) or "(no documentation)"
        for line in doc.splitlines():
            print(f"    {line}".rstrip())
        print()
    return 0


def cmd_asm(args) -> int:
    from dlhwc.spec.asm import assemble_file

    assemble_file(args.input, args.output)
    return 0


def cmd_disasm(args) -> int:
    from dlhwc.spec.asm import disassemble_file

    text = disassemble_file(args.input, show_encoding=args.show_encoding, output=args.output)
    if not args.output:
        sys.stdout.write(text)
    return 0


# -- explore ------------------------------------------------------------------------------


def _add_explore_parser(sub) -> None:
    p = sub.add_parser(
        "explore",
        help="search per-layer sparsity and bits (and the machine) for the Pareto front of "
        "accuracy, size, cycles and energy (compiler/explore.py)",
    )
    p.add_argument("model", help="the float ONNX model")
    _add_target_option(p, "the accelerator: %(targets)s", required=True)
    p.add_argument("--train", required=True, metavar="TRAIN.npz",
                   help="training inputs and labels: retraining and calibration")  # fmt: skip
    p.add_argument("--data", required=True, metavar="DATA.npz",
                   help="evaluation inputs and labels: accuracy, cycles and energy")  # fmt: skip
    p.add_argument("--labels", default="labels", metavar="KEY",
                   help="the labels' key in both files (default labels)")  # fmt: skip
    p.add_argument("--max-drop", type=float, default=1.0, metavar="POINTS",
                   help="accuracy a point may lose against float, in points (default 1.0)")  # fmt: skip
    p.add_argument("--trials", type=int, default=40, metavar="N",
                   help="trials in the study (default 40); a rerun continues up to N")  # fmt: skip
    p.add_argument("--jobs", type=int, default=None, metavar="J",
                   help="trials at once in local worker processes (default: the cores)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, metavar="S", help="the search's seed")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="the study and its Pareto front (default <model>-explore)")  # fmt: skip
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run the trials on this Ray cluster (ray.init's address)")  # fmt: skip
    p.add_argument("--search-hw", action="store_true",
                   help="also search the number of PEs, the FIFO depth and load-balanced "
                   "pruning")  # fmt: skip
    p.add_argument("--hw", metavar="CONFIG.toml", help="the target's machine (the default "
                   "one, or the base of --search-hw)")  # fmt: skip
    p.add_argument("--epochs", type=int, default=20, metavar="E",
                   help="epochs of every retrain (default 20; 0: no retraining)")  # fmt: skip
    p.add_argument("--prune-steps", type=int, default=3, metavar="K",
                   help="prune in K steps, retraining after each (default 3)")  # fmt: skip
    p.add_argument("--lr", type=float, default=1e-3, help="retrain's learning rate (1e-3)")
    p.add_argument("--sampler", default="tpe", help="Optuna sampler: tpe (default), nsga2")
    p.add_argument("--html", metavar="PAGE.html", help="also write the Pareto front as a page")
    p.add_argument("--population", type=int, default=8, metavar="P",
                   help="trials proposed at once: NSGA-II's population, TPE's random start "
                   "(default 8)")  # fmt: skip


def _trial_text(outcome, feasible) -> str:
    """One trial's outcome in a few words, for the progress line."""
    if outcome.error is not None:
        return f"trial failed: {outcome.error}"
    return (
        f"{100 * outcome.accuracy:.2f}%, {outcome.rate:.1f}x, "
        f"{outcome.cycles:,.0f} cycles, {outcome.energy_pj / 1000:,.1f} nJ per vector"
        + ("" if feasible else " (over --max-drop)")
    )


def cmd_explore(args) -> int:
    from dlhwc.compiler.explore import Options, explore, format_front
    from dlhwc.spec import progress

    opts = Options(
        model=args.model, target=args.target, train=args.train, data=args.data,
        out=args.out or f"{Path(args.model).stem}-explore", labels=args.labels,
        max_drop=args.max_drop, trials=args.trials, jobs=args.jobs, seed=args.seed,
        ray=args.ray, search_hw=args.search_hw, hw=args.hw, epochs=args.epochs,
        prune_steps=args.prune_steps, lr=args.lr, sampler=args.sampler,
        population=args.population,
    )  # fmt: skip
    with progress.task("explore", opts.trials, "trials") as task:

        def show(done, total, number, outcome, feasible) -> None:
            task.update(done, f"trial {number}: {_trial_text(outcome, feasible)}")

        report = explore(opts, show)
    sys.stdout.write(format_front(report))
    print(f"dlhwc: wrote {Path(opts.out) / 'pareto.json'}", file=sys.stderr)
    if args.html:
        from dlhwc.compiler.report_html import pareto_page

        points = [
            {"accuracy": p["accuracy"], "compression": p["rate"], "cycles": p["cycles"],
             "energy": p["energy_pj"], "recipe": p["recipe"]}
            for p in report["points"]
        ]  # fmt: skip
        title = f"dlhwc explore: {report['model']} on {report['target']}"
        from dlhwc.spec.fileio import write_atomic

        write_atomic(args.html, pareto_page(points, title))
        print(f"dlhwc: wrote {args.html}", file=sys.stderr)
    return 0


COMMANDS = {
    "compile": cmd_compile,
    "opt": cmd_opt,
    "run": cmd_run,
    "report": cmd_report,
    "export": cmd_export,
    "eval": cmd_eval,
    "verify": cmd_verify,
    "passes": cmd_passes,
    "asm": cmd_asm,
    "disasm": cmd_disasm,
    "explore": cmd_explore,
}

if __name__ == "__main__":
    sys.exit(main())
