"""Evaluation outputs of a classifier: per-video probabilities, metrics and the test files.

Plain functions on tensors and paths (no Lightning): the fine-tuning test loop
(:class:`videomae.modules.finetune.FinetuneModule`) and ``videomae-predict`` use them.

- :func:`average_views`: softmax per view, averaged per video;
- :func:`first_occurrences`: each video once when a distributed sampler repeated some;
- :func:`confusion_matrix`, :func:`classification_metrics`: top-1, top-k, mean class accuracy;
- :func:`write_test_files`: ``predictions.csv`` (:func:`write_predictions`),
  ``per_class_accuracy.csv`` (:func:`write_per_class`) and ``confusion_matrix.png``
  (:func:`plot_confusion`).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch


def average_views(logits: torch.Tensor) -> torch.Tensor:
    """Per-video class probabilities from the logits of its views: softmax per view, then the
    mean over views. ``(B, V, K)`` -> ``(B, K)``."""
    return logits.float().softmax(dim=-1).mean(dim=1)


def first_occurrences(index: torch.Tensor) -> torch.Tensor:
    """Positions of the first occurrence of each distinct value of ``index`` ``(N,)``, ordered by
    value: the rows to keep when a distributed sampler repeated some videos."""
    values, inverse = torch.unique(index, return_inverse=True)
    positions = torch.arange(index.numel(), device=index.device)
    first = torch.full((values.numel(),), index.numel(), dtype=torch.long, device=index.device)
    return first.scatter_reduce(0, inverse, positions, reduce="amin")


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(K, K)`` counts, row = true class, column = predicted class."""
    flat = labels.long() * num_classes + preds.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def classification_metrics(
    probs: torch.Tensor, labels: torch.Tensor, top_k: int = 5
) -> dict[str, Any]:
    """Top-1, top-``k`` and mean per-class accuracy of per-video ``probs`` ``(N, K)``.

    Returns ``acc1``, ``acc5`` (top-``min(k, K)``), ``mean_class_acc`` (the mean over classes
    with test videos of their recall), ``per_class`` ``(K,)`` (NaN for classes without videos),
    ``support`` ``(K,)`` and ``confusion`` ``(K, K)``; accuracies are fractions in [0, 1].
    """
    num_classes = probs.shape[1]
    k = min(top_k, num_classes)
    top = probs.topk(k, dim=1).indices
    hits = top == labels[:, None]
    confusion = confusion_matrix(top[:, 0], labels, num_classes)
    support = confusion.sum(dim=1)
    per_class = confusion.diag().double() / support.clamp(min=1).double()
    per_class[support == 0] = float("nan")
    present = support > 0
    return {
        "acc1": hits[:, 0].double().mean().item() if len(labels) else float("nan"),
        "acc5": hits.any(dim=1).double().mean().item() if len(labels) else float("nan"),
        "mean_class_acc": per_class[present].mean().item() if present.any() else float("nan"),
        "per_class": per_class,
        "support": support,
        "confusion": confusion,
    }


def write_predictions(
    path: Path,
    probs: torch.Tensor,
    labels: torch.Tensor,
    videos: Sequence[str],
    class_names: Sequence[str] | None,
    top_k: int = 5,
) -> None:
    """``predictions.csv``: one row per video: ``video, label, label_name``, then the top-``k``
    ``pred_i``, ``pred_name_i`` and ``score_i`` (mean softmax probability over the views)."""
    k = min(top_k, probs.shape[1])
    scores, preds = probs.topk(k, dim=1)

    def name(label: int) -> str:
        return class_names[label] if class_names and 0 <= label < len(class_names) else ""

    header = ["video", "label", "label_name"]
    header += [f"pred_{i + 1}" for i in range(k)] + [f"pred_name_{i + 1}" for i in range(k)]
    header += [f"score_{i + 1}" for i in range(k)]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in range(len(videos)):
            label = int(labels[row])
            top = [int(p) for p in preds[row]]
            writer.writerow(
                [videos[row], label, name(label)]
                + top
                + [name(p) for p in top]
                + [f"{float(s):.6f}" for s in scores[row]]
            )


def write_per_class(
    path: Path, metrics: Mapping[str, Any], class_names: Sequence[str] | None
) -> None:
    """``per_class_accuracy.csv``: ``class, name, videos, correct, accuracy`` per class."""
    confusion = metrics["confusion"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class", "name", "videos", "correct", "accuracy"])
        for k in range(confusion.shape[0]):
            support = int(metrics["support"][k])
            accuracy = float(metrics["per_class"][k])
            writer.writerow(
                [
                    k,
                    class_names[k] if class_names and k < len(class_names) else "",
                    support,
                    int(confusion[k, k]),
                    f"{accuracy:.6f}" if support else "",
                ]
            )


def plot_confusion(path: Path, confusion: torch.Tensor, class_names: Sequence[str] | None) -> None:
    """``confusion_matrix.png``: colours are the row-normalized confusion matrix (the fraction of
    each true class's videos predicted as each class; the diagonal is the recall), with the video
    counts written in the cells up to 20 classes and class names on the axes up to 60."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = confusion.double()
    rows = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    num_classes = confusion.shape[0]
    side = min(4 + 0.3 * num_classes, 40)
    fig, ax = plt.subplots(figsize=(side, side))
    image = ax.imshow(rows.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("fraction of the true class's videos")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    numbers = "; numbers: videos" if num_classes <= 20 else ""
    ax.set_title(
        f"confusion matrix, {int(counts.sum())} videos\n"
        f"colour: share of the true class (row){numbers}",
        fontsize=9,
    )
    if num_classes <= 60:
        names = list(class_names) if class_names else [str(k) for k in range(num_classes)]
        ax.set_xticks(range(num_classes), names[:num_classes], rotation=90)
        ax.set_yticks(range(num_classes), names[:num_classes])
        if num_classes <= 20:
            for i in range(num_classes):
                for j in range(num_classes):
                    if confusion[i, j]:
                        color = "white" if rows[i, j] > 0.5 else "black"
                        text = str(int(confusion[i, j]))
                        ax.text(j, i, text, ha="center", va="center", color=color, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_test_files(
    folder: Path,
    probs: torch.Tensor,
    labels: torch.Tensor,
    videos: Sequence[str],
    metrics: Mapping[str, Any],
    class_names: Sequence[str] | None,
    top_k: int = 5,
) -> None:
    """``predictions.csv``, ``per_class_accuracy.csv`` and ``confusion_matrix.png`` in
    ``folder`` (created if needed) from per-video ``probs`` ``(N, K)``, ``labels`` ``(N,)``,
    the video names and :func:`classification_metrics`' ``metrics``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_predictions(folder / "predictions.csv", probs, labels, videos, class_names, top_k)
    write_per_class(folder / "per_class_accuracy.csv", metrics, class_names)
    plot_confusion(folder / "confusion_matrix.png", metrics["confusion"], class_names)
