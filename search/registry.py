"""MLflow Model Registry: each family's chosen model as a registered pyfunc model.

The model is the exported folder (``core.export``: weights, tokenizer, label names, its own code)
logged as an artifact of a "model from code" pyfunc (``search/pyfunc_model.py``), so that
``mlflow.pyfunc.load_model("models:/textbench-NAME-ARCH/1").predict(df)`` works offline and without
textbench. A version is registered once per model: registering the same chosen model again returns
the existing version.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from pathlib import Path

from textbench.core.errors import UsageError
from textbench.core.export import export_folder
from textbench.core.finetune import SOURCE as FINETUNE_SOURCE
from textbench.core.urls import redact
from textbench.search.tracking import ARCH, ROLE, restored_env
from textbench.spaces import get as get_family

log = logging.getLogger(__name__)

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
REQUIREMENTS = ("mlflow", "torch", "transformers", "pandas")


def _requirements() -> list[str]:
    from importlib import metadata

    return [f"{name}=={metadata.version(name)}" for name in REQUIREMENTS]


def _signature(label_names: list[str]):
    from mlflow.models.signature import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = [ColSpec("string", "label"), *[ColSpec("float", f"prob_{name}") for name in label_names]]
    return ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema(outputs))


def register(
    chosen, tracking_uri: str, artifact_root: Path, label_names: list[str], max_length: int, card: str
):
    """Log ``chosen``'s model (``textbench.use.Chosen``) as a pyfunc with ``card`` as its README and
    register it as a version of ``chosen.registered_name``; returns the model version (the existing
    one when this very model is already registered)."""
    from mlflow.tracking import MlflowClient

    name = chosen.registered_name
    identity = {
        "textbench.arch": chosen.family,
        "textbench.trial": str(chosen.trial_number),
        "textbench.seed": str(chosen.seed),
        "textbench.source": chosen.source,
        "textbench.fingerprint": str((chosen.attrs.get("settings") or {}).get("fingerprint")),
    }
    try:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        versions = client.search_model_versions(f"name = '{name}'")
    except Exception as exc:  # noqa: BLE001 - any client/transport error means the same to the user
        raise UsageError(
            f"MLflow at {redact(tracking_uri)} is not usable ({str(exc).splitlines()[0][:200]}): "
            "fix --tracking-uri / MLFLOW_TRACKING_URI"
        ) from None
    for version in versions:
        if all(version.tags.get(k) == v for k, v in identity.items()):
            return version
    with _fluent_uris(tracking_uri):
        return _log_and_register(client, chosen, tracking_uri, artifact_root, label_names, card, identity)


@contextlib.contextmanager
def _fluent_uris(uri: str):
    """Point MLflow's fluent API at ``uri`` for the block. ``mlflow.set_tracking_uri``/``set_registry_uri``
    also write MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI into os.environ, where every later subprocess
    (and any later benchmark in the same process) would inherit them: restore both afterwards."""
    import mlflow

    with restored_env("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        yield


def _log_and_register(
    client, chosen, tracking_uri: str, artifact_root: Path, label_names: list[str], card: str, identity: dict
):
    import mlflow

    name = chosen.registered_name
    experiment = client.get_experiment_by_name(chosen.benchmark)
    if experiment is None:
        location = None
        if not tracking_uri.startswith(("http", "databricks")):
            artifact_root.mkdir(parents=True, exist_ok=True)
            location = artifact_root.resolve().as_uri()
        experiment_id = client.create_experiment(chosen.benchmark, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    with tempfile.TemporaryDirectory(prefix="textbench-register-") as tmp:
        folder = export_folder(
            chosen.model_dir,
            Path(tmp) / "model",
            None if chosen.source == FINETUNE_SOURCE else get_family(chosen.family),  # a standard HF model
            {"README.md": card},
        )
        with mlflow.start_run(
            experiment_id=experiment_id,
            run_name=f"{name}-model",
            tags={ROLE: "model", ARCH: chosen.family, **identity},
        ) as run:
            mlflow.log_params(
                {
                    **{k: str(v) for k, v in chosen.params.items()},
                    "trial_number": chosen.trial_number,
                    "seed": chosen.seed,
                    "source": chosen.source,
                }
            )
            metrics = {
                "validation_accuracy": chosen.validation_accuracy,
                "test_accuracy": chosen.test_accuracy,
            }
            mlflow.log_metrics({k: v for k, v in metrics.items() if v is not None})
            with warnings.catch_warnings():  # the signature is given: an input example would add nothing
                warnings.filterwarnings("ignore", message=".*An input example was not provided")
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(PYFUNC_CODE),
                    artifacts={"model": str(folder)},
                    pip_requirements=_requirements(),
                    signature=_signature(label_names),
                )
    # Registered with the client, not log_model(registered_model_name=...), which prints to stderr.
    try:
        client.create_registered_model(name)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    version = client.create_model_version(
        name, source=info.model_uri, run_id=run.info.run_id, model_id=info.model_id
    )
    for key, value in identity.items():
        client.set_model_version_tag(name, version.version, key, value)
    log.info("registered %s version %s (run %s)", name, version.version, run.info.run_id)
    return client.get_model_version(name, version.version)
