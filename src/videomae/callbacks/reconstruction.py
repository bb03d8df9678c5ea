"""Reconstruction pictures: what the masked autoencoder sees and what it predicts.

Every ``every_n_epochs`` training epochs (and at the end of fit) the callback takes the first
``num_clips`` items of the validation set, masks them with the module's fixed validation mask
(``PretrainModule.draw_mask`` with ``val_mask_seed``, the masks of ``val/loss``), runs the network
and draws one row per clip: ``num_frames`` frames of the original, then of the masked input
(hidden tokens grey), then of the reconstruction (visible tokens original, masked ones
predicted, de-normalized as :func:`reconstruct` describes). Works with tube, random and dual
masking.

Above the panels a heading names them and says when the picture was drawn (epoch and step).
The picture is saved as ``<run folder>/reconstructions/epoch_XXX.png``, ``XXX`` the index of the
epoch its last training batch belonged to, counted from 0 as in the progress bar and the
checkpoint names (``epoch_000.png`` after the first epoch; run folder:
``trainer.default_root_dir``), and sent to the W&B (``wandb.Image``) and TensorBoard
(``add_image``) loggers when present, as ``val/reconstruction``. The forward pass runs on every
rank (so that FSDP's collectives match); only rank zero draws and writes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image, ImageDraw, ImageFont

from videomae.data.device import finish_batch
from videomae.models.masking import split_mask
from videomae.models.pretrain import pixel_tubelets, tubelet_stats, unpatchify

log = logging.getLogger(__name__)

__all__ = ["ReconstructionLogger", "reconstruct", "reconstruction_grid"]

SEPARATOR = 2
"""Pixels of white between the frames and the columns of the picture."""


@torch.no_grad()
def reconstruct(
    video: torch.Tensor,
    mask: torch.Tensor,
    pred: torch.Tensor,
    decoder_mask: torch.Tensor | None = None,
    *,
    tubelet_size: int,
    patch_size: int,
    normalize_target: bool,
    fill: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pictures of a masked reconstruction: ``(masked_input, reconstruction)`` in [0, 1].

    Both are float32 ``(B, 3, T, H, W)`` RGB frames. ``masked_input`` is the clip with the
    tokens masked for the encoder painted ``fill`` (grey). ``reconstruction`` keeps the visible
    tokens' original pixels and puts the decoder's prediction on the masked ones; with
    ``normalize_target`` the prediction is in per-tubelet standardized units and is mapped back
    with the *original* tubelet's per-channel mean and std (``pred * (std + 1e-6) + mean``, as
    the official VideoMAE visualization does: the picture shows the structure the model
    predicted, at the true brightness). With dual masking (``decoder_mask``), masked tokens
    that the decoder does not reconstruct stay ``fill``.

    Args:
        video: ImageNet-normalized ``(B, 3, T, H, W)``.
        mask: bool ``(B, N)``, True = masked for the encoder.
        pred: the network's prediction for ``mask`` (and ``decoder_mask``): ``(B, M, D)`` for
            the masked tokens (V1), ``(B, K, D)`` for the kept tokens (dual masking).
        decoder_mask: bool ``(B, N)``, True = not reconstructed by the decoder, or None (V1).
        tubelet_size, patch_size, normalize_target: the network's (its ``config``).
        fill: grey level of hidden tokens.
    """
    pixels = pixel_tubelets(video, tubelet_size, patch_size)  # (B, N, t*p*p, 3)
    batch_size, num_tokens = pixels.shape[:2]
    if decoder_mask is None:
        predicted_ids = split_mask(mask, num_tokens)[1]  # masked tokens, ascending
    else:
        predicted_ids = split_mask(decoder_mask, num_tokens)[0]  # kept tokens, ascending
    pred = pred.float().reshape(batch_size, predicted_ids.shape[1], -1, 3)
    if normalize_target:
        originals = torch.gather(
            pixels, 1, predicted_ids[:, :, None, None].expand(-1, -1, *pixels.shape[2:])
        )
        mean, scale = tubelet_stats(originals)
        pred = pred * scale + mean
    hidden = mask[:, :, None, None]
    masked_input = torch.where(hidden, torch.full_like(pixels, fill), pixels)
    index = predicted_ids[:, :, None, None].expand(-1, -1, *pixels.shape[2:])
    predicted = torch.zeros_like(pixels).scatter(1, index, pred)
    has_pred = torch.zeros_like(mask).scatter(1, predicted_ids, True)
    recon = torch.where((mask & has_pred)[:, :, None, None], predicted, masked_input)
    grid = (
        video.shape[2] // tubelet_size,
        video.shape[3] // patch_size,
        video.shape[4] // patch_size,
    )
    return (
        unpatchify(masked_input, grid, tubelet_size, patch_size).clamp(0, 1),
        unpatchify(recon, grid, tubelet_size, patch_size).clamp(0, 1),
    )


