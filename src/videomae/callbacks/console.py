"""What a run prints on the console: the model summary and the progress bar, without numbers
that mislead.

- :class:`ModelSummary`: Lightning's rich summary without its FLOPs column and total, which read
  0 unless the module has an ``example_input_array`` (ours has none: measured FLOPs and MFU are
  the throughput callback's ``perf/*`` metrics).
- :class:`ProgressBar`: Lightning's rich bar without the logger version (``v_num: 0.000``), and
  with metrics to 4 significant digits under short names (``train/loss_step`` -> ``loss``).
  During training its metrics are read every ``trainer.log_every_n_steps`` steps, as the loggers
  read them, not after every batch: reading a metric on the GPU waits for the step to finish,
  and Lightning's bar would make the host wait once per step.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichModelSummary, RichProgressBar
from lightning.pytorch.utilities.model_summary.model_summary import (
    get_formatted_model_size,
    get_human_readable_count,
)


class ModelSummary(RichModelSummary):
    """The layer table and parameter counts; FLOPs only when Lightning measured them."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int = 0,
        **summarize_kwargs: Any,
    ) -> None:
        """Print the table (columns as Lightning gives them, less an unmeasured FLOPs one)."""
        from rich import get_console
        from rich.table import Table

        columns = [(n, v) for n, v in summary_data if total_flops or n != "FLOPs"]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        for name, _ in columns:
            right = name in ("Params", "Params per Device", "FLOPs", "In sizes", "Out sizes")
            table.add_column(
                name,
                justify="right" if right else "left",
                no_wrap=name == "Name",
                style="dim" if name == " " else None,
            )
        for row in zip(*(values for _, values in columns), strict=True):
            table.add_row(*map(str, row))
        lines = [
            ("Trainable params", get_human_readable_count(int(trainable_parameters))),
            (
                "Non-trainable params",
                get_human_readable_count(int(total_parameters - trainable_parameters)),
            ),
            ("Total params", get_human_readable_count(int(total_parameters))),
            ("Total estimated model params size (MB)", get_formatted_model_size(model_size)),
            ("Modules in train mode", str(total_training_modes["train"])),
            ("Modules in eval mode", str(total_training_modes["eval"])),
        ]
        if total_flops:
            lines.append(("Total FLOPs", get_human_readable_count(int(total_flops))))
        console = get_console()
        console.print(table)
        for label, value in lines:
            console.print(f"[bold]{label}[/]: {value}")


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar showing the run's metrics, rounded, and no ``v_num``; in
    training, metrics read every ``trainer.log_every_n_steps`` steps (no host sync per step)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shown: dict[str, Any] | None = None
        self._read = True

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A new epoch's bar: the first batch reads the metrics (not the sanity check's)."""
        self._shown = None
        super().on_train_epoch_start(trainer, pl_module)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        """Advance the bar; read the metrics only at logging steps."""
        self._read = trainer.global_step % max(1, trainer.log_every_n_steps) == 0
        try:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        finally:
            self._read = True

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """The progress-bar metrics without ``v_num``, floats to 4 significant digits (those
        last read, between logging steps of training)."""
        if not self._read and self._shown is not None:
            return self._shown
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        shown = {_short(k): (f"{v:.4g}" if isinstance(v, float) else v) for k, v in metrics.items()}
        self._shown = shown
        return shown


def _short(name: str) -> str:
    """``train/loss_step`` -> ``loss`` (the bar is narrow; the loggers keep the full names)."""
    return name.removeprefix("train/").removesuffix("_step")
