"""Every bad input gives a correct result, or one sentence on stderr and exit status 2: no traceback, no hang, no
partial output file. The corpus lives in ``tests/data/bad/`` (``scripts/make_bad_corpus.py`` writes it);
``docs/reliability.md`` lists each case and what happens.

Most cases run the command line in-process (``main([...])``, stderr captured at the file-descriptor level so that
anything FFmpeg prints counts too) under an alarm; a few run the real ``python -m v2meow.cli`` in a subprocess.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from media import make_video

from v2meow.cli import main
from v2meow.io.audio import load_audio
from v2meow.io.video import probe

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "data" / "bad"
CASE_SECONDS = 90  # no single case may take longer (a hang fails the test instead of stalling the suite)

# Files the command line refuses, with a phrase its one sentence must contain.
REFUSED = {
    "empty.mp4": "is empty",
    "text.mp4": "not a readable video file",
    "random.mp4": "not a readable video file",
    "ftyp_garbage.mp4": "not a readable video file",
    "truncated_50_index_at_end.mp4": "not a readable video file",
    "audio_only.mp4": "has no video stream",
    "audio_only.wav": "has no video stream",
    "zero_frames.mp4": "has no video stream",
}
# Files that give a soundtrack, with its length in seconds: the video's length, or for a file cut short the
# length of what can be read.
SCORED = {
    "truncated_10.mp4": 0.1,
    "truncated_50.mp4": 1.5,
    "truncated_90.mp4": 2.7,
    "silent.mp4": 2.0,
    "one_frame.mp4": 1.0,
    "one_frame_short.mp4": 0.04,
    "8k.mp4": 1.0,
    "rotated.mp4": 2.0,
    "vfr.mp4": 1.96,
    "sar.mp4": 2.0,
    "mpeg4.mp4": 2.0,
    "hevc.mp4": 2.0,
    "vp9.webm": 2.0,
    "mjpeg.avi": 2.0,
    "ffv1.mkv": 2.0,
    "mpeg2.ts": 2.0,
}
DAMAGED = {"truncated_10.mp4", "truncated_50.mp4", "truncated_90.mp4"}


@pytest.fixture(autouse=True)
def _bounded():
    """One thread (the machine is shared) and an alarm: a case that hangs fails instead of stalling the suite."""
    torch.set_num_threads(1)

    def expired(signum, frame):
        raise TimeoutError(f"a bad-input case ran longer than {CASE_SECONDS} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(CASE_SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def run(capfd, *argv: str) -> tuple[int, str]:
    """``main(argv)`` in-process: (exit status, everything written to stderr, FFmpeg's output included)."""
    capfd.readouterr()
    code = main(list(argv))
    return code, capfd.readouterr().err


def assert_refused(code: int, err: str, out_dir: Path, phrase: str | None = None) -> None:
    """Exit status 2, exactly one line ``v2meow: error: ...``, no traceback, nothing left in ``out_dir``."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("v2meow: error: "), err
    assert lines[0].rstrip().endswith("."), err  # a sentence, not a fragment
    if phrase is not None:
        assert phrase in lines[0], err
    assert sorted(os.listdir(out_dir)) == [], "partial output left behind"


def assert_soundtrack(path: Path, seconds: float, video: Path | None = None) -> None:
    """``path`` holds ``seconds`` of finite, non-silent audio; an MP4 also holds the input's video stream, upright
    as the input."""
    assert sorted(os.listdir(path.parent)) == [path.name], "temporary files left behind"
    if path.suffix == ".wav":
        wav, sr = sf.read(str(path), dtype="float32")
        assert len(wav) == round(seconds * sr)
    else:
        wav = load_audio(path, sample_rate=16000)
        assert abs(len(wav) / 16000 - seconds) < 0.07  # AAC frames and priming
        out, src = probe(path), probe(video)
        assert out.has_video and out.has_audio and out.video_codec == src.video_codec
        assert (out.width, out.height, out.rotation) == (src.width, src.height, src.rotation)
    assert np.isfinite(wav).all() and float(np.abs(wav).max()) > 0


def test_corpus_is_complete_and_small():
    spec = importlib.util.spec_from_file_location("make_bad_corpus", ROOT / "scripts" / "make_bad_corpus.py")
    corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus)
    index = json.loads((BAD / "index.json").read_text())
    assert set(index) == set(corpus.CASES) == set(REFUSED) | set(SCORED)
    assert sorted(os.listdir(BAD)) == sorted([*corpus.CASES, "index.json"])
    sizes = [(BAD / n).stat().st_size for n in corpus.CASES]
    assert sizes == [index[n]["bytes"] for n in corpus.CASES]  # regenerate with scripts/make_bad_corpus.py
    assert sum(sizes) < 1_000_000


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_generate_refuses_unusable_files(name, tmp_path, capfd):
    code, err = run(capfd, "generate", str(BAD / name), "-o", str(tmp_path / "out.mp4"), "--model", "debug", "--quiet")
    assert_refused(code, err, tmp_path, REFUSED[name])


@pytest.mark.parametrize("ext", [".wav", ".mp4"])
@pytest.mark.parametrize("name", sorted(SCORED))
def test_generate_scores_odd_but_readable_files(name, ext, tmp_path, capfd):
    out = tmp_path / f"out{ext}"
    code, err = run(capfd, "generate", str(BAD / name), "-o", str(out), "--model", "debug", "--seed", "0", "--quiet")
    assert code == 0, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"wrote {out}"), err
    assert ("is damaged" in lines[0]) == (name in DAMAGED), err
    assert probe(BAD / name).duration == pytest.approx(SCORED[name], abs=1e-3)
    assert_soundtrack(out, SCORED[name], BAD / name)


def test_failure_leaves_an_existing_output_alone(tmp_path, capfd):
    out = tmp_path / "out.wav"
    out.write_bytes(b"an older soundtrack")
    code, err = run(capfd, "generate", str(BAD / "truncated_50_index_at_end.mp4"), "-o", str(out), "--model", "debug")
    assert code == 2 and out.read_bytes() == b"an older soundtrack"
    out.unlink()
    assert_refused(code, err, tmp_path)


@pytest.mark.parametrize("where", ["missing", "folder"])
def test_missing_input(where, tmp_path, capfd):
    src = tmp_path / "in" / "clip.mp4"
    if where == "folder":
        src.mkdir(parents=True)
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    code, err = run(capfd, "generate", str(src), "-o", str(out_dir / "x.wav"), "--model", "debug")
    assert_refused(code, err, out_dir)


# -- options -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opts, phrase", [
    (["--seconds", "-1"], "positive"),
    (["--seconds", "0"], "positive"),
    (["--seconds=-1e308"], "positive"),
    (["--seconds", "-1e308"], "expected one argument"),  # argparse reads -1e308 as an option
    (["--seconds", "1e9"], "limit"),
    (["--seconds", "3000"], "longer than the video"),
    (["--seconds", "1e400"], "finite"),
    (["--seconds", "nan"], "finite"),
    (["--seconds", "inf"], "finite"),
    (["--seconds", "ten"], "expected a number"),
    (["--seconds", ""], "expected a number"),
    (["--guidance", "-3"], "guidance"),
    (["--guidance", "1e9"], "guidance"),
    (["--tempo", "10"], "--tempo must be between 30 and 300 BPM"),
    (["--tempo", "nan"], "finite"),
    (["--prompt", "lofi at 900 BPM"], "the prompt names 900 BPM"),
    (["--prompt", "at 90 BPM or 140 BPM"], "more than one tempo"),
    (["--seed", "-1"], "seed"),
    (["--seed", "1" * 40], "seed"),
    (["--prompt", "x" * 100_000], "characters long"),
    (["--prompt", " \t "], "empty"),
    (["--prompt", "caf\udce9 \udcff\udcfe"], "UTF-8"),  # what Python makes of undecodable bytes in argv
])
def test_bad_options(opts, phrase, tmp_path, capfd):
    code, err = run(capfd, "generate", str(BAD / "silent.mp4"), "-o", str(tmp_path / "o.wav"), "--model", "debug",
                    "--quiet", *opts)
    assert_refused(code, err, tmp_path, phrase)


@pytest.mark.parametrize("opts, seconds", [
    (["--seconds", "0.5"], 0.5),
    (["--seconds", "2.04"], 2.04),  # a length read off a player, a hair past the end
    (["--prompt", "暖かいギター 🎸 \u202eright-to-left\u202c and\ttabs"], 2.0),
    (["--prompt", "y" * 2000], 2.0),
    (["--tempo", "128", "--seconds", "1"], 1.0),
    (["--prompt", "calm piano at 72 BPM", "--seconds", "1"], 1.0),
])
def test_odd_but_valid_options(opts, seconds, tmp_path, capfd):
    out = tmp_path / "o.wav"
    code, err = run(capfd, "generate", str(BAD / "silent.mp4"), "-o", str(out), "--model", "debug", "--quiet", *opts)
    assert code == 0, err
    assert_soundtrack(out, seconds)


# -- model directories ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from v2meow.pipeline import V2Meow

    return V2Meow.from_preset("debug", seed=0).save_pretrained(tmp_path_factory.mktemp("m") / "debug")


def _flip_a_byte(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[-5] ^= 0x10  # inside the tensor data: the header still parses
    p.write_bytes(bytes(data))


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


@pytest.mark.parametrize("damage, phrase", [
    (lambda d: (d / "codec.safetensors").unlink(), "missing its weight file"),
    (lambda d: _truncate(d / "fine.safetensors"), "corrupt"),
    (lambda d: _flip_a_byte(d / "semantic.safetensors"), "corrupt"),
    (lambda d: (d / "coarse.safetensors").write_bytes(os.urandom(3000)), "corrupt"),
    (lambda d: (d / "config.json").write_text("{not json"), "not valid JSON"),
    (lambda d: (d / "config.json").unlink(), "not a v2meow model directory"),
    (lambda d: (d / "config.json").write_bytes(b"\xff\xfe\x00garbage"), "not valid JSON"),
])
def test_damaged_model_directory(damage, phrase, model_dir, tmp_path, capfd):
    bad = tmp_path / "model"
    shutil.copytree(model_dir, bad)
    damage(bad)
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    code, err = run(capfd, "generate", str(BAD / "silent.mp4"), "-o", str(out_dir / "x.wav"), "--model", str(bad))
    assert_refused(code, err, out_dir, phrase)


# -- extraction ------------------------------------------------------------------------------------------------
def test_extract_refuses_a_folder_without_sound(tmp_path, capfd):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(BAD / "silent.mp4", videos)
    code, err = run(capfd, "extract", str(videos), "-o", str(tmp_path / "shards"), "--model", "debug", "--quiet")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("v2meow: error: No video in") and "no audio track" in lines[0]
    assert not (tmp_path / "shards").exists()


def test_extract_skips_bad_files_and_keeps_the_good(tmp_path, capfd):
    from v2meow.data.shards import ShardReader

    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("silent.mp4", "text.mp4", "empty.mp4", "audio_only.mp4", "truncated_50.mp4", "rotated.mp4"):
        shutil.copy(BAD / name, videos)
    out = tmp_path / "shards"
    code, err = run(capfd, "extract", str(videos), "-o", str(out), "--model", "debug", "--quiet", "--shard-size", "2")
    assert code == 0, err
    assert "Traceback" not in err
    skipped = sorted(line.split(":")[0] for line in err.splitlines() if line.startswith("skipped "))
    assert skipped == ["skipped audio_only.mp4", "skipped empty.mp4", "skipped silent.mp4", "skipped text.mp4"]
    reader = ShardReader(out)
    assert sorted((r.meta["source"], round(r.meta["duration"], 3)) for r in reader) == [
        ("rotated.mp4", 2.0), ("truncated_50.mp4", 1.5)]
    reader.close()
    assert not [p for p in os.listdir(out) if p.startswith(".")]


# -- tokens from another tokenizer ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory):
    """The debug preset with other random weights: same sizes, different tokenizers."""
    from v2meow.pipeline import V2Meow

    return V2Meow.from_preset("debug", seed=1).save_pretrained(tmp_path_factory.mktemp("m1") / "other")


@pytest.fixture(scope="module")
def small_shards(tmp_path_factory, model_dir):
    from v2meow.data.extract import extract

    videos = tmp_path_factory.mktemp("tv")
    for i in range(2):
        make_video(videos / f"c{i}.mp4", seconds=1.5, fps=10, size=(32, 24), pattern="move", audio=True, seed=i)
    out = tmp_path_factory.mktemp("ts") / "shards"
    extract(str(videos), out, str(model_dir), shard_size=2, val_fraction=0.0, progress=False)
    return out


def test_train_refuses_tokens_of_another_tokenizer(small_shards, other_model_dir, tmp_path, capfd):
    code, err = run(capfd, "train", "fine", "--shards", str(small_shards), "--model", str(other_model_dir),
                    "-o", str(tmp_path / "run"), "--max-steps", "1", "--quiet", "--device", "cpu")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "acoustic tokens made with codes=" in lines[0], err
    assert not (tmp_path / "run").exists()


def test_export_refuses_a_stage_trained_on_another_tokenizers_tokens(small_shards, model_dir, other_model_dir,
                                                                      tmp_path, capfd):
    run_dir = tmp_path / "run"
    code, err = run(capfd, "train", "fine", "--shards", str(small_shards), "--model", str(model_dir),
                    "-o", str(run_dir), "--max-steps", "1", "--quiet", "--device", "cpu")
    assert code == 0, err
    out_dir = tmp_path / "exported"
    out_dir.mkdir()
    code, err = run(capfd, "export", "--base", str(other_model_dir), "--fine", str(run_dir),
                    "-o", str(out_dir / "model"))
    assert_refused(code, err, out_dir, "acoustic tokens made with codes=")
    code, err = run(capfd, "export", "--base", str(model_dir), "--fine", str(run_dir), "-o", str(out_dir / "model"))
    assert code == 0, err


def test_codec_refuses_codes_of_another_codec(model_dir, other_model_dir):
    from v2meow.errors import IdentityMismatch
    from v2meow.pipeline import V2Meow

    a, b = V2Meow.from_pretrained(model_dir).codec, V2Meow.from_pretrained(other_model_dir).codec
    codes = a.encode(torch.zeros(1, 1600))
    a.check_codes(codes, a.identity())
    with pytest.raises(IdentityMismatch, match="codes="):
        b.check_codes(codes, a.identity())


# -- the real command line, in a subprocess ---------------------------------------------------------------------
def cli(*argv: str | bytes, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LC_ALL": "C.UTF-8"}
    args = [sys.executable.encode(), b"-m", b"v2meow.cli", *[a if isinstance(a, bytes) else a.encode() for a in argv]]
    return subprocess.run(args, capture_output=True, timeout=CASE_SECONDS - 5, cwd=cwd, env=env)


@pytest.mark.parametrize("argv, code", [
    ([str(BAD / "text.mp4"), "-o", "out.mp4"], 2),
    ([str(BAD / "silent.mp4"), "-o", "out.wav", "--prompt", b"caf\xe9 \xff\xfe"], 2),  # Latin-1 bytes, not UTF-8
    ([str(BAD / "truncated_90.mp4"), "-o", "out.mp4", "--seed", "1"], 0),
])
def test_real_command_line(argv, code, tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    r = cli("generate", *argv, "--model", "debug", "--quiet", cwd=work)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == code, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    if code == 2:
        assert lines[0].startswith("v2meow: error: ") and os.listdir(work) == []
    else:
        assert_soundtrack(work / "out.mp4", SCORED["truncated_90.mp4"], BAD / "truncated_90.mp4")
        assert math.isclose(probe(work / "out.mp4").duration, 2.7, abs_tol=0.05)
