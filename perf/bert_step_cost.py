"""CPU cost of one fine-tuning step of a bert-base-cased-sized model (random initialisation, no
download): what a user pays per step before deciding to fine-tune a pretrained reference.

    python -m perf.bert_step_cost --steps 30 --threads 1 --batch-size 8 --max-length 128

Builds ``BertConfig()`` at bert-base-cased's sizes (12 layers, width 768, 12 heads, feed-forward 3072,
28,996 word pieces), ``BertForSequenceClassification`` with 2 labels, and runs ``--steps`` AdamW
steps (forward, loss, backward, clip to 1.0 as the Trainer does, step) on random token ids of
``--max-length`` tokens, after ``--warmup`` untimed steps. Prints one JSON line: seconds per step
(median and mean of the timed steps), parameters, and the hours that textbench's default budget
(2,500 steps) would take per run. Not a ``perf.run`` measurement (no ``KEY``): it needs minutes, not
a ratio against a reference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def measure(steps: int, warmup: int, threads: int, batch_size: int, max_length: int) -> dict:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=28996, num_labels=2)  # the defaults are bert-base's sizes
    model = BertForSequenceClassification(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5)
    ids = torch.randint(1000, 28996, (batch_size, max_length))
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (batch_size,))
    times, cpu = [], []
    for i in range(warmup + steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        print(
            f"step {i + 1}/{warmup + steps}: {elapsed:.2f} s wall, {elapsed_cpu:.2f} s CPU"
            + (" (warm-up)" if i < warmup else ""),
            file=sys.stderr,
            flush=True,
        )
        if i >= warmup:
            times.append(elapsed)
            cpu.append(elapsed_cpu)
    median = statistics.median(times)
    return {
        "model": "bert-base-cased sized, random init",
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": threads,
        "batch_size": batch_size,
        "max_length": max_length,
        "timed_steps": steps,
        "seconds_per_step_median": round(median, 3),
        "seconds_per_step_mean": round(statistics.fmean(times), 3),
        "cpu_seconds_per_step_median": round(statistics.median(cpu), 3),  # robust to a shared machine
        "hours_for_2500_steps": round(2500 * median / 3600, 2),
        "cpu_hours_for_2500_steps": round(2500 * statistics.median(cpu) / 3600, 2),
        "torch": torch.__version__,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=128)
    a = p.parse_args()
    print(json.dumps(measure(a.steps, a.warmup, a.threads, a.batch_size, a.max_length)))


if __name__ == "__main__":
    main()
