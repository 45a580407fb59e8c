"""A saved model as a folder that plain ``transformers`` loads, without textbench.

The textbench model types are registered with the Auto classes only when ``core.models`` is
imported. An exported folder therefore carries its own code, the Hugging Face way for custom
models: ``modeling_textbench.py`` (the family's config and model classes, written from their
source) and an ``auto_map`` in ``config.json`` naming them, so that

    transformers.pipeline("text-classification", model=DIR, trust_remote_code=True, truncation=True)

loads it in any process with torch and transformers. Where textbench is importable,
``import core.models`` and the same call without ``trust_remote_code`` work too.
"""

from __future__ import annotations

import ast
import inspect
import json
import shutil
import sys
from pathlib import Path

from transformers import PretrainedConfig, PreTrainedModel

from textbench.core.errors import UsageError
from textbench.core.families import Family

MODULE = "modeling_textbench"
OWN_PACKAGES = ("textbench",)  # textbench's own: never imported by exported code


def _own_classes(cls: type, stop: type) -> list[type]:
    """``cls`` and its bases up to (not including) the transformers base ``stop``, bases first."""
    return [
        c
        for c in reversed(cls.__mro__)
        if issubclass(c, stop) and c is not stop and not c.__module__.startswith("transformers")
    ]


def modeling_source(family: Family) -> str:
    """One self-contained module with ``family``'s config and model classes and the imports they use."""
    config_class, model_class = family.config_class, family.model_class
    classes = list(
        dict.fromkeys(
            _own_classes(config_class, PretrainedConfig) + _own_classes(model_class, PreTrainedModel)
        )
    )
    imports: list[str] = []
    for module in dict.fromkeys(sys.modules[c.__module__] for c in classes):
        source = inspect.getsource(module)
        for node in ast.parse(source).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                root = (node.module if isinstance(node, ast.ImportFrom) else node.names[0].name) or ""
                if root.split(".")[0] not in OWN_PACKAGES:
                    imports.append(ast.get_source_segment(source, node))
    imports = sorted(dict.fromkeys(imports), key=lambda line: "__future__" not in line)  # __future__ first
    header = (
        f'"""textbench {family.name} model, exported: the classes of {config_class.__module__} this family '
        "needs.\n\n"
        'Loaded by transformers through the auto_map of config.json (trust_remote_code=True)."""\n\n'
    )
    return (
        header
        + "\n".join(imports)
        + "\n\n\n"
        + "\n\n\n".join(inspect.getsource(c).rstrip() for c in classes)
        + "\n"
    )


def export_folder(
    model_dir: str | Path, dest: str | Path, family: Family | None, files: dict[str, str] | None = None
) -> Path:
    """Copy the saved model in ``model_dir`` to ``dest`` with its own code and an ``auto_map``; add ``files``
    (e.g. the model card README.md). ``dest`` must be new or empty; it is written whole or not at all.
    ``family`` None: a model type transformers knows (the fine-tuned reference), copied without code."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"--to {dest} exists and is not an empty folder: pass a new folder")
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(model_dir, tmp, ignore=shutil.ignore_patterns("TRIAL", "*.tmp-*"))
        if family is not None:
            (tmp / f"{MODULE}.py").write_text(modeling_source(family))
            config = json.loads((tmp / "config.json").read_text())
            config["auto_map"] = {
                "AutoConfig": f"{MODULE}.{family.config_class.__name__}",
                "AutoModelForSequenceClassification": f"{MODULE}.{family.model_class.__name__}",
            }
            (tmp / "config.json").write_text(json.dumps(config, indent=2))
        for name, text in (files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        if dest.exists():
            dest.rmdir()
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.replace(dest)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UsageError(
            f"cannot write {dest} ({exc.strerror or exc}): pass a writable --to folder"
        ) from None
    return dest
