"""(a) training steps/s of the harness's Trainer path (core.training.fit) vs. a plain PyTorch loop,
CNN and RNN at batch 8 and 64."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from perf.common import RESULTS, Profile, load_average, prepared_data, row, seed_model

KEY = "a"
TARGET = "harness >= 0.8x plain loop at batch 8 (CNN and RNN)"


def trainer_step_timer():
    """A TrainerCallback that times training steps only: the intervals between consecutive
    ``on_step_end`` calls, skipping every interval that contains an evaluation or a save. Wall time,
    and process CPU time (robust to other processes on a shared machine when torch uses 1 thread)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.last = None
            self.dirty = False  # an evaluation/save happened since the last step end
            self.intervals: list[tuple[int, float, float]] = []  # (step, wall s, cpu s)

        def on_step_end(self, args, state, control, **kwargs):
            now = (time.perf_counter(), time.process_time())
            if self.last is not None and not self.dirty:
                self.intervals.append((state.global_step, now[0] - self.last[0], now[1] - self.last[1]))
            self.last, self.dirty = now, False

        def on_evaluate(self, args, state, control, **kwargs):
            self.dirty = True

        def on_save(self, args, state, control, **kwargs):
            self.dirty = True

        def rates(self, skip: int) -> tuple[float, float]:
            """(steps per wall second, steps per CPU second) after the first ``skip`` steps."""
            timed = [(wall, cpu) for step, wall, cpu in self.intervals if step > skip]
            return len(timed) / sum(w for w, _ in timed), len(timed) / sum(c for _, c in timed)

    return StepTimer()


def harness_throughput(family: str, data, batch: int, steps: int, warmup: int) -> dict:
    """core.training.fit exactly as a trial runs it (one evaluation, at the end), timed by callback."""
    from textbench.core.settings import TrainSettings
    from textbench.core.training import fit

    total = warmup + steps
    settings = TrainSettings(max_steps=total, eval_steps=total, batch_size=batch, patience=0)
    timer = trainer_step_timer()
    with tempfile.TemporaryDirectory(prefix="perf-fit-") as tmp:
        result = fit(seed_model(family, data), data, settings, Path(tmp) / "run", seed=0, callbacks=[timer])
    train_seconds = sum(dt for _, dt, _ in timer.intervals)
    wall_rate, cpu_rate = timer.rates(skip=warmup)
    return {
        "steps_per_s": wall_rate,
        "steps_per_cpu_s": cpu_rate,
        "fit_wall_s": result.wall_seconds,
        "train_s": train_seconds,
        "eval_and_save_s": result.wall_seconds - train_seconds,
    }


def plain_batches(data, batch: int, steps: int, seed: int = 0):
    """Batches exactly like DataCollatorWithPadding builds them (right padding to the longest row of
    the batch, attention mask, labels), from python lists converted once, in a seeded random order."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    split = data.splits["train"]
    ids = [torch.tensor(row, dtype=torch.long) for row in split["input_ids"]]
    labels = torch.tensor(split["labels"], dtype=torch.long)
    pad = data.tokenizer.pad_token_id
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    while len(order) < steps * batch:
        order.extend(torch.randperm(len(ids), generator=generator).tolist())

    def batches():
        for start in range(0, steps * batch, batch):
            index = order[start : start + batch]
            rows = [ids[i] for i in index]
            input_ids = pad_sequence(rows, batch_first=True, padding_value=pad)
            lengths = torch.tensor([len(r) for r in rows])
            mask = (torch.arange(input_ids.size(1)) < lengths[:, None]).long()
            yield {"input_ids": input_ids, "attention_mask": mask, "labels": labels[index]}

    return batches()


def fused_supported() -> bool:
    import torch

    try:
        param = torch.nn.Parameter(torch.zeros(2))
        param.grad = torch.zeros(2)
        torch.optim.AdamW([param], fused=True).step()
        return True
    except (RuntimeError, TypeError, ValueError):
        return False


def plain_throughput(family: str, data, batch: int, steps: int, warmup: int, *, clip: float | None) -> dict:
    """A plain PyTorch loop over the same model, data and padding: forward, backward, (clip), AdamW, linear
    LR decay. ``clip=1.0`` does what the Trainer does (max_grad_norm=1.0); ``None`` is the bare loop."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"  # where the Trainer puts the model too
    model = seed_model(family, data).to(device)
    model.train()
    fused = fused_supported()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-3, weight_decay=0.0, **({"fused": True} if fused else {"foreach": True})
    )
    total = warmup + steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, (total - s) / total))
    start = cpu_start = None
    for step, inputs in enumerate(plain_batches(data, batch, total)):
        if step == warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            start, cpu_start = time.perf_counter(), time.process_time()
        inputs = {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
        loss = model(**inputs).loss
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "steps_per_s": steps / seconds,
        "steps_per_cpu_s": steps / cpu_seconds,
        "optimizer": "AdamW(fused)" if fused else "AdamW(foreach)",
    }


