"""Logging for the command line and its worker processes: our progress lines, the libraries quiet."""

from __future__ import annotations

import logging
import warnings


def configure_logging(verbose: bool) -> None:
    """INFO lines from textbench; library logs and progress bars only with ``verbose``. Imports the
    libraries it quiets, so it runs after the command line has been checked."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not verbose:
        import datasets
        import transformers

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        for noisy in ("httpx", "urllib3", "filelock", "alembic", "mlflow"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    warnings.filterwarnings("ignore", message=".*padding='same' with even kernel.*")