def reconstruction_grid(
    original: torch.Tensor,
    masked: torch.Tensor,
    recon: torch.Tensor,
    num_frames: int,
) -> np.ndarray:
    """One uint8 RGB picture ``(H_total, W_total, 3)``: a row per clip, three panels per row.

    Args:
        original, masked, recon: ``(B, 3, T, H, W)`` in [0, 1].
        num_frames: frames shown per panel, evenly spaced over ``T`` (at most ``T``).
    """
    batch, _, frames, height, width = original.shape
    shown = torch.linspace(0, frames - 1, min(num_frames, frames)).round().long()
    sep = SEPARATOR
    panel_w = len(shown) * (width + sep) - sep
    total_w = 3 * panel_w + 2 * 3 * sep
    total_h = batch * (height + sep) - sep
    canvas = torch.ones(3, total_h, total_w)
    for row in range(batch):
        top = row * (height + sep)
        for panel, clip in enumerate((original, masked, recon)):
            left0 = panel * (panel_w + 3 * sep)
            for col, frame in enumerate(shown.tolist()):
                left = left0 + col * (width + sep)
                canvas[:, top : top + height, left : left + width] = clip[row, :, frame].cpu()
    return (canvas.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


PANEL_TITLES = ("original", "masked input (hidden: grey)", "reconstruction")


def with_titles(picture: np.ndarray, heading: str, panels: int = 3) -> np.ndarray:
    """``picture`` (a :func:`reconstruction_grid`) under a white strip holding ``heading`` and,
    over each of its ``panels`` equal columns, the column's title."""
    font = ImageFont.load_default()
    line = 14
    height, width, _ = picture.shape
    canvas = Image.new("RGB", (width, height + 2 * line + SEPARATOR), "white")
    canvas.paste(Image.fromarray(picture), (0, 2 * line + SEPARATOR))
    draw = ImageDraw.Draw(canvas)
    draw.text((2, 0), heading, fill="black", font=font)
    panel_w = (width - 3 * SEPARATOR * (panels - 1)) // panels
    for i, title in enumerate(PANEL_TITLES[:panels]):
        draw.text((i * (panel_w + 3 * SEPARATOR) + 2, line), title, fill="black", font=font)
    return np.asarray(canvas)


class ReconstructionLogger(L.Callback):
    """Draw original / masked input / reconstruction of a few fixed validation clips.

    Args:
        every_n_epochs: draw after every n-th training epoch (and at the end of fit).
        num_clips: validation items drawn (the first ones of ``datamodule.val_set``).
        num_frames: frames shown per panel.
        dirname: folder under the run folder for the PNG files.
    """

    def __init__(
        self,
        every_n_epochs: int = 5,
        num_clips: int = 4,
        num_frames: int = 4,
        dirname: str = "reconstructions",
    ) -> None:
        super().__init__()
        if every_n_epochs < 1 or num_clips < 1 or num_frames < 1:
            raise ValueError(
                "callbacks.reconstruction: every_n_epochs, num_clips and num_frames must be >= 1, "
                f"got {every_n_epochs}, {num_clips}, {num_frames}"
            )
        self.every_n_epochs = every_n_epochs
        self.num_clips = num_clips
        self.num_frames = num_frames
        self.dirname = dirname
        self._drawn_step: int | None = None
        self._epoch_end: tuple[int, int] | None = None  # (epoch index, step) of the last epoch end
        self.last_path: Path | None = None

    def _clips(self, trainer: L.Trainer) -> torch.Tensor | None:
        """The first ``num_clips`` validation clips as the loader gives them (uint8), stacked
        ``(B, 3, T, H, W)``, or None."""
        datamodule = trainer.datamodule
        dataset = getattr(datamodule, "val_set", None)
        if dataset is None and datamodule is not None and hasattr(datamodule, "setup"):
            datamodule.setup("validate")
            dataset = getattr(datamodule, "val_set", None)
        if dataset is None or len(dataset) == 0:
            return None
        items = [dataset[i]["video"] for i in range(min(self.num_clips, len(dataset)))]
        return torch.stack(items)

    @torch.no_grad()
    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Path | None:
        """Draw the picture for the current epoch; return the PNG path (rank zero) or None."""
        if not hasattr(pl_module, "draw_mask") or not hasattr(
            getattr(pl_module, "net", None), "normalize_target"
        ):
            return None  # not a masked-autoencoder module (e.g. fine-tuning): nothing to draw
        video = self._clips(trainer)
        if video is None:
            log.warning("reconstruction picture skipped: no validation set")
            return None
        video = finish_batch({"video": video.to(pl_module.device)})["video"]  # normalized
        mask = pl_module.draw_mask(video.shape[0], video.device, seed=pl_module.val_mask_seed)
        was_training = pl_module.training
        pl_module.eval()
        try:
            with trainer.precision_plugin.forward_context():
                _, pred = pl_module(video, mask)
        finally:
            pl_module.train(was_training)
        net = pl_module.net
        geometry = {"tubelet_size": net.tubelet_size, "patch_size": net.patch_size}
        masked, recon = reconstruct(
            video,
            mask.encoder,
            pred,
            mask.decoder,
            normalize_target=net.normalize_target,
            **geometry,
        )
        original = unpatchify(pixel_tubelets(video, **geometry), net.grid_size, **geometry)
        original = original.clamp(0, 1)
        if not trainer.is_global_zero:
            return None
        epoch = self._epoch_index(trainer)
        heading = (
            f"epoch {epoch} (0-based), step {trainer.global_step}: validation clips "
            f"0-{video.shape[0] - 1}, one row each"
        )
        picture = with_titles(
            reconstruction_grid(original, masked, recon, self.num_frames), heading
        )
        folder = Path(trainer.default_root_dir) / self.dirname
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"epoch_{epoch:03d}.png"
        Image.fromarray(picture).save(path)
        self._send(trainer, picture)
        self.last_path = path
        log.info("reconstruction picture: %s", path)
        return path

    def _send(self, trainer: L.Trainer, picture: np.ndarray) -> None:
        """Log ``picture`` to the W&B and TensorBoard loggers."""
        caption = "rows: clips; panels: original | masked input | reconstruction"
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key="val/reconstruction",
                    images=[picture],
                    caption=[caption],
                    step=trainer.global_step,
                )
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(
                    "val/reconstruction", picture, trainer.global_step, dataformats="HWC"
                )

    def _epoch_index(self, trainer: L.Trainer) -> int:
        """The index of the epoch the last training batch belonged to (at the end of fit
        Lightning has already counted the next epoch)."""
        if self._epoch_end is not None and self._epoch_end[1] == trainer.global_step:
            return self._epoch_end[0]
        return trainer.current_epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Draw after every ``every_n_epochs``-th epoch."""
        if trainer.sanity_checking:
            return
        self._epoch_end = (trainer.current_epoch, trainer.global_step)
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        self.draw(trainer, pl_module)
        self._drawn_step = trainer.global_step

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Draw once more at the end of fit, unless nothing was trained since the last picture."""
        if trainer.fast_dev_run or self._drawn_step == trainer.global_step:
            return
        self.draw(trainer, pl_module)
