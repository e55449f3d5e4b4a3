"""Run logging: TensorBoard event files with SB3's metric names, hyperparameters, and a console progress bar."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tqdm import tqdm


class RunLogger:
    """Writes scalars/text/hparams to ``run_dir`` and drives an optional progress bar.

    Args:
        run_dir: folder of the event files (None: no TensorBoard output).
        total_timesteps: length of the progress bar.
        progress_bar: show a tqdm bar with steps/s and mean return.
        purge_step: on resume, drop events logged after this step by the interrupted run.
    """

    def __init__(
        self,
        run_dir: str | Path | None,
        total_timesteps: int,
        progress_bar: bool,
        start_step: int = 0,
        purge_step: int | None = None,
    ):
        self.writer = None
        if run_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step)
        self.bar = tqdm(
            total=total_timesteps,
            initial=start_step,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            disable=not progress_bar,
        )
        self._bar_step = start_step
        self._postfix: dict[str, str] = {}

    def scalars(self, values: dict[str, float], step: int) -> None:
        """Log finite scalars under their SB3 names, and update the progress bar."""
        if self.writer is not None:
            for tag, value in values.items():
                if value is not None and math.isfinite(value):
                    self.writer.add_scalar(tag, value, step)
        self.bar.update(step - self._bar_step)
        self._bar_step = step
        # Keep the last known return on the bar: an iteration in which no episode ended has none.
        if values.get("rollout/ep_rew_mean") is not None:
            self._postfix["return"] = f"{values['rollout/ep_rew_mean']:.1f}"
        if "time/fps" in values:
            self._postfix["steps/s"] = f"{values['time/fps']:,.0f}"
        if self._postfix:
            self.bar.set_postfix(self._postfix, refresh=False)

    def text(self, tag: str, text: str, step: int) -> None:
        """Log text (TensorBoard's TEXT tab renders markdown; a code block keeps a transcript's layout)."""
        if self.writer is not None:
            self.writer.add_text(tag, "```\n" + text + "\n```", step)

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        """Record the run's hyperparameters (TensorBoard's HPARAMS tab) next to its final metrics."""
        if self.writer is None:
            return
        plain = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items()}
        self.writer.add_hparams(plain, {f"hparam/{k}": v for k, v in metrics.items()}, run_name=".")

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