def measure(profile: Profile, work: Path) -> list[dict]:
    """(a) steps/s of core.training.fit vs. a plain loop (best of interleaved repeats)."""
    import torch

    data = prepared_data(profile, RESULTS / "cache")
    default_threads = torch.get_num_threads()
    rows = []
    for threads in profile.threads or (default_threads,):
        torch.set_num_threads(threads)
        # One untimed short run of each side first: a study runs many trials in one process, so the
        # steady state is what counts, not the first trial's one-off lazy imports and GC passes.
        harness_throughput("cnn", data, 8, 40, profile.warmup_steps)
        plain_throughput("cnn", data, 8, 40, profile.warmup_steps, clip=1.0)
        for family in ("cnn", "rnn"):
            for batch, steps in sorted(profile.steps.items()):
                rows.append(throughput_row(family, data, batch, steps, profile, threads))
    torch.set_num_threads(default_threads)
    return rows


def throughput_row(family: str, data, batch: int, steps: int, profile: Profile, threads: int) -> dict:
    """Best of ``repeats`` interleaved runs of each side: on a shared machine other processes only ever
    slow a run down, so the fastest run is the closest to each side's own cost (medians are kept too)."""
    runs = {"harness": [], "plain": [], "harness_cpu": [], "plain_cpu": []}
    for _ in range(profile.repeats):  # interleaved, so a noisy neighbour hits both sides
        h = harness_throughput(family, data, batch, steps, profile.warmup_steps)
        p = plain_throughput(family, data, batch, steps, profile.warmup_steps, clip=1.0)
        for side, result in (("harness", h), ("plain", p)):
            runs[side].append(result["steps_per_s"])
            runs[f"{side}_cpu"].append(result["steps_per_cpu_s"])
    bare = plain_throughput(family, data, batch, steps, profile.warmup_steps, clip=None)
    best = {k: max(v) for k, v in runs.items()}
    med = {k: statistics.median(v) for k, v in runs.items()}
    ratio = best["harness"] / best["plain"]
    gated = batch == 8 and threads == 1  # the target's reading: see perf/README.md (threads)
    out = row(
        f"a {family} b{batch} t{threads} steps/s harness vs plain",
        best["harness"],
        best["plain"],
        unit="steps/s",
        target=">= 0.8" if batch == 8 else "",
        met=(ratio >= 0.8) if gated else None,
        median_ratio=med["harness"] / med["plain"],
        cpu_ratio=best["harness_cpu"] / best["plain_cpu"],
        ratio_vs_plain_without_clipping=best["harness"] / bare["steps_per_s"],
        plain_noclip_steps_per_s=bare["steps_per_s"],
        runs={k: [round(x, 1) for x in v] for k, v in runs.items()},
        timed_steps=steps,
        threads=threads,
        eval_and_save_s=round(h["eval_and_save_s"], 3),
        fit_wall_s=round(h["fit_wall_s"], 3),
        optimizer=p["optimizer"],
        load_average_1m=load_average(),
    )
    print(
        f"  {family} b{batch} t{threads}: harness {best['harness']:.0f}  plain {best['plain']:.0f} steps/s "
        "(best of "
        f"{profile.repeats}) -> {ratio:.2f} (medians {out['median_ratio']:.2f}, CPU time "
        f"{out['cpu_ratio']:.2f}; "
        f"plain without clipping {bare['steps_per_s']:.0f} steps/s; load {out['load_average_1m']:.1f})",
        flush=True,
    )
    return out
