"""Read a benchmark's studies -> tidy DataFrames -> figures -> one self-contained HTML report.

``collect`` is the data step, ``stats`` the numbers behind the verdict, ``figures`` the drawing
step and ``html`` the renderer. ``build_report(storage, name, out_dir)`` runs all four.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textbench.reports.html import build_report

__all__ = ["build_report"]


def __getattr__(name: str) -> Any:
    """Import the renderer on first use: matplotlib and seaborn cost seconds the CLI's --help should not
    pay."""
    if name == "build_report":
        from textbench.reports.html import build_report

        return build_report
    raise AttributeError(f"module 'reports' has no attribute {name!r}")
