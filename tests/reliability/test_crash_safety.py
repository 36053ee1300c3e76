"""Killed at any moment, extraction and training lose nothing: rerun, they finish exactly as an uninterrupted run.

``v2meow extract`` and ``v2meow train`` run in subprocesses that are SIGKILLed at seeded random moments while they
work (a short random delay after each sign of progress, so kills land mid-clip, mid-write and mid-step), several
times; a final rerun completes the job. Its shards must be byte-identical to an uninterrupted run's (manifest,
sidecars, archives), and its training log must give the same loss at every step, its final checkpoint the same
weights and optimiser state. No temporary file may be left behind. The uninterrupted reference runs in-process
(the same command line, the same thread counts), which saves a slow interpreter start.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from media import make_video
from safetensors.torch import load_file

from v2meow.cli import main

KILLS = 3
RUN_SECONDS = 120  # one subprocess; a hang fails the test
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Three short videos with sound and the debug model saved as a directory."""
    from v2meow.pipeline import V2Meow

    root = tmp_path_factory.mktemp("crash")
    videos = root / "videos"
    videos.mkdir()
    for i, pattern in enumerate(["flash", "move", "noise"]):
        make_video(videos / f"v{i}.mp4", seconds=1.5, fps=10, size=(32, 24), pattern=pattern, audio=True, seed=i)
    model = V2Meow.from_preset("debug", seed=0).save_pretrained(root / "model")
    return root, videos, model


def v2meow(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "v2meow.cli", *argv, "--quiet"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def finish(proc: subprocess.Popen) -> None:
    try:
        _, err = proc.communicate(timeout=RUN_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"{proc.args} ran longer than {RUN_SECONDS} s") from None
    assert proc.returncode == 0, err.decode(errors="replace")


def kill_while_working(argv: list[str], progress, rng: random.Random, max_delay: float) -> int:
    """Start ``v2meow argv``; once ``progress()`` changes (work is under way), wait a random moment and SIGKILL
    it, with everything it started. Returns how many runs were killed before one finished on its own (0 or 1)."""
    proc = v2meow(*argv)
    before = progress()
    deadline = time.monotonic() + RUN_SECONDS
    while proc.poll() is None and progress() == before:
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, max_delay))
    if proc.poll() is not None:  # it finished first: nothing to kill
        finish(proc)
        return 0
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if proc.returncode == 0:  # it exited on its own between the poll and the kill: a finished run, not a killed one
        return 0
    assert proc.returncode == -signal.SIGKILL
    return 1


def reference(*argv: str) -> None:
    """The uninterrupted run, in-process, with the threads the subprocesses get."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*argv, "--quiet"]) == 0
    finally:
        torch.set_num_threads(threads)


def listing(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (temporary ones included) with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_extract_killed_resumes_to_identical_shards(inputs):
    root, videos, model = inputs
    ref, out = root / "ref", root / "killed"
    args = lambda o: ["extract", str(videos), "-o", str(o), "--model", str(model), "--shard-size", "1",  # noqa: E731
                      "--val-fraction", "0.34"]
    reference(*args(ref))
    rng = random.Random(8)

    def progress():  # anything written: a temporary shard, a finished one, a sidecar
        return tuple(sorted(os.listdir(out))) if out.exists() else ()

    killed = sum(kill_while_working(args(out), progress, rng, max_delay=0.4) for _ in range(KILLS))
    finish(v2meow(*args(out)))
    assert killed >= 1
    expected, got = listing(ref), listing(out)
    assert sorted(got) == sorted(expected)  # no temporary file left
    manifest = json.loads(got.pop("manifest.json"))
    ref_manifest = json.loads(expected.pop("manifest.json"))
    assert manifest["clips"] == ref_manifest["clips"] and manifest["shards"] == ref_manifest["shards"]
    assert len(manifest["clips"]) == 3
    assert got == expected  # archives and sidecars, byte for byte


TRAIN_YAML = """\
batch_size: 2
lr: 0.003
warmup_steps: 2
max_steps: 8
eval_every: 4
eval_batches: 1
checkpoint_every: 1
keep_checkpoints: 2
log_every: 1
seed: 0
"""


@pytest.fixture(scope="module")
def shards(inputs):
    from v2meow.data.extract import extract

    root, videos, model = inputs
    out = root / "shards"
    extract(str(videos), out, str(model), shard_size=1, val_fraction=0.34, progress=False)
    (root / "train.yaml").write_text(TRAIN_YAML)
    return out


def losses(run: Path) -> dict[int, set[float]]:
    """Training loss by step from the run's log; a step redone after a kill appears twice and must agree."""
    out: dict[int, set[float]] = {}
    for line in (run / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "loss" in rec:
            out.setdefault(rec["step"], set()).add(rec["loss"])
    return out


def test_train_killed_resumes_to_the_same_losses_and_weights(inputs, shards):
    root, _, model = inputs
    ref, run = root / "run-ref", root / "run-killed"
    args = lambda r: ["train", "fine", "--shards", str(shards), "--config", str(root / "train.yaml"),  # noqa: E731
                      "-o", str(r), "--device", "cpu"]
    reference(*args(ref))
    rng = random.Random(3)

    def progress():  # a new checkpoint
        latest = run / "checkpoints" / "latest"
        return latest.read_text() if latest.is_file() else ""

    killed = sum(kill_while_working(args(run), progress, rng, max_delay=0.3) for _ in range(KILLS))
    finish(v2meow(*args(run)))
    assert killed >= 1
    want, got = losses(ref), losses(run)
    assert sorted(want) == list(range(1, 9))
    assert got == want, "a resumed run must give every step the loss of the uninterrupted run"
    final = "step-00000008"
    for name in ("model.safetensors", "optim.safetensors"):
        a = load_file(str(ref / "checkpoints" / final / name))
        b = load_file(str(run / "checkpoints" / final / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    state_a = json.loads((ref / "checkpoints" / final / "state.json").read_text())
    state_b = json.loads((run / "checkpoints" / final / "state.json").read_text())
    assert state_a == state_b
    leftovers = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers == []
