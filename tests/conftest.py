"""Shared pytest setup: test helpers (``media.py``) are importable as top-level modules."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine a second spinning OpenMP thread slows these tiny ops 10x.

    A module asks for it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def debug_model_dir(tmp_path_factory):
    """The debug preset (random weights) saved as a model directory."""
    from v2meow.pipeline import V2Meow

    return str(V2Meow.from_preset("debug", seed=0).save_pretrained(tmp_path_factory.mktemp("model") / "debug"))


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory):
    """Six short videos with sound and one without."""
    from media import make_video

    root = tmp_path_factory.mktemp("videos")
    for i, pattern in enumerate(["flash", "move", "noise", "static", "flash", "move"]):
        make_video(root / f"clip{i}.mp4", seconds=2.0 + 0.5 * i, fps=10, size=(48, 32), pattern=pattern,
                   audio=True, period=0.3 + 0.2 * i, seed=i)
    make_video(root / "silent.mp4", seconds=2.0, fps=10, size=(48, 32), pattern="flash")
    return str(root)


@pytest.fixture(scope="session")
def shard_dir(tmp_path_factory, video_dir, debug_model_dir):
    from v2meow.data.extract import extract

    out = tmp_path_factory.mktemp("shards") / "s"
    extract(video_dir, out, debug_model_dir, shard_size=3, val_fraction=0.3, seed=0, progress=False)
    return str(out)
