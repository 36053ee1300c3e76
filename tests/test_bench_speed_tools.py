"""The measuring parts of bench.musicgen, bench.memory and bench.extraction at tiny sizes (no timing is checked)."""

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_musicgen_writes_frames_in_frames_plus_delay_steps():
    pytest.importorskip("transformers")
    from bench.musicgen import build_musicgen, musicgen_generate

    tiny = dict(layers=1, width=32, heads=2, ffn=64, codebooks=4, codebook_size=16, frame_rate=50.0,
                codec_filters=4)
    model = build_musicgen(sizes=tiny)
    _, codes = musicgen_generate(model, 0.2, sizes=tiny)
    assert codes.shape[-2:] == (4, 10)  # 10 frames from 10 + 3 delay steps, the codec decode passed through
    assert int(codes.max()) < 16 and int(codes.min()) >= 0  # codes, not the pad token


def test_paper_steps_count_every_level():
    from bench.musicgen import paper_steps
    from v2meow.config import load_preset

    steps = paper_steps(load_preset("paper"), 2.0)
    assert steps == {"semantic": 50, "coarse": 400, "fine": 800, "total": 1250}


def test_peak_memory_sees_an_allocation():
    from bench.memory import peak_mb

    before = peak_mb()
    block = np.ones(96 * 2**20 // 8)  # 96 MB, written
    assert peak_mb() >= before + 80 or before > 96  # a process already past it may not rise
    del block


def test_textured_video_decodes_every_frame(tmp_path):
    from bench.extraction import make_textured_video, pyav_decode
    from v2meow.io.video import probe

    path = make_textured_video(tmp_path / "v.mp4", 1.0, (64, 36), 12.0)
    assert pyav_decode(str(path)) == 12
    info = probe(str(path))
    assert (info.width, info.height) == (64, 36)


def test_numpy_decoder_step_computes_what_the_torch_step_does():
    """bench.numpy_step times a numpy step against the torch one; its timing means something only if both compute
    the same logits from the shipped stage 2's weights."""
    pytest.importorskip("threadpoolctl")
    from bench.numpy_step import compare

    r = compare(steps=6, batch=2, repeats=1)
    assert r["relative_difference"] < 1e-4 and r["torch_us"] > 0 and r["numpy_us"] > 0
