"""The training run's logs (:mod:`cfdseed.train`): rank 0's ``log.csv`` and ``metrics.csv`` (kept
consistent with the checkpoint on resume), TensorBoard, the progress bar and ``losses.png``."""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Mapping
from pathlib import Path

from .config import Config

__all__ = ["LOSSES", "LOG_FIELDS", "TrainLogger", "plot_losses"]

log = logging.getLogger(__name__)

#: The losses the loop logs, in the order it gathers them; ``log.csv``'s columns around them.
LOSSES = ("loss_c", "loss_g", "wasserstein", "gp", "physics", "spectrum", "innovation", "lag", "replay", "uv")
LOG_FIELDS = ["iteration", *LOSSES, "it_per_s", "time_s"]


class TrainLogger:
    """Rank-0 CSV / TensorBoard / progress output; history kept for the PNG."""

    def __init__(self, out: Path, cfg: Config, start: int, total: int, active: bool) -> None:
        self.active = active
        self.rows: list[dict[str, float]] = []
        self.metric_rows: list[dict[str, float]] = []
        self.bar = None
        self.tb = None
        if not active:
            return
        self.csv_path, self.metrics_path = out / "log.csv", out / "metrics.csv"
        self.rows = self._keep(self.csv_path, start)
        self.metric_rows = self._keep(self.metrics_path, start)
        self._rewrite(self.csv_path, self.rows, LOG_FIELDS)
        if self.metric_rows:
            self._rewrite(self.metrics_path, self.metric_rows, list(self.metric_rows[0]))
        elif self.metrics_path.exists():
            self.metrics_path.unlink()
        if cfg.log.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"), purge_step=start + 1)
            except ImportError:
                log.warning("log.tensorboard=true but tensorboard is not installed; skipping it")
        if cfg.log.progress:
            try:
                from tqdm import tqdm
            except ImportError:
                log.warning("log.progress=true but tqdm is not installed; no progress bar")
            else:
                self.bar = tqdm(total=total, initial=start, desc="train", unit="it", dynamic_ncols=True)

    @staticmethod
    def _keep(path: Path, start: int) -> list[dict[str, float]]:
        # rows written after the checkpoint we resume from are dropped (they will be redone)
        if start == 0 or not path.exists():
            return []
        with open(path, newline="") as fh:
            # a column added since the run began reads as NaN in its earlier rows
            return [{k: float(v) if v not in ("", None) else math.nan for k, v in r.items()}
                    for r in csv.DictReader(fh) if float(r["iteration"]) <= start]

    @staticmethod
    def _rewrite(path: Path, rows: list[dict[str, float]], fields: list[str]) -> None:
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)

    @staticmethod
    def _append(path: Path, row: Mapping[str, float], fields: list[str]) -> None:
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            if new:
                w.writeheader()
            w.writerow(row)

    def row(self, row: dict[str, float]) -> None:
        if not self.active:
            return
        self.rows.append(row)
        self._append(self.csv_path, row, LOG_FIELDS)
        if self.tb is not None:
            for k, v in row.items():
                if k != "iteration":
                    self.tb.add_scalar(f"train/{k}", v, int(row["iteration"]))

    def metrics(self, it: int, values: Mapping[str, float]) -> None:
        if not self.active:
            return
        row = {"iteration": float(it), **{k: float(v) for k, v in sorted(values.items())}}
        old = list(self.metric_rows[0]) if self.metric_rows else []
        fields = old + [k for k in row if k not in old]
        self.metric_rows = [{k: r.get(k, math.nan) for k in fields} for r in [*self.metric_rows, row]]
        if self.metric_rows[:-1] and fields != old:  # a metric added since the run began: NaN before
            self._rewrite(self.metrics_path, self.metric_rows, fields)
        else:
            self._append(self.metrics_path, self.metric_rows[-1], fields)
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"val/{k}", float(v), it)

    def progress(self, vals: Mapping[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss_c=f"{vals['loss_c']:.3g}", W=f"{vals['wasserstein']:.3g}",
                                 gp=f"{vals['gp']:.3g}", refresh=False)

    def close(self, out: Path, plot: bool) -> None:
        if not self.active:
            return
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if plot and self.rows:
            try:  # a figure is not worth a failed run: close runs on rank 0 alone, after the last collective
                plot_losses(self.rows, out / "losses.png")
            except Exception:  # noqa: BLE001
                log.exception("could not write %s", out / "losses.png")


def plot_losses(rows: list[dict[str, float]], path: Path) -> None:
    from .report import figure

    it = [r["iteration"] for r in rows]
    fig = figure(7, 6)
    a, b = fig.subplots(2, 1, sharex=True)
    a.plot(it, [r["wasserstein"] for r in rows], label="Wasserstein estimate")
    a.plot(it, [r["gp"] for r in rows], label="gradient penalty")
    a.legend()
    b.plot(it, [r["loss_c"] for r in rows], label="critic loss")
    b.plot(it, [r["loss_g"] for r in rows], label="generator loss")
    b.set_xlabel("generator iteration")
    b.legend()
    fig.savefig(path, dpi=100)
