"""``videomae-convert``: convert VideoMAE weights between formats.

Usage::

    videomae-convert SRC DST.safetensors        # any format -> portable .safetensors + .json
    videomae-convert SRC --to hf DIR            # any format -> HF transformers directory

``SRC`` is an official VideoMAE / V2 ``.pth``, our Lightning ``.ckpt``, our portable
``.safetensors`` or an HF transformers directory (see :mod:`videomae.checkpoints`). ``--kind``,
``--num-frames``, ``--img-size`` and ``--num-classes`` override what is stored or inferred.
Exit status 0 on success, 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="videomae-convert",
        description="Convert VideoMAE weights (official .pth, Lightning .ckpt, portable "
        ".safetensors, HF directory) to the portable format or to an HF transformers directory.",
    )
    parser.add_argument("src", help="the checkpoint to read")
    parser.add_argument("dst", nargs="?", help="output .safetensors (portable format)")
    parser.add_argument("--to", choices=("portable", "hf"), default="portable", help="format")
    parser.add_argument("--kind", choices=("pretrain", "classifier"), help="model kind")
    parser.add_argument("--num-frames", type=int, help="frames per clip of the model")
    parser.add_argument("--img-size", type=int, help="frame side of the model")
    parser.add_argument("--num-classes", type=int, help="classes of the classifier head")
    parser.add_argument("--num-heads", type=int, help="encoder attention heads (unknown widths)")
    parser.add_argument(
        "--decoder-num-heads", type=int, help="decoder attention heads (unknown widths)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the converter; returns the exit status (2 on bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_intermixed_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.dst is None:
        parser.print_usage(sys.stderr)
        print("videomae-convert: error: give the output path DST", file=sys.stderr)
        return 2
    overrides: dict[str, Any] = {}
    for name in ("num_frames", "img_size", "num_classes", "num_heads", "decoder_num_heads"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)

    from videomae.checkpoints import load, save_hf, save_portable

    try:
        model = load(args.src, kind=args.kind, **overrides)
        save = save_hf if args.to == "hf" else save_portable
        out = save(model, args.dst)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"videomae-convert: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {type(model).__name__} to {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
