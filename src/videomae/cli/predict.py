"""``videomae-predict``: the top-k classes of videos with a fine-tuned VideoMAE classifier.

Usage::

    videomae-predict CKPT VIDEO [VIDEO ...] [--labels labels.txt] [--json] [--top-k 5]
                     [--num-clips N] [--num-crops N] [--sampling-rate R] [--sampling dense|segment]

``CKPT`` is a fine-tuning checkpoint in any format of :func:`videomae.checkpoints.load` (our
Lightning ``.ckpt``, an official ``.pth``, an HF directory, our portable ``.safetensors``).
The clip settings come from the checkpoint: our Lightning checkpoints hold the data module's
hyper-parameters (``num_frames``, ``sampling_rate``, ``sampling``, ``img_size``, test views,
``short_side``) and the class names; for other formats ``num_frames`` and ``img_size`` come from
the model and the rest from the options (defaults: dense sampling every 4 frames, one view).
Options win over the checkpoint. With EMA weights in a Lightning checkpoint those are used
(``--no-ema``: the trained weights).

Every view (temporal clips x spatial crops) is classified; the softmax probabilities are averaged
per video. Output: per video its path and the top-k classes with scores, or with ``--json`` one
JSON document ``{"predictions": [...], "errors": [...]}``. A video that cannot be decoded gives an
error line naming it (on stderr) and the others are still predicted; the exit status is then 1
(2 for bad arguments or checkpoints).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from videomae.eval_outputs import average_views

DEFAULT_SAMPLING_RATE = 4
"""Frame stride when neither the checkpoint nor ``--sampling-rate`` gives one."""


@dataclass
class ClipSettings:
    """How clips are cut from a video for a model: the data settings of its training run."""

    num_frames: int
    img_size: int
    sampling_rate: int = DEFAULT_SAMPLING_RATE
    sampling: str = "dense"
    num_clips: int = 1
    num_crops: int = 1
    short_side: int | None = None
    backend: str = "auto"


@dataclass
class InferenceModel:
    """A loaded network with what inference needs beside the weights."""

    net: nn.Module
    kind: str
    clip: ClipSettings
    class_names: list[str] | None = None
    data_hparams: dict[str, Any] = field(default_factory=dict)


def _read_raw(path: Path) -> Mapping[str, Any]:
    """The raw dict of a ``.ckpt``/``.pth`` file or of a sharded FSDP checkpoint directory
    (tensors and plain data only), else ``{}``."""
    from videomae.checkpoints import is_sharded_checkpoint, read_sharded

    if is_sharded_checkpoint(path):
        return read_sharded(path)
    if path.is_dir() or path.suffix in (".safetensors", ".json"):
        return {}
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # videomae.checkpoints.load reports unreadable files with their reason
        return {}
    return raw if isinstance(raw, Mapping) else {}


def _label_file_names(path: Path) -> list[str]:
    """Class names from a file with one name per line (blank lines skipped)."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def load_for_inference(
    checkpoint: str | Path,
    *,
    kind: str | None = None,
    use_ema: bool = True,
    overrides: Mapping[str, Any] | None = None,
    labels: str | Path | None = None,
) -> InferenceModel:
    """Load ``checkpoint`` (any format) with its clip settings and class names, in eval mode.

    Args:
        checkpoint: the weights.
        kind: ``"classifier"`` or ``"pretrain"`` to insist on one (ValueError otherwise).
        use_ema: take the EMA weights (``ema.module.*``) of a Lightning checkpoint that has them.
        overrides: clip settings that win over the checkpoint's (``sampling_rate``,
            ``sampling``, ``num_clips``, ``num_crops``); None values are ignored.
        labels: a class-name file that wins over the names stored in the checkpoint.
    """
    from videomae.checkpoints import load, model_kind

    path = Path(checkpoint)
    net = load(path)
    found = model_kind(net)
    if kind is not None and found != kind:
        advice = (
            f"; fine-tune it first: python train.py experiment=<a fine-tuning experiment> "
            f"model.init_from={path}"
            if found == "pretrain"
            else ""
        )
        raise ValueError(f"{path} holds a {found} model; a {kind} is needed here{advice}")
    raw = _read_raw(path)
    state = raw.get("state_dict") if isinstance(raw.get("state_dict"), Mapping) else {}
    ema = {k[len("ema.module.") :]: v for k, v in state.items() if k.startswith("ema.module.")}
    if use_ema and ema:
        net.load_state_dict(ema)
    data: dict[str, Any] = dict(raw.get("datamodule_hyper_parameters") or {})
    img_size = data.get("img_size", net.img_size)
    clip = ClipSettings(
        num_frames=int(data.get("num_frames", net.num_frames)),
        img_size=int(img_size if isinstance(img_size, int) else img_size[0]),
        sampling_rate=int(data.get("sampling_rate", DEFAULT_SAMPLING_RATE)),
        sampling=str(data.get("sampling", "dense")),
        num_clips=int(data.get("test_num_clips", 1)),
        num_crops=int(data.get("test_num_crops", 1)),
        short_side=data.get("short_side"),
        backend=str(data.get("backend", "auto")),
    )
    for key, value in (overrides or {}).items():
        if value is not None:
            setattr(clip, key, value)
    names: list[str] | None = None
    if labels is not None:
        names = _label_file_names(Path(labels))
    elif isinstance(raw.get("videomae"), Mapping) and raw["videomae"].get("class_names"):
        names = list(raw["videomae"]["class_names"])
    elif data.get("label_names") and data.get("root"):
        candidate = Path(data["label_names"])
        candidate = candidate if candidate.is_absolute() else Path(data["root"]) / candidate
        if candidate.is_file():
            names = _label_file_names(candidate)
    net.eval()
    return InferenceModel(net=net, kind=found, clip=clip, class_names=names, data_hparams=data)


