"""Scalars per iteration, to TensorBoard event files and to a CSV file with the same columns."""

from __future__ import annotations

import csv
import io
import os
from typing import Mapping

from torch.utils.tensorboard import SummaryWriter

from metarl.checkpoint import atomic_write_bytes
from metarl.errors import UsageError


def kept_rows(csv_path: str, start_iteration: int) -> tuple[list[str], list[dict[str, str]]] | None:
    """The header of ``progress.csv`` and its rows of iterations before ``start_iteration`` (None: no header).

    A last row cut short by a kill in the middle of its append is dropped; a row whose iteration is not a
    number raises a :class:`UsageError` naming the line.  Reads only: a resume checks the file with this
    before it changes anything in the run directory.
    """
    damaged = (f"{csv_path!r} is damaged ({{}}); restore it from a copy, or delete it to resume with the logs of "
               "earlier iterations lost (the checkpoint holds the run's state)")
    try:
        with open(csv_path, newline="", errors="replace") as fh:
            lines = list(csv.reader(fh))
    except csv.Error as exc:
        raise UsageError(damaged.format(f"not readable as CSV: {exc}")) from None
    if not lines or not lines[0]:
        return None
    header, body = lines[0], [row for row in lines[1:] if row]
    if "iteration" not in header:
        first = ", ".join(header)[:80]
        shown = repr(first) if first.isprintable() else "binary data"
        raise UsageError(damaged.format(f"its first line is not progress.csv's header: no 'iteration' column in {shown}"))
    if body and len(body[-1]) < len(header):  # a row cut short by a kill in the middle of its append
        body = body[:-1]
    kept = []
    for number, row in enumerate(body, start=2):
        record = dict(zip(header, row))
        try:
            iteration = int(float(record.get("iteration", "")))
        except (ValueError, OverflowError):  # text, or inf
            raise UsageError(
                f"{csv_path!r} line {number}: iteration {record.get('iteration')!r} is not a number; the "
                "file was edited or damaged: restore it (or delete that line) and resume again") from None
        if iteration < start_iteration:
            kept.append(record)
    return header, kept


class RunLogger:
    """Writes ``progress.csv`` and TensorBoard events under ``run_dir``.

    On resume, rows and events from iterations at or after ``start_iteration`` (written by an
    interrupted run after its last checkpoint) are dropped, so the logs match the resumed state.
    """

    def __init__(self, run_dir: str, start_iteration: int = 0) -> None:
        self.csv_path = os.path.join(run_dir, "progress.csv")
        self.tb_dir = os.path.join(run_dir, "tensorboard")
        self._columns: list[str] | None = None
        if os.path.exists(self.csv_path):
            self._truncate(start_iteration)
        self.writer = SummaryWriter(self.tb_dir, purge_step=start_iteration if start_iteration else None)

    def _truncate(self, start_iteration: int) -> None:
        kept = kept_rows(self.csv_path, start_iteration)
        if kept is not None:
            self._rewrite(*kept)

    def _rewrite(self, columns: list[str], rows: list[dict[str, str]]) -> None:
        """Replace progress.csv atomically with ``rows`` under the header ``columns``; adopt that header only
        once the file has it."""
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
        atomic_write_bytes(self.csv_path, out.getvalue().encode())
        self._columns = columns

    def log(self, iteration: int, scalars: Mapping[str, float]) -> None:
        for key, value in scalars.items():
            if value == value:  # NaN marks "not measured this iteration" (e.g. periodic evaluation)
                self.writer.add_scalar(key, value, iteration)
        self.writer.flush()
        row = {"iteration": iteration, **scalars}
        new_file = not os.path.exists(self.csv_path) or os.path.getsize(self.csv_path) == 0
        if self._columns is None:
            self._columns = list(row)
        added = [k for k in row if k not in self._columns]
        if added and new_file:  # nothing written yet (or the file is gone): the header below has every column
            self._columns = self._columns + added
        elif added:  # widen the file (a run resumed by a newer metarl that logs more or renamed scalars):
            with open(self.csv_path, newline="") as fh:  # earlier rows keep their values, new columns empty
                rows = list(csv.DictReader(fh))
            self._rewrite(self._columns + added, rows)
        with open(self.csv_path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self._columns)
            if new_file:
                w.writeheader()
            w.writerow(row)
            fh.flush()
            os.fsync(fh.fileno())

    def close(self) -> None:
        self.writer.close()
