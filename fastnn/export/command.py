"""python -m fastnn.export MODEL.npz OUT.onnx: a saved model as an ONNX file, to serve with
onnxruntime or any other ONNX runtime, without fastnn. See fastnn.export.onnx for the graph's
input (--input) and outputs; the command prints them in a line once the file is written.

Exit status: 0 written; 1 the model file cannot be used or exported, the onnx package is
missing, or the write failed (nothing is left half-written); 2 wrong arguments (including an
OUT that cannot be written); 130 Ctrl-C (nothing written).
"""

from __future__ import annotations

import argparse
import sys

from fastnn.core import interrupt
from fastnn.export.onnx import INPUTS, check_path, require_onnx, write_onnx
from fastnn.files.persist import ModelFileError
from fastnn.saved import load
from fastnn.tools import add_version

EXIT_UNUSABLE = 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastnn.export",
        description="Write a saved model as an ONNX file (needs the onnx extra).",
        epilog="Exit status: 0 written, 1 unusable model file, missing onnx package or failed "
        "write, 2 bad arguments, 130 Ctrl-C.",
    )
    add_version(p)
    p.add_argument(
        "model", help="a model file written by an estimator's save or fastnn.train --save"
    )
    p.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write (replaced if it exists)")
    p.add_argument(
        "--input",
        choices=INPUTS,
        help="what the graph takes: uint8 pixels 0..255 (scaled inside the graph) or floats of "
        "the model's dtype (default: pixels for 784 features, else floats)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_path(args.out)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        require_onnx()  # before reading the model: nothing can be written without it
        proto = write_onnx(load(args.model), args.out, input=args.input)
    except KeyboardInterrupt:
        print("fastnn.export: interrupted; nothing was written", file=sys.stderr)
        return interrupt.EXIT_INTERRUPTED
    except (ModelFileError, ImportError, ValueError) as exc:
        print(f"fastnn.export: error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except OSError as exc:  # e.g. the disk filled up: the check of OUT could not tell
        reason = exc.strerror or exc
        print(f"fastnn.export: error: could not write {args.out}: {reason}", file=sys.stderr)
        return EXIT_UNUSABLE
    from fastnn.export.graph import signature  # imports onnx, which is there by now

    print(f"wrote {args.out}: {signature(proto)}")
    return 0
