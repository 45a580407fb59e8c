"""Local worker processes: how many (``--workers auto``), on which device, started and stopped.

The command's own process is worker 0; ``Workers`` starts the other N-1 at once (spawned, so each
imports torch on its own while the parent prepares the data) and tells them to go once the
parent's setup has succeeded (the tokenization cache is then warm and bad input has been reported
once, by the parent). Every worker runs the same studies through the runner's claim lock, then
shares their final stage. Each uses one torch thread: these small models gain little from more,
and several threads per process slow everything down when processes share the cores.

On a CUDA machine each process sees one GPU (``CUDA_VISIBLE_DEVICES``, round-robin), so several
workers share a GPU that one small trial cannot fill, and the Trainer never wraps a model in
``DataParallel``. Nothing here imports torch at module level: the CLI decides before loading it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time

from textbench.core.errors import UsageError
from textbench.search.search_settings import is_sqlite, parse_workers

log = logging.getLogger(__name__)

# Peak resident memory (VmHWM) of one search process on the full IMDB split (torch + transformers +
# the tokenized splits + a trial) was 0.85-0.95 GiB here, CNN and RNN; with headroom for the largest
# models of the spaces, this bounds --workers auto.
WORKER_MEMORY_BYTES = int(1.5 * 2**30)
WORKERS_PER_GPU = 4  # small models leave a GPU mostly idle: let a few trials share it


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes the machine can still give (MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def gpu_ids() -> list[str]:
    """The CUDA devices this process may use, found without initialising CUDA (torch caches its
    device count, and each process must see only its own device)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def auto_workers(
    trials: int, *, cores: int | None = None, memory: int | None = None, gpus: int | None = None
) -> int:
    """One worker per usable core, bounded by memory (and by ``WORKERS_PER_GPU`` per GPU), never
    more than there are trials to run."""
    cores = usable_cores() if cores is None else cores
    memory = available_memory() if memory is None else memory
    gpus = len(gpu_ids()) if gpus is None else gpus
    n = cores
    if memory is not None:
        n = min(n, memory // WORKER_MEMORY_BYTES)
    if gpus:
        n = min(n, WORKERS_PER_GPU * gpus)
    return max(1, min(n, trials))


def worker_count(text: str, search) -> int:
    """``--workers``: a number, or 'auto' (one per usable core, bounded by memory and the trials).
    SQLite locks the whole file on each write: one process there, a clear error if more are asked for."""
    n = parse_workers(text)
    if is_sqlite(search.storage):
        if n is not None and n > 1:
            raise UsageError(
                "--workers > 1 needs a storage that several processes can share: SQLite locks the "
                "whole file on every write; use the default journal file or --storage postgresql://USER@HOST/DB"
            )
        return 1
    return n if n is not None else auto_workers(search.trials)


def device_for(index: int, gpus: list[str]) -> str | None:
    """Worker ``index``'s CUDA_VISIBLE_DEVICES: one GPU each, round-robin; None without a GPU."""
    return gpus[index % len(gpus)] if gpus else None


def pin_device(index: int, gpus: list[str]) -> None:
    """Make this process see only its GPU. Before CUDA starts, i.e. before the first torch.cuda call."""
    device = device_for(index, gpus)
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device


class Workers:
    """The helpers beside the parent process (worker 0): ``n - 1`` spawned processes that each run
    ``target(settings, index, threads, gpus, verbose, ready, parent_pid)``
    (``textbench.pipeline.helper_main``); ``settings`` are (search, data, train)."""

    def __init__(self, target, settings: tuple, n: int, threads: int, gpus: list[str], verbose: bool = False):
        import dataclasses
        import multiprocessing

        from textbench.search.final import RUN_ID_ENV

        os.environ[RUN_ID_ENV] = (
            f"{os.getpid()}-{time.time_ns()}"  # inherited: final-stage claims of this run
        )
        search, data, train = settings
        quiet = (dataclasses.replace(search, progress=False), data, train)  # one progress bar: the parent's
        context = multiprocessing.get_context("spawn")
        self.ready = context.Event()
        self.procs = [
            context.Process(
                target=target,
                args=(quiet, i, threads, gpus, verbose, self.ready, os.getpid()),
                name=f"worker-{i}",
            )
            for i in range(1, n)
        ]
        for proc in self.procs:
            proc.start()
        where = f", GPUs {','.join(gpus)} shared round-robin" if gpus else ""
        log.info(
            "%d worker processes started besides this one (torch threads per worker: %d%s)",
            n - 1,
            threads,
            where,
        )

    def go(self) -> None:
        self.ready.set()

    def abort(self) -> None:
        """Stop helpers that never got going (the parent's setup failed): no output from them."""
        for proc in self.procs:
            proc.kill()
            proc.join()

    def interrupt(self, grace: float = 5.0) -> None:
        """Stop the helpers the way Ctrl-C stops this process (their running trials end as FAIL
        "interrupted"). A terminal's Ctrl-C reaches them already; the others get SIGTERM, which they
        turn into the same KeyboardInterrupt: SIGINT would not do, a background job ignores it."""
        deadline = time.monotonic() + grace
        for proc in self.procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            proc.join()

    def join(self) -> tuple[int, str]:
        """Wait for the helpers: (exit code of the worst one, what went wrong with which, or "").
        Ctrl-C while waiting reaches the caller, which interrupts them."""
        for proc in self.procs:
            proc.join()
        codes = [p.exitcode for p in self.procs]
        if any(codes):
            problem = ", ".join(
                f"{p.name} (pid {p.pid}) {describe_exit(p.exitcode)}" for p in self.procs if p.exitcode
            )
            return (130 if 130 in codes else 2 if set(codes) == {2} else 1), problem
        return 0, ""


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return {130: "was interrupted", 2: "stopped on bad input"}.get(code, f"exited with code {code}")