def clip_dataset(records: Sequence[Any], clip: ClipSettings, on_error: str = "raise") -> Any:
    """A :class:`videomae.data.datasets.VideoClipDataset` giving every test view of each record:
    item ``video`` ``(num_clips * num_crops, C, T, H, W)``."""
    from videomae.data.datasets import VideoClipDataset
    from videomae.data.transforms import TestTransform

    return VideoClipDataset(
        records,
        num_frames=clip.num_frames,
        sampling_rate=clip.sampling_rate,
        transform=TestTransform(clip.img_size, num_crops=clip.num_crops),
        train=False,
        sampling=clip.sampling,
        num_views=clip.num_clips,
        short_side=clip.short_side,
        backend=clip.backend,
        decode_threads=1,
        on_error=on_error,
        seed=0,
    )


def pick_device(name: str) -> torch.device:
    """``auto``: the GPU when there is one, else the CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def predict_views(net: nn.Module, views: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Class probabilities of one video from its views ``(V, C, T, H, W)`` (uint8 as the
    dataset gives them, normalized on ``device``): softmax per view, averaged -> ``(K,)``."""
    from videomae.data.device import finish_batch

    logits = net(finish_batch({"video": views.to(device)})["video"])
    return average_views(logits[None]).squeeze(0).cpu()


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    from videomae.data.sampling import SAMPLING_CHOICES

    parser = argparse.ArgumentParser(
        prog="videomae-predict",
        description="Top-k classes of videos with a fine-tuned VideoMAE classifier (every "
        "temporal clip x spatial crop, softmax averaged).",
    )
    parser.add_argument("checkpoint", help="fine-tuned weights (.ckpt, .pth, HF dir, portable)")
    parser.add_argument("videos", nargs="+", help="video files (or frame folders)")
    parser.add_argument("--labels", help="class names, one per line (default: the checkpoint's)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--top-k", type=int, default=5, help="classes per video (default 5)")
    parser.add_argument("--num-clips", type=int, help="temporal clips per video")
    parser.add_argument("--num-crops", type=int, help="spatial crops per clip")
    parser.add_argument("--sampling-rate", type=int, help="frame stride of dense sampling")
    parser.add_argument("--sampling", choices=SAMPLING_CHOICES, help="frame sampling")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--no-ema", action="store_true", help="ignore EMA weights")
    return parser


def _check_positive(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name in ("top_k", "num_clips", "num_crops", "sampling_rate"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 some video failed, 2 bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _check_positive(parser, args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    overrides = {
        "num_clips": args.num_clips,
        "num_crops": args.num_crops,
        "sampling_rate": args.sampling_rate,
        "sampling": args.sampling,
    }
    try:
        model = load_for_inference(
            args.checkpoint,
            kind="classifier",
            use_ema=not args.no_ema,
            overrides=overrides,
            labels=args.labels,
        )
    except (OSError, ValueError) as error:
        print(f"videomae-predict: error: {error}", file=sys.stderr)
        return 2

    from videomae.data.decoding import VideoDecodeError
    from videomae.data.lists import VideoRecord

    device = pick_device(args.device)
    model.net.to(device)
    names = model.class_names
    records = [
        VideoRecord(Path(v).expanduser().absolute(), -1, i + 1) for i, v in enumerate(args.videos)
    ]
    dataset = clip_dataset(records, model.clip)
    predictions: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for i, video in enumerate(args.videos):
        try:
            views = dataset[i]["video"]
        except (VideoDecodeError, OSError, RuntimeError, ValueError) as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            errors.append({"video": video, "error": message})
            print(f"videomae-predict: cannot read {video}: {message}", file=sys.stderr)
            continue
        probs = predict_views(model.net, views, device)
        scores, classes = probs.topk(min(args.top_k, probs.numel()))
        top = [
            {
                "label": int(c),
                "name": names[int(c)] if names and int(c) < len(names) else None,
                "score": round(float(s), 6),
            }
            for s, c in zip(scores, classes, strict=True)
        ]
        predictions.append({"video": video, "views": int(views.shape[0]), "top_k": top})
        if not args.json:
            print(video)
            for rank, entry in enumerate(top, 1):
                label = entry["name"] if entry["name"] is not None else str(entry["label"])
                print(f"  {rank}. {label:<30s} {entry['score']:.4f}")
    if args.json:
        print(json.dumps({"predictions": predictions, "errors": errors}, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
