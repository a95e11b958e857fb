"""``python -m stepaudio_core.testing tiny-bundle OUT_DIR``: write a tiny random model folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __doc__ as package_doc
from .bundle import write_tiny_bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stepaudio_core.testing", description=package_doc.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tiny = sub.add_parser("tiny-bundle", help="write a tiny random model folder in the real layout")
    tiny.add_argument("out_dir", type=Path)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--awq", action="store_true", help="also write Step-Audio-EditX-AWQ-4bit/ (the LM 4-bit packed)")
    args = parser.parse_args(argv)
    path = write_tiny_bundle(args.out_dir, seed=args.seed, awq=args.awq)
    print(f"wrote a tiny Step-Audio-EditX model folder to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
