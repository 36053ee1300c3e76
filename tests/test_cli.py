import os
import subprocess
import sys

import av
import numpy as np
import pytest
import soundfile as sf
from media import make_audio, make_text_file, make_video

from v2meow.cli import main


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return str(make_video(tmp_path_factory.mktemp("v") / "clip.mp4", seconds=1.5, fps=12, size=(64, 48),
                          pattern="flash", audio=True))


def video_packets(path):
    with av.open(path) as c:
        s = c.streams.video[0]
        return [bytes(p) for p in c.demux(s) if p.size]


def audio_seconds(path):
    with av.open(path) as c:
        s = c.streams.audio[0]
        n = sum(f.samples for f in c.decode(s))
        return n / s.codec_context.sample_rate


def test_generate_mp4_keeps_video_bit_identical(video, tmp_path):
    out = str(tmp_path / "scored.mp4")
    assert main(["generate", video, "-o", out, "--model", "debug", "--seconds", "1.0", "--seed", "0", "--quiet"]) == 0
    assert video_packets(out) == video_packets(video)
    assert abs(audio_seconds(out) - 1.0) < 0.07  # within one AAC frame plus priming
    with av.open(out) as c:
        assert len(c.streams.audio) == 1 and c.streams.audio[0].codec_context.name == "aac"


def test_generate_wav_default_length(video, tmp_path):
    out = str(tmp_path / "music.wav")
    assert main(["generate", video, "-o", out, "--model", "debug", "--quiet"]) == 0
    wav, sr = sf.read(out)
    assert sr == 16000 and abs(len(wav) / sr - 1.5) < 0.05 and np.isfinite(wav).all()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "v2meow.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", ["missing", "text", "audio_only", "empty"])
def test_bad_inputs_exit_2_with_one_sentence(case, tmp_path):
    src = tmp_path / "in.mp4"
    if case == "text":
        make_text_file(src)
    elif case == "audio_only":
        src = tmp_path / "in.m4a"
        make_audio(src, 1.0, 16000)
    elif case == "empty":
        src.write_bytes(b"")
    out = tmp_path / "out.mp4"
    r = run_cli("generate", str(src), "-o", str(out), "--model", "debug")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("v2meow: error:")
    assert not out.exists()
    assert os.listdir(tmp_path) == [src.name] or not src.exists()


@pytest.mark.parametrize("extra", [["--seconds", "-2"], ["--seconds", "1e9"], ["--seconds", "nan"],
                                   ["--model", "/no/such/model"], ["--prompt", ""]])
def test_bad_options_exit_2(video, tmp_path, extra, capsys):
    out = tmp_path / "out.wav"
    code = main(["generate", video, "-o", str(out), "--quiet", *(["--model", "debug"] + extra)])
    assert code == 2
    assert not out.exists()


@pytest.mark.parametrize("name", ["lock_tempo", "fit_pulse"])
def test_tempo_switches_reach_generate(name, video, tmp_path, monkeypatch):
    from v2meow import pipeline

    seen = []
    generate = pipeline.V2Meow.generate
    monkeypatch.setattr(pipeline.V2Meow, "generate",
                        lambda self, *a, **kw: seen.append(kw[name]) or generate(self, *a, **kw))
    flag = "--" + name.replace("_", "-")
    for extra in ([], [flag], ["--no-" + flag[2:]]):
        out = tmp_path / f"{len(seen)}.wav"
        assert main(["generate", video, "-o", str(out), "--model", "debug", "--seconds", "0.5", "--quiet", *extra]) == 0
    assert seen == [None, True, False]  # None: the model's own setting


def test_the_fit_is_reported_whole_or_by_stretch(video, tmp_path, monkeypatch, capsys):
    from dataclasses import replace

    from v2meow import pipeline
    from v2meow.metrics.alignment import PulseFit

    generate, fits = pipeline.V2Meow.generate, []
    monkeypatch.setattr(pipeline.V2Meow, "generate",
                        lambda self, *a, **kw: replace(generate(self, *a, **kw), fits=fits))
    for fits[:] in ([PulseFit(92.0, 100 / 92, 0.1, 3, 0.0, 0.5)],
                    [PulseFit(92.0, 100 / 92, 0.0, 3, 0.1, 0.3), PulseFit(130.0, 120 / 130, 0.0, 2, 0.3, 0.5)]):
        assert main(["generate", video, "-o", str(tmp_path / "o.wav"), "--model", "debug", "--seconds", "0.5"]) == 0
    err = capsys.readouterr().err
    assert "warped onto the picture's steady pulse (92 -> 100 BPM, 3 beats; --no-fit-pulse" in err
    assert "(from 0.1 s to 0.3 s, 92 -> 100 BPM, 3 beats; from 0.3 s to 0.5 s, 130 -> 120 BPM, 2 beats;" in err
    assert "made again" not in err


