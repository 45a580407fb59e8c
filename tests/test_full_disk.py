"""A full disk ends in one line naming the full folder and saying the same command resumes (exit 4),
whichever library hit it; after space is freed the same command finishes."""

from __future__ import annotations

import errno
import shutil
import subprocess

import pytest
from helpers import error_lines, run_cli, search_args

from textbench import benchmark
from textbench.core.disk import FULL_DISK_EXIT

SAFETENSORS = 'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left" })'


@pytest.mark.parametrize(
    "raised",
    [
        OSError(
            errno.ENOSPC, "No space left on device", "/nowhere/out/tiny/models/cnn-best/model.safetensors"
        ),
        RuntimeError(SAFETENSORS),  # safetensors' SafetensorError is no OSError
    ],
    ids=["oserror", "safetensors"],
)
def test_a_full_disk_is_one_line_and_exit_4(raised, monkeypatch, capsys, tmp_path):
    def fails(argv):
        raise raised

    monkeypatch.setitem(benchmark.COMMANDS, "", (fails, None))
    assert benchmark.main(["--output-dir", str(tmp_path)]) == FULL_DISK_EXIT == 4
    (line,) = error_lines(capsys.readouterr().err)
    folder = "/nowhere/out/tiny/models/cnn-best" if isinstance(raised, OSError) else str(tmp_path)
    assert line.startswith(f"error: no space left on the disk of {folder} (")
    assert "rerun the same command" in line


def test_other_errors_are_not_taken_for_a_full_disk(monkeypatch):
    def fails(argv):
        raise RuntimeError("something else")

    monkeypatch.setitem(benchmark.COMMANDS, "", (fails, None))
    with pytest.raises(RuntimeError, match="something else"):
        benchmark.main([])


@pytest.mark.slow
def test_a_benchmark_on_a_full_tmpfs_stops_in_one_line_and_resumes_when_space_is_freed(
    tiny_data_dir, tmp_path
):
    disk = tmp_path / "small-disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip() or 'not root'})")
    try:
        out = disk / "out"
        extra = ("--workers", "1", "--top-k", "1", "--final-seeds", "1")
        args = [*search_args(tiny_data_dir, out, family="cnn", trials=2, name="tiny"), *extra]
        filler = disk / "filler"  # leaves 400 KB: the store and cache fit, the models do not
        with open(filler, "wb") as handle:
            handle.write(b"\0" * (shutil.disk_usage(disk).free - 400 * 1024))
        full = run_cli(*args, timeout=600)
        assert full.returncode == FULL_DISK_EXIT, full.stderr[-3000:]
        assert "Traceback" not in full.stderr
        assert full.stderr.strip().splitlines()[-1].startswith("error: no space left on the disk of ")
        filler.unlink()  # space freed
        resumed = run_cli(*args, timeout=600)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert (out / "tiny" / "report.html").is_file()
    finally:
        shutil.rmtree(disk / "out", ignore_errors=True)
        subprocess.run(["umount", str(disk)], capture_output=True)
