"""Reconstruction pictures: what the masked autoencoder sees and what it predicts.

Every ``every_n_epochs`` training epochs (and at the end of fit) the callback takes the first
``num_clips`` items of the validation set, masks them with the module's fixed validation mask
(``PretrainModule.draw_mask`` with ``val_mask_seed``, the masks of ``val/loss``), runs the network
and draws one row per clip: ``num_frames`` frames of the original, then of the masked input
(hidden tokens grey), then of the reconstruction (visible tokens original, masked ones
predicted, de-normalized as :meth:`videomae.models.pretrain.VideoMAEPretrain.reconstruct`
describes). Works with tube, random and dual masking.

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

log = logging.getLogger(__name__)

__all__ = ["ReconstructionLogger", "reconstruction_grid"]

SEPARATOR = 2
"""Pixels of white between the frames and the columns of the picture."""


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
            getattr(pl_module, "net", None), "reconstruct"
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
        encoder_mask, decoder_mask = mask if isinstance(mask, tuple) else (mask, None)
        masked, recon = pl_module.net.reconstruct(video, encoder_mask, pred, decoder_mask)
        original = pl_module.net.unpatchify(pl_module.net.pixel_tubelets(video)).clamp(0, 1)
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
