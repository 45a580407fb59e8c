"""Logging for the command line and its worker processes: our progress lines, the libraries quiet."""

from __future__ import annotations

import logging
import os
import warnings


def configure_logging(verbose: bool) -> None:
    """INFO lines and bars from textbench; no library chatter or warnings a user cannot act on (each
    silenced narrowly, the reason beside it); ``verbose`` shows everything. Imports the libraries it
    quiets, so it runs after the command line has been checked."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    if verbose:
        return
    # MLflow sets its own logger's level when imported (INFO: "Creating initial MLflow database tables")
    # and draws a bar per artifact download while registering a model.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # --fix pins values with Optuna's PartialFixedSampler, "experimental" since Optuna 2.4 and stable in use.
    warnings.filterwarnings("ignore", message="PartialFixedSampler is experimental")
    # A --fix value outside the searched range: the command line warned once (search.fixed.out_of_range);
    # Optuna would repeat it for every trial.
    warnings.filterwarnings("ignore", message=r"Fixed parameter '.*' with value .* is out of range")
    # torch's Conv1d with padding='same' and an even filter_size pads one side more (a copy of the input
    # each step): intended, the search space includes even sizes.
    warnings.filterwarnings("ignore", message=".*padding='same' with even kernel.*")
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
