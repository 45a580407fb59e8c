"""(e) the flagship command vs. a naive ``Trainer.hyperparameter_search(backend="optuna")``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from perf.common import RESULTS, ROOT, Profile, cli_args, cli_study, data_root, prepared_data, row

KEY = "e"
TARGET = "flagship >= 3x faster than naive at equal or better best accuracy"
CHILD = "_naive"  # python -m perf _naive CONFIG: the naive search (a child process of this measurement)


def child(argv: list[str]) -> int:
    """Child process of (e): the course notes' workflow wrapped in ``Trainer.hyperparameter_search``:
    tokenization inside each trial, evaluation on the (capped) test split every EVAL steps at the
    Trainer's default eval batch size, checkpoints at each evaluation, best model by eval loss, early
    stopping, no pruning. Same search space and sampler seed as the flagship. Prints one JSON line."""
    config = json.loads(argv[0])
    import datasets
    import optuna
    import pandas as pd
    import torch
    import transformers
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer, TrainingArguments

    from textbench.core.families import split_params
    from textbench.core.models import build_model
    from textbench.core.training import compute_accuracy
    from textbench.search.study import make_sampler
    from textbench.spaces import FAMILIES

    start = time.perf_counter()
    torch.set_num_threads(config["threads"])
    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = Path(data_root())
    raw = {}
    for split, cap in (("train", config["train_samples"]), ("test", config["eval_samples"])):
        frame = pd.read_parquet(root / "imdb" / f"{split}.parquet")
        frame = frame.sample(frac=1.0, random_state=42).reset_index(drop=True)  # the notes shuffle
        raw[split] = datasets.Dataset.from_pandas(frame.iloc[:cap] if cap else frame, preserve_index=False)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(root / "bert-base-cased"))
    family = config["arch"]
    tokenizations = []
    holder = {}

    def tokenize(ds):
        return ds.map(
            lambda b: tokenizer(b["text"], max_length=128, truncation=True),
            batched=True,
            remove_columns=["text"],
        ).rename_column("label", "labels")

    def model_init(trial):
        params = (
            FAMILIES[family].notes_model_params()
            if trial is None
            else split_params(FAMILIES[family].suggest(trial))[0]
        )
        if trial is not None:  # tokenization inside each trial, as a notebook run per trial does it
            t0 = time.perf_counter()
            tokenized = {name: tokenize(ds) for name, ds in raw.items()}
            tokenizations.append(time.perf_counter() - t0)
            holder["trainer"].train_dataset = tokenized["train"]
            holder["trainer"].eval_dataset = tokenized["test"]
        return build_model(
            FAMILIES[family],
            vocab_size=len(tokenizer),
            num_labels=2,
            pad_token_id=tokenizer.pad_token_id,
            **params,
        )

    with tempfile.TemporaryDirectory(prefix="perf-naive-") as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            eval_strategy="steps",
            eval_steps=config["eval_steps"],
            logging_strategy="steps",
            logging_steps=config["eval_steps"],
            save_steps=config["eval_steps"],
            load_best_model_at_end=True,
            learning_rate=1e-3,
            per_device_train_batch_size=8,
            max_steps=config["max_steps"],
            report_to="none",
            disable_tqdm=True,
            save_total_limit=None,
            dataloader_pin_memory=False,
        )
        placeholder = tokenize(
            raw["test"].select([0])
        )  # Trainer() wants an eval set; each trial sets its own
        trainer = Trainer(
            model_init=model_init,
            args=args,
            compute_metrics=compute_accuracy,
            eval_dataset=placeholder,
            data_collator=DataCollatorWithPadding(tokenizer),
            callbacks=[EarlyStoppingCallback(early_stopping_patience=5)],
        )
        holder["trainer"] = trainer
        storage = f"sqlite:///{Path(tmp) / 'naive.db'}"
        best = trainer.hyperparameter_search(
            direction="maximize",
            backend="optuna",
            n_trials=config["trials"],
            hp_space=lambda trial: {"learning_rate": FAMILIES[family].suggest(trial)["learning_rate"]},
            sampler=make_sampler("tpe", config["seed"], config["trials"]),
            pruner=optuna.pruners.NopPruner(),
            storage=storage,
            study_name="naive",
        )
        study = optuna.load_study(study_name="naive", storage=storage)
    seen = [max(t.intermediate_values.values()) for t in study.trials if t.intermediate_values]
    print(
        json.dumps(
            {
                "wall_s": time.perf_counter() - start,
                "best_objective_test_accuracy": best.objective,
                "best_test_accuracy_seen_in_any_evaluation": max(seen) if seen else None,
                "best_params": best.hyperparameters,
                "tokenization_s": [round(t, 2) for t in tokenizations],
                "trials": len(study.trials),
                "trial_params": [t.params for t in study.trials],
                "trial_test_accuracy": [t.value for t in study.trials],
            }
        )
    )
    return 0


def accuracy_on_test(model_dir: Path, profile: Profile) -> float:
    """Accuracy of a saved model on the harness's (capped) test split: touched once, after the search."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification

    import textbench.core.models  # noqa: F401 - registers the families with the Auto classes
    from textbench.core.data import ArrayRows, PaddingCollator

    data = prepared_data(profile, RESULTS / "cache")
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    rows, collate = ArrayRows(data.splits["test"]), PaddingCollator(data.tokenizer)
    correct = 0
    with torch.no_grad():
        for start in range(0, len(rows), 256):
            batch = collate(rows.__getitems__(list(range(start, min(start + 256, len(rows))))))
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            correct += int(np.sum(logits.argmax(-1).numpy() == batch["labels"].numpy()))
    return correct / len(rows)


