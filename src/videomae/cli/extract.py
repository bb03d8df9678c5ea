"""``videomae-extract``: pooled VideoMAE features of every video in a list, into one ``.npy``.

Usage::

    videomae-extract CKPT LIST --root DIR --out FEATS.npy [--batch-size 8] [--num-workers 2]
                     [--num-clips N] [--num-crops N] [--list-format auto]

``CKPT`` is any checkpoint :func:`videomae.checkpoints.load` reads. For a classifier the feature
is ``fc_norm`` of the mean-pooled tokens, or their plain mean for a classifier built with
``use_fc_norm=False`` (the input of the head); for a pretraining network the
mean over the tokens of the (normalized) encoder output. Features of a video's views (default one
centered clip, center crop) are averaged. The clip settings come from the checkpoint as in
``videomae-predict``.

``FEATS.npy`` holds float32 ``(N, D)``, row ``i`` for line ``i`` of the list; ``FEATS.paths.txt``
beside it lists the video paths in the same order. A video that cannot be decoded gets a NaN row
and an error line naming it; the exit status is then 1 (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from videomae.cli.predict import clip_dataset, load_for_inference, pick_device
from videomae.data.device import finish_batch
from videomae.data.layout import collate
from videomae.data.lists import LIST_FORMATS
from videomae.data.sampling import SAMPLING_CHOICES


def pooled_features(net: nn.Module, video: torch.Tensor) -> torch.Tensor:
    """Clip features ``(B, D)`` of ``video`` ``(B, C, T, H, W)``: a classifier's
    ``forward_features`` (``fc_norm`` of the token mean, or the plain mean without
    ``fc_norm``), or the token mean of a pretraining network's encoder."""
    if hasattr(net, "forward_features"):
        return net.forward_features(video)
    return net.encoder(video).mean(dim=1)


class _Tolerant(Dataset):
    """Items of a clip dataset, or a zero video and ``ok = False`` (with the error) when a video
    cannot be read, so that every list line keeps its row."""

    def __init__(self, dataset: Any, views: int, clip: Any) -> None:
        self.dataset = dataset
        self.shape = (views, 3, clip.num_frames, clip.img_size, clip.img_size)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        try:
            return {"video": self.dataset[i]["video"], "ok": True, "error": "", "i": i}
        except (OSError, RuntimeError, ValueError) as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            video = torch.zeros(self.shape, dtype=torch.uint8)
            return {"video": video, "ok": False, "error": message, "i": i}


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="videomae-extract",
        description="Pooled VideoMAE features of every video in a list, saved as one .npy "
        "(one row per list line) with FEATS.paths.txt beside it.",
    )
    parser.add_argument("checkpoint", help="weights (.ckpt, .pth, HF dir, portable)")
    parser.add_argument("list", help="list file (path label per line) or folder tree")
    parser.add_argument("--root", required=True, help="folder that list paths are relative to")
    parser.add_argument("--out", required=True, help="output .npy file")
    parser.add_argument("--batch-size", type=int, default=8, help="videos per batch")
    parser.add_argument("--num-workers", type=int, default=2, help="decoding processes")
    parser.add_argument("--num-clips", type=int, default=1, help="temporal clips per video")
    parser.add_argument("--num-crops", type=int, default=1, help="spatial crops per clip")
    parser.add_argument("--sampling-rate", type=int, help="frame stride of dense sampling")
    parser.add_argument("--sampling", choices=SAMPLING_CHOICES, help="frame sampling")
    parser.add_argument("--list-format", default="auto", help=", ".join(LIST_FORMATS))
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--no-ema", action="store_true", help="ignore EMA weights")
    return parser


def paths_file(out: Path) -> Path:
    """The paths file beside ``out``: ``FEATS.npy`` -> ``FEATS.paths.txt``."""
    return out.with_suffix(".paths.txt")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 some video failed, 2 bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        for name in ("batch_size", "num_clips", "num_crops"):
            if getattr(args, name) < 1:
                parser.error(f"--{name.replace('_', '-')} must be >= 1")
        if args.num_workers < 0:
            parser.error("--num-workers must be >= 0")
    except SystemExit as exit_:
        return int(exit_.code or 0)
    out = Path(args.out)
    if out.suffix != ".npy":
        print(f"videomae-extract: error: --out must end in .npy, got {out}", file=sys.stderr)
        return 2
    from videomae.data.lists import read_list

    try:
        records = read_list(args.list, args.root, list_format=args.list_format)
        model = load_for_inference(
            args.checkpoint,
            use_ema=not args.no_ema,
            overrides={
                "num_clips": args.num_clips,
                "num_crops": args.num_crops,
                "sampling_rate": args.sampling_rate,
                "sampling": args.sampling,
            },
        )
    except (OSError, ValueError) as error:
        print(f"videomae-extract: error: {error}", file=sys.stderr)
        return 2
    if not records:
        print(f"videomae-extract: error: {args.list} lists no videos", file=sys.stderr)
        return 2
    device = pick_device(args.device)
    net = model.net.to(device)
    views = model.clip.num_clips * model.clip.num_crops
    dataset = _Tolerant(clip_dataset(records, model.clip), views, model.clip)
    loader = DataLoader(
        dataset, batch_size=args.batch_size, num_workers=args.num_workers, collate_fn=collate
    )
    rows: list[np.ndarray] = []
    failures = 0
    with torch.no_grad():
        for batch in loader:
            video = batch["video"].to(device)  # uint8 (B, V, C, T, H, W)
            video = finish_batch({"video": video})["video"]  # normalized on the device
            b, v = video.shape[:2]
            feats = pooled_features(net, video.flatten(0, 1)).float().view(b, v, -1).mean(dim=1)
            feats[~batch["ok"].to(device)] = float("nan")
            rows.append(feats.cpu().numpy())
            for ok, error, i in zip(batch["ok"], batch["error"], batch["i"], strict=True):
                if not ok:
                    failures += 1
                    path = records[int(i)].path
                    print(f"videomae-extract: cannot read {path}: {error}", file=sys.stderr)
    features = np.concatenate(rows).astype(np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, features)
    paths_file(out).write_text("".join(f"{r.path}\n" for r in records))
    print(
        f"{features.shape[0]} videos x {features.shape[1]} features -> {out} "
        f"(paths: {paths_file(out)}); {failures} failed"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
