"""Durations on the command line and in reports: ``90m``, ``1h30m``, ``45s``, ``5400`` (seconds).

Plain text arithmetic, used by ``--time-budget`` (``search.search_settings``, ``search.plan``) and
by the report's budget section (``reports.stopping``), so it lives below both.
"""

from __future__ import annotations

import math
import re

UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(text: str | float | int) -> float:
    """``90m``, ``1h30m``, ``45s``, ``5400`` (seconds) -> seconds; ValueError on anything else."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        raw = str(text).strip().lower().replace(" ", "")
        try:
            seconds = float(raw)
        except ValueError:
            match = _DURATION.match(raw)
            if not raw or match is None or not any(match.groups()):
                raise ValueError(f"not a duration: {text!r} (use e.g. 90m, 1h30m, 45s or 5400)") from None
            seconds = sum(float(v) * UNITS[u] for v, u in zip(match.groups(), "hms", strict=True) if v)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds as ``1h05m``, ``12m30s`` or ``45s`` (for the terminal and the report)."""
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"
