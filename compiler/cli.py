"""The `dlhwc` command line.

    dlhwc compile model.onnx [--emit STAGE] [-p PIPELINE] [-o OUT] [--print-ir-after-all]
    dlhwc opt in.mlir -p PIPELINE [-o OUT] [--print-ir-after-all]
    dlhwc run model.onnx|in.mlir --input x.npy|inputs.npz [--output out.npz]
    dlhwc passes

Heavy modules (xDSL, onnx, onnxruntime) are imported only by the command that needs
them, so `dlhwc --help` starts fast. Errors in the user's input print one line and exit
with status 1; a bug in dlhwc prints one line too (set DLHWC_TRACEBACK=1 to see its
traceback) and exits with status 70.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_USER_ERROR = 1
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
        help="import FILE.py and register every ModulePass subclass it defines (repeatable)",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlhwc",
        description="Compile ONNX models for modeled sparse inference accelerators.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compile", help="import an ONNX model and run the compile pipeline")
    p.add_argument("model", help="the ONNX model")
    p.add_argument("--emit", default="onnx", help="the stage to stop at and write (onnx)")
    p.add_argument("-o", "--output", help="write the result here (default: print it)")
    _add_pass_options(p)

    p = sub.add_parser("opt", help="run passes over a .mlir file")
    p.add_argument("input", help="the .mlir file")
    p.add_argument("-o", "--output", help="write the result here (default: print it)")
    _add_pass_options(p)

    p = sub.add_parser("run", help="run a model in the reference interpreter")
    p.add_argument("model", help="an ONNX model or a .mlir file")
    p.add_argument("--input", required=True, help=".npz keyed by input name, or .npy")
    p.add_argument("--output", help="write the outputs here (.npz keyed by output name)")

    p = sub.add_parser("passes", help="list the registered passes with their options")
    p.add_argument("--load-pass-plugin", action="append", default=[], metavar="FILE.py")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from compiler.errors import DlhwcError

    try:
        return COMMANDS[args.command](args)
    except DlhwcError as e:
        print(f"dlhwc: error: {e.message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("dlhwc: interrupted", file=sys.stderr)
        return 130
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


def _threshold(args) -> int | None:
    return None if args.elide_threshold < 0 else args.elide_threshold


def _emit_module(module, args) -> None:
    from compiler.fileio import write_atomic
    from compiler.irio import module_to_string

    if args.output:
        write_atomic(args.output, module_to_string(module))
    else:
        sys.stdout.write(module_to_string(module, _threshold(args)))


def _passes_and_dumper(args):
    from compiler.pipeline import IRDumper, parse_pipeline
    from compiler.plugins import available_passes

    available = available_passes(args.load_pass_plugin)
    passes = parse_pipeline(args.pipeline, available) if args.pipeline else []
    dump = IRDumper(elide_threshold=_threshold(args)) if args.print_ir_after_all else None
    return passes, dump


def cmd_compile(args) -> int:
    from compiler.pipeline import compile_model

    passes, dump = _passes_and_dumper(args)
    module = compile_model(args.model, passes, emit=args.emit, dump=dump)
    _emit_module(module, args)
    return 0


def cmd_opt(args) -> int:
    from compiler.irio import read_module
    from compiler.pipeline import apply_passes

    passes, dump = _passes_and_dumper(args)
    module = read_module(args.input)
    if dump is not None:
        dump("parse", module)
    apply_passes(module, passes, dump)
    _emit_module(module, args)
    return 0


def load_program(path: str):
    """An ONNX model or a .mlir file, as an IR module."""
    if Path(path).suffix == ".mlir":
        from compiler.irio import read_module

        return read_module(path)
    from compiler.frontend.onnx_importer import import_file

    return import_file(path)


def cmd_run(args) -> int:
    from compiler.fileio import load_arrays, save_arrays
    from runtime.interpreters.interpreter import input_names, main_function, run_module

    module = load_program(args.model)
    names = input_names(main_function(module))
    inputs = load_arrays(args.input, names[0] if len(names) == 1 else None)
    extra = sorted(set(inputs) - set(names))
    if extra:
        print(
            f"dlhwc: note: ignoring arrays not among the model's inputs: {', '.join(extra)}",
            file=sys.stderr,
        )
        inputs = {k: v for k, v in inputs.items() if k in names}
    outputs = run_module(module, inputs, source=args.input)
    if args.output:
        save_arrays(args.output, outputs)
    else:
        import numpy as np

        with np.printoptions(precision=6, suppress=True, threshold=200):
            for name, value in outputs.items():
                print(f"{name}: shape {list(value.shape)} {value.dtype}")
                print(value)
    return 0


def cmd_passes(args) -> int:
    import inspect

    from xdsl.passes import get_pass_option_infos

    from compiler.plugins import available_passes

    for name, get in sorted(available_passes(args.load_pass_plugin).items()):
        cls = get()
        options = get_pass_option_infos(cls)
        opts = ", ".join(
            f"{o.name.replace('_', '-')}: {o.expected_type}"
            + (f" = {o.default_value}" if o.default_value is not None else "")
            for o in options
        )
        print(f"{name}" + (f"{{{opts}}}" if opts else ""))
        doc = inspect.getdoc(cls) or "(no documentation)"
        for line in doc.splitlines():
            print(f"    {line}".rstrip())
        print()
    return 0


COMMANDS = {"compile": cmd_compile, "opt": cmd_opt, "run": cmd_run, "passes": cmd_passes}

if __name__ == "__main__":
    sys.exit(main())
