"""textbench: which text-classifier family wins on your data, with which settings, by how much.

The repository root is this package (``pyproject.toml`` maps it onto the name ``textbench``), so an
install exposes ``textbench.core``, ``textbench.spaces``, ``textbench.search``, ``textbench.reports``
and claims no generic top-level names; ``python benchmark.py`` from a checkout aliases the checkout
as ``textbench`` (``benchmark.py``'s first lines).
"""
