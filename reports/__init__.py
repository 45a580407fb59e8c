"""Read a benchmark's studies -> tidy DataFrames -> figures -> one self-contained HTML report.

``collect`` is the data step, ``stats`` the numbers behind the verdict, ``figures`` the drawing
step and ``html`` the renderer. ``build_report(storage, name, out_dir)`` runs all four.
"""

from reports.html import build_report

__all__ = ["build_report"]
