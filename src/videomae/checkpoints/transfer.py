"""Start a classifier from a checkpoint: the encoder (and a head that fits) of any format."""

from __future__ import annotations

import logging
from pathlib import Path

from videomae.checkpoints import load
from videomae.checkpoints.build import check_shapes
from videomae.models.classifier import VideoMAEClassifier

log = logging.getLogger(__name__)


def init_classifier_from(net: VideoMAEClassifier, path: str | Path) -> dict[str, list[str]]:
    """Copy the encoder (and, when it fits, the head) of checkpoint ``path`` into ``net``.

    Any format of :func:`videomae.checkpoints.load`: our Lightning ``.ckpt``, an official
    ``.pth``, an HF directory, our portable file; a pretraining checkpoint gives its encoder (the
    decoder is dropped), a fine-tuning one its encoder and its head when ``num_classes`` agrees.
    The position table is rebuilt (or a learned one interpolated) for ``net``'s clip size.

    Returns:
        ``{"missing": [...], "unexpected": [...]}``: ``net``'s state-dict names that the file did
        not provide (they keep ``net``'s initialization: a new head, ``fc_norm``) and names of
        the file that ``net`` has no place for; both are logged.

    Raises:
        ValueError: naming the keys, when an encoder weight is missing from the file (or shapes
            do not fit, e.g. another ``patch_size``).
    """
    overrides = {
        "num_classes": net.num_classes,
        "num_frames": net.num_frames,
        "img_size": net.img_size,
    }
    try:
        source = load(path, kind="classifier", **overrides)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"model.init_from: {error}") from error
    except ValueError as error:
        raise ValueError(f"model.init_from={path}: {error}") from error
    fresh = set(getattr(source, "fresh_keys", ()))
    state = {k: v for k, v in source.state_dict().items() if k not in fresh}
    check_shapes(state, net.state_dict(), f"model.init_from={path}", "model.net")
    result = net.load_state_dict(state, strict=False)
    missing = list(result.missing_keys)
    unexpected = list(result.unexpected_keys)
    encoder_missing = [k for k in missing if not k.startswith(("head.", "head_norm.", "fc_norm."))]
    if encoder_missing:
        raise ValueError(
            f"model.init_from={path}: encoder weights missing from the checkpoint: "
            f"{encoder_missing}"
        )
    log.info(
        "model.init_from=%s: %d tensors loaded; missing (kept their initialization): %s; "
        "unexpected (ignored): %s",
        path,
        len(state) - len(unexpected),
        missing or "none",
        unexpected or "none",
    )
    return {"missing": missing, "unexpected": unexpected}
