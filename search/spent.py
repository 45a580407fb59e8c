"""The time a benchmark has spent running, kept across interruptions and resumes.

A budget counts running time only: a benchmark interrupted at 20 of 45 minutes has 25 left when it
is resumed, however long it sat in between (Ray Tune's ``time_budget_s`` counts the downtime, ray
#21038). Each run adds its own seconds to ``<run_dir>/time_spent.json``, written atomically (a temp
file renamed over it) after every trial and when the run ends, so a kill loses at most one trial's
worth of accounting.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

FILE = "time_spent.json"


class SpentClock:
    """Seconds spent by earlier runs (read from the file) plus this run's, since ``start()``."""

    def __init__(self, run_dir: str | Path, clock=time.monotonic):
        self.path = Path(run_dir) / FILE
        self.clock = clock
        self.runs = 0  # earlier runs, from the file
        self.before = self.read()
        self._start: float | None = None

    def read(self) -> float:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return 0.0
        self.runs = int(data.get("runs", 0))
        return float(data.get("seconds", 0.0))

    def start(self) -> None:
        self._start = self.clock()

    def this_run(self) -> float:
        return 0.0 if self._start is None else self.clock() - self._start

    def spent(self) -> float:
        """All running time so far, earlier runs included."""
        return self.before + self.this_run()

    def save(self) -> None:
        """Write the total so far (called after each trial and at the end; cheap, atomic)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"seconds": round(self.spent(), 3), "runs": self.runs + 1}))
        os.replace(tmp, self.path)