def measure(profile: Profile, work: Path) -> list[dict]:
    """(e) the flagship command vs. a naive Trainer.hyperparameter_search, same trials, budget and seed."""
    out = work / "flagship"  # empty: the flagship tokenizes once, inside the timed run
    shutil.rmtree(out, ignore_errors=True)
    family, trials = "cnn", profile.naive_trials
    budget = ("--max-steps", str(profile.naive_max_steps), "--eval-steps", str(profile.naive_eval_steps))
    args = cli_args(
        out,
        family=family,
        trials=trials,
        train_samples=profile.train_samples,
        eval_samples=profile.eval_samples,
        extra=("--name", "perf-flagship", "--threads", "1", "--no-baseline", *budget),
    )
    flagship = cli_study(args, str(out / "optuna.journal"), "perf-flagship", label="flagship", family=family)
    flagship_wall = flagship["wall_s"]
    flagship_test = accuracy_on_test(out / "perf-flagship" / "models" / f"{family}-best", profile)
    print(
        f"  flagship: {flagship_wall:.0f} s, best validation accuracy {flagship['best_value']:.4f}, "
        f"its test accuracy {flagship_test:.4f}",
        flush=True,
    )
    config = {
        "arch": family,
        "trials": trials,
        "train_samples": profile.train_samples,
        "eval_samples": profile.eval_samples,
        "max_steps": profile.naive_max_steps,
        "eval_steps": profile.naive_eval_steps,
        "seed": 42,
        "threads": 1,
    }
    start = time.perf_counter()
    # A plain script's tokenizer encodes batches on all cores (as the flagship's tokenization does).
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "true"}
    proc = subprocess.run(
        [sys.executable, "-m", "perf", CHILD, json.dumps(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    naive_wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"naive hyperparameter_search failed:\n{proc.stderr[-3000:]}")
    naive = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"  naive: {naive_wall:.0f} s, best objective (test accuracy, last evaluation) "
        f"{naive['best_objective_test_accuracy']:.4f}",
        flush=True,
    )
    speedup = naive_wall / flagship_wall
    equal_or_better = flagship_test >= naive["best_objective_test_accuracy"] - 1e-9
    return [
        row(
            "e wall time, flagship vs naive hyperparameter_search",
            flagship_wall,
            naive_wall,
            unit="s",
            higher_is_better=False,
            target=">= 3x faster",
            met=speedup >= 3,
            trials=trials,
            config=config,
            flagship=flagship,
            naive=naive | {"wall_s": round(naive_wall, 1)},
        ),
        row(
            "e test accuracy, flagship best model vs naive best objective",
            flagship_test,
            naive["best_objective_test_accuracy"],
            target="equal or better",
            met=equal_or_better,
            flagship_best_validation_accuracy=flagship["best_value"],
            naive_best_test_accuracy_any_evaluation=naive["best_test_accuracy_seen_in_any_evaluation"],
            note="the naive search optimises test accuracy (as the course notes did); the flagship selects "
            "on validation and its best model is evaluated on test once, here",
        ),
    ]
