"""Performance measurements of the textbench harness, each next to a reference.

    python perf/run.py --quick                 # or: python -m perf --quick
    python perf/run.py                         # full mode (real IMDB sizes; much longer)
    python perf/run.py --quick --only a,c      # a subset

One module per measurement (throughput.py, pruning.py, ...), each with a ``KEY``, a ``TARGET``
and ``measure(profile, work) -> rows``; common.py holds what they share and runner.py runs them,
so a new measurement is one new file. Every row is ``{metric, value, baseline, ratio, target,
met, ...raw figures}``; the rows are printed as a table (paste it into README) and written to
perf/results/latest.json (git-ignored). Real data: ``TEXTBENCH_DATA=/work/shared/data``. Not a
test: nothing here asserts.
"""