def test_a_named_tempo_says_how_it_was_met(video, tmp_path, monkeypatch, capsys):
    from dataclasses import replace

    from v2meow import pipeline
    from v2meow.metrics.alignment import PulseFit

    generate, remade = pipeline.V2Meow.generate, []
    fit = [PulseFit(92.0, 100 / 92, 0.1, 3, 0.0, 0.5)]
    monkeypatch.setattr(pipeline.V2Meow, "generate",
                        lambda self, *a, **kw: replace(generate(self, *a, **kw), fits=fit, remade=remade[-1]))
    for remade[:] in ([False], [True]):
        assert main(["generate", video, "-o", str(tmp_path / "o.wav"), "--model", "debug", "--seconds", "0.5",
                     "--tempo", "100"]) == 0
        err = capsys.readouterr().err
        assert "warped onto the named tempo's pulse (92 -> 100 BPM, 3 beats;" in err
        assert ("made again on a pulse at that tempo" in err) is remade[-1]


def test_bad_output_extension(video, tmp_path):
    assert main(["generate", video, "-o", str(tmp_path / "x.txt"), "--model", "debug"]) == 2


def test_info(tmp_path, capsys):
    from v2meow.pipeline import V2Meow

    V2Meow.from_preset("debug").save_pretrained(tmp_path / "m")
    assert main(["info", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "semantic" in out and "codec" in out and "total" in out
    assert main(["info", str(tmp_path / "nothing")]) == 2


def test_tokenize_detokenize_round_trip_with_shipped_tokenizers(tmp_path):
    src = make_audio(tmp_path / "tone.wav", 1.5, 16000)
    tokens = tmp_path / "tone.safetensors"
    assert main(["tokenize", str(src), "-o", str(tokens), "--quiet"]) == 0
    out = tmp_path / "back.wav"
    assert main(["detokenize", str(tokens), "-o", str(out)]) == 0
    wav, sr = sf.read(out)
    assert sr == 16000 and abs(len(wav) / sr - 1.5) < 0.05 and np.isfinite(wav).all()
    assert main(["detokenize", str(tmp_path / "none.safetensors"), "-o", str(out)]) == 2
    assert main(["train", "codec", "-o", str(tmp_path / "run")]) == 2  # needs --data
    assert main(["train", "semantic", "-o", str(tmp_path / "run")]) == 2  # needs --shards
    music = tmp_path / "music"
    music.mkdir()
    assert main(["train", "semantic-tokenizer", "--data", str(music), "-o", str(tmp_path / "run"),
                 "--minutes", "5"]) == 2
    assert main(["train", "codec", "--data", str(music), "-o", str(tmp_path / "run"), "--minutes", "0"]) == 2
    assert main(["train", "codec", "--data", str(music), "-o", str(tmp_path / "run"), "--init-from",
                 str(tmp_path / "none")]) == 2
    assert not (tmp_path / "run").exists()  # refused before anything is made


def test_generate_shows_one_progress_bar_over_the_whole_job(video, tmp_path, capsys):
    assert main(["generate", video, "-o", str(tmp_path / "a.wav"), "--model", "debug", "--seed", "0"]) == 0
    err = capsys.readouterr().err
    bar = err[: err.index("wrote")]
    updates = [u for u in bar.replace("\n", "\r").split("\r") if "%|" in u]
    percents = [int(u.split("%|")[0].rsplit(":", 1)[1]) for u in updates]
    assert percents == sorted(percents) and percents[-1] == 100 and len(updates) > 3
    assert bar.count("\n") == 1  # one bar, left on screen once at the end
    assert {u.split(":")[0] for u in updates} >= {"semantic tokens", "decoding the waveform"}
    assert all("<" in u for u in updates)  # elapsed < time left
    assert main(["generate", video, "-o", str(tmp_path / "b.wav"), "--model", "debug", "--seed", "0",
                 "--quiet"]) == 0
    assert "%|" not in capsys.readouterr().err


def test_drum_redraws_reach_generate_and_a_model_without_drum_tokens_refuses_them(video, tmp_path, monkeypatch,
                                                                                    capsys):
    from v2meow import pipeline

    assert main(["generate", video, "-o", str(tmp_path / "x.wav"), "--model", "debug", "--drum-redraws", "3",
                 "--quiet"]) == 2
    assert "names no semantic tokens of drums" in capsys.readouterr().err and not (tmp_path / "x.wav").exists()
    seen = []
    generate = pipeline.V2Meow.generate
    monkeypatch.setattr(pipeline.V2Meow, "generate",
                        lambda self, *a, **kw: seen.append(kw["drum_redraws"]) or generate(self, *a, **kw))
    for extra in ([], ["--drum-redraws", "0"]):
        out = tmp_path / f"{len(seen)}.wav"
        assert main(["generate", video, "-o", str(out), "--model", "debug", "--seconds", "0.5", "--quiet", *extra]) == 0
    assert seen == [None, 0]
