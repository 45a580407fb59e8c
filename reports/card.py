"""The model card (README.md) of an exported model: what it is, how it was chosen, how good, how to redo it.

It is written from a ``textbench.use.Chosen`` (the model, its configuration's final-stage numbers and
the study's recorded settings), so every figure on it is one the report shows too.
"""

from __future__ import annotations

import math
from typing import Any

from textbench.core.settings import BUDGET_KEYS
from textbench.reports.stats import fmt_acc

BUDGET = (*BUDGET_KEYS, "target_trials", "sampler", "pruner", "seed", "top_k", "final_seeds")
DATA = ("dataset", "fingerprint", "tokenizer", "max_length", "train_size", "validation_size", "test_size")


def _spread(summary: dict[str, Any]) -> str:
    if not summary or not summary.get("n"):
        return "not evaluated"
    text = f"{fmt_acc(summary['mean'])} mean over {int(summary['n'])} seed{'s' if summary['n'] != 1 else ''}"
    if not math.isnan(summary.get("std", math.nan)):
        low, high = fmt_acc(summary["ci_low"]), fmt_acc(summary["ci_high"])
        text += f", std {fmt_acc(summary['std'])}, 95% CI {low} to {high}"
    return text


def _rows(pairs) -> str:
    return "\n".join(f"| {k} | `{v}` |" for k, v in pairs)


def model_card(chosen, folder_name: str, export_command: str, label_names: list[str], max_length: int) -> str:
    """Markdown text of the card for ``chosen`` exported as ``folder_name``."""
    c, settings = chosen, chosen.attrs.get("settings") or {}
    final = c.source == "final stage"
    which = (
        f"the final-stage run with seed {c.seed} of trial {c.trial_number}: among the seeds of the chosen "
        "configuration, the one with the best validation accuracy"
        if final
        else f"the search's best trial {c.trial_number} (seed {c.seed}); no final stage was run, so it has "
        "no test figure"
    )
    if c.source == "fine-tune":  # core.finetune.SOURCE
        which = (
            f"the pretrained `{c.params.get('model')}` fine-tuned at learning rate "
            f"{c.params.get('learning_rate')} (chosen on validation) with seed {c.seed}: among the "
            "reference's seeds, the one with the best validation accuracy"
        )
    rerun = f"python benchmark.py rerun --name {c.benchmark} --arch {c.family} --trial {c.trial_number}"
    rerun += f" --seed {c.seed}" if final else ""
    if c.source == "fine-tune":
        rerun = f"the benchmark command below, after deleting this model's folder models/{c.family}"
    versions = c.attrs.get("versions") or {}
    lines = [
        f"# textbench {c.family} text classifier (benchmark `{c.benchmark}`)",
        "",
        f"A `{c.family}` model from a textbench benchmark. It is {which}. The chosen configuration of a "
        "family is "
        "the final-stage configuration with the highest mean validation accuracy over seeds; the test split "
        "selected nothing.",
        "",
        "## Use",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        f'classifier = pipeline("text-classification", model="{folder_name}", trust_remote_code=True, '
        "truncation=True)",
        'classifier(["a wonderful, moving film", "two hours I will never get back"], top_k=None)',
        "```",
        "",
        "`trust_remote_code=True` runs `modeling_textbench.py` from this folder (the model's PyTorch "
        "classes; "
        "only torch and transformers are needed). Where textbench is importable, `import core.models` "
        "registers the model type and the call works without it. `truncation=True` cuts texts to "
        f"{max_length} "
        "tokens, as in training (without it long texts are read whole and predictions change).",
        "",
        f"With textbench: `python benchmark.py predict --name {c.benchmark} --arch {c.family} --input FILE`.",
        "",
        "## Labels",
        "",
        "| id | label |",
        "|---|---|",
        *[f"| {i} | `{name}` |" for i, name in enumerate(label_names)],
        "",
        "## Data",
        "",
        "| item | value |",
        "|---|---|",
        _rows((k, settings.get(k)) for k in DATA if k in settings),
        "",
        "The validation split was held out of the training data and drove early stopping and every "
        "selection.",
        "",
        "## Budget",
        "",
        "| setting | value |",
        "|---|---|",
        _rows((k, settings.get(k)) for k in BUDGET if k in settings),
        "",
        "## Hyperparameters",
        "",
        "| parameter | value |",
        "|---|---|",
        _rows(sorted(c.params.items())),
        "",
        "## Results",
        "",
        "| split | this model | chosen configuration |",
        "|---|---|---|",
        f"| validation accuracy | {fmt_acc(c.validation_accuracy)} | {_spread(c.validation)} |",
        f"| test accuracy | {fmt_acc(c.test_accuracy) if c.test_accuracy is not None else 'not evaluated'} | "
        f"{_spread(c.test)} |",
        "",
        "Confidence intervals are Student-t intervals over the final stage's seeds (clipped to [0, 1]).",
        "",
        "## Reproduce",
        "",
        f"- benchmark command: `{c.attrs.get('command', '(not recorded)')}`",
        f"- re-train this model and compare with the recorded numbers: `{rerun}`",
        f"- this export: `{export_command}`",
        f"- hardware: {c.attrs.get('hardware', '(not recorded)')}",
        "- versions: " + (", ".join(f"{k} {v}" for k, v in sorted(versions.items())) or "(not recorded)"),
        "",
    ]
    return "\n".join(lines)
