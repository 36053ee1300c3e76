"""Tests for v2meow.io.audio: loading (files and video tracks), resampling, saving, errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
from media import _audio_signal, make_audio, make_text_file, make_video

from v2meow.errors import UserError
from v2meow.io.audio import load_audio, resample, save_audio


def _lag(a: np.ndarray, b: np.ndarray, max_lag: int = 400) -> int:
    """Lag (samples) of ``a`` relative to ``b`` maximising their correlation."""
    n = len(a) - 2 * max_lag
    seg = a[max_lag : max_lag + n]
    scores = [float(np.dot(seg, b[max_lag + k : max_lag + k + n])) for k in range(-max_lag, max_lag)]
    return int(np.argmax(scores)) - max_lag


@pytest.mark.parametrize("ext", [".wav", ".flac"])
def test_save_load_round_trip_lossless(tmp_path, ext):
    rng = np.random.default_rng(0)
    wav = (0.5 * rng.standard_normal((2, 8000))).clip(-1, 1).astype(np.float32)
    path = tmp_path / f"x{ext}"
    save_audio(path, wav, 16000)
    back = load_audio(path, sample_rate=16000, mono=False)
    assert back.shape == (2, 8000) and back.dtype == np.float32
    assert np.abs(back - wav).max() <= 1.0 / 32768 + 1e-6  # 16-bit quantisation only
    mono = load_audio(path, sample_rate=16000)
    np.testing.assert_allclose(mono, back.mean(axis=0), atol=1e-6)
    assert sorted(os.listdir(tmp_path)) == [f"x{ext}"]  # no temporary file left behind


def test_save_clips_instead_of_wrapping(tmp_path):
    path = tmp_path / "loud.wav"
    save_audio(path, np.array([2.0, -3.0, 0.5], dtype=np.float32), 16000)
    np.testing.assert_allclose(load_audio(path), [32767 / 32768, -1.0, 0.5], atol=1e-4)


@pytest.mark.parametrize("ext", [".m4a", ".mp3", ".ogg"])
def test_lossy_formats_round_trip(tmp_path, ext):
    sr = 16000
    t = np.arange(sr) / sr
    # A chirp, not a steady tone: a steady tone would correlate equally well one period off.
    wav = (0.5 * np.sin(2 * np.pi * (200 * t + 600 * t**2))).astype(np.float32)
    path = tmp_path / f"x{ext}"
    save_audio(path, wav, sr)
    back = load_audio(path, sample_rate=sr)
    assert abs(len(back) - len(wav)) <= 1152  # at most one codec frame of padding
    assert _lag(back[:12000], wav[:12000]) == 0  # the encoder delay is compensated
    assert np.corrcoef(back[2000:12000], wav[2000:12000])[0, 1] > 0.95


def test_resample_lengths_and_content():
    sr_in, sr_out = 44100, 16000
    t = np.arange(sr_in) / sr_in
    wav = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    out = resample(wav, sr_in, sr_out)
    assert out.shape == (16000,) and out.dtype == np.float32
    expected = np.sin(2 * np.pi * 1000 * np.arange(16000) / sr_out)
    assert np.abs(out[100:-100] - expected[100:-100]).max() < 1e-2
    stereo = resample(np.stack([wav, -wav]), sr_in, sr_out)
    assert stereo.shape == (2, 16000)
    np.testing.assert_allclose(stereo[1], -stereo[0], atol=1e-6)
    # A tone above the new Nyquist frequency is removed, not aliased.
    high = np.sin(2 * np.pi * 12000 * t).astype(np.float32)
    assert np.abs(resample(high, sr_in, sr_out)[200:-200]).max() < 0.05


def test_load_resamples_and_trims(tmp_path):
    path = make_audio(tmp_path / "a.wav", seconds=2.0, sample_rate=22050)
    wav = load_audio(path, sample_rate=16000)
    assert wav.shape == (32000,)
    part = load_audio(path, sample_rate=16000, start=0.5, duration=1.0)
    assert part.shape == (16000,)
    assert _lag(part[:8000], wav[8000:16000], max_lag=200) == 0


def test_audio_track_of_a_video(tmp_path):
    path = make_video(tmp_path / "v.mp4", seconds=3.0, audio=True, audio_rate=16000)
    wav = load_audio(path, sample_rate=16000, mono=False)
    assert wav.shape[0] == 2
    assert abs(wav.shape[1] - 48000) <= 1024
    ref = _audio_signal(3.0, 16000, 2, 440.0, 0)
    assert _lag(wav[0, :16000], ref[0, :16000]) == 0
    # start > 1 s takes the seeking path; it must land on the same samples.
    part = load_audio(path, sample_rate=16000, mono=False, start=1.5, duration=1.0)
    assert part.shape == (2, 16000)
    assert _lag(part[0, :8000], ref[0, 24000:32000]) == 0


def test_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_audio(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        load_audio(empty)
    text = make_text_file(tmp_path / "text.wav")
    with pytest.raises(UserError, match="text.wav"):
        load_audio(text)
    silent_video = make_video(tmp_path / "silent.mp4", seconds=1.0, audio=False)
    with pytest.raises(UserError, match="no audio stream"):
        load_audio(silent_video)
    with pytest.raises(UserError, match="unsupported extension"):
        save_audio(tmp_path / "x.xyz", np.zeros(10, np.float32), 16000)
    with pytest.raises(UserError):
        save_audio(tmp_path / "nan.wav", np.array([np.nan], np.float32), 16000)
    assert not (tmp_path / "nan.wav").exists()


def _music_like(seconds: float, sr: int = 16000, level: float = 0.01) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    env = 0.5 + 0.5 * (np.sin(2 * np.pi * 2.0 * t) > 0)  # a pulse at 4 beats a second
    return (level * env * (np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 330 * t))).astype(np.float32)


def test_match_loudness_reaches_the_target_from_any_level():
    import pyloudnorm

    from v2meow.io.audio import match_loudness

    meter = pyloudnorm.Meter(16000)
    for level in (0.003, 0.03, 0.3):
        out = match_loudness(_music_like(4.0, level=level), 16000, -20.0)
        assert abs(meter.integrated_loudness(out.astype(np.float64)) + 20.0) < 0.05
        assert np.abs(out).max() <= 10 ** (-1 / 20) + 1e-6


def test_match_loudness_never_clips_and_caps_its_gain():
    from v2meow.io.audio import match_loudness

    clicks = np.zeros(32000, np.float32)
    clicks[::4000] = 0.05  # very peaky: reaching -10 LUFS would need peaks far above full scale
    out = match_loudness(clicks, 16000, -10.0)
    assert abs(np.abs(out).max() - 10 ** (-1 / 20)) < 1e-4
    hiss = np.random.default_rng(0).normal(0, 1e-6, 32000).astype(np.float32)  # near-silence
    assert np.abs(match_loudness(hiss, 16000, -16.0)).max() <= np.abs(hiss).max() * 10 ** (40 / 20) * 1.0001
    assert not match_loudness(np.zeros(16000, np.float32), 16000, -16.0).any()
    short = _music_like(0.2, level=0.01)  # shorter than a 400 ms loudness block: measured by its RMS
    rms = np.sqrt(np.mean(match_loudness(short, 16000, -20.0) ** 2))
    assert abs(20 * np.log10(rms) + 20.0) < 0.05


def test_integrated_loudness_agrees_with_the_reference_meter_at_any_rate():
    """v2meow.io.loudness (numpy alone) reads what pyloudnorm's BS.1770-4 meter reads, gating included."""
    import pyloudnorm

    from v2meow.io.loudness import integrated_loudness

    rng = np.random.default_rng(0)
    for sr in (16000, 44100):
        t = np.arange(6 * sr) / sr
        signals = [np.sin(2 * np.pi * 997 * t), 0.1 * rng.standard_normal(len(t)), 0.3 * np.sin(2 * np.pi * 40 * t),
                   0.3 * np.sin(2 * np.pi * 440 * t) * (t % 2 < 0.5), 0.05 * np.sin(2 * np.pi * 6000 * t)]
        for x in signals:
            assert abs(integrated_loudness(x, sr) - pyloudnorm.Meter(sr).integrated_loudness(x)) < 0.01
    assert abs(integrated_loudness(np.sin(2 * np.pi * 997 * np.arange(48000) / 48000), 48000) + 3.0) < 0.1
    assert integrated_loudness(np.zeros(16000), 16000) == -np.inf  # below the absolute gate
    assert integrated_loudness(np.ones(100), 16000) == -np.inf  # shorter than one block


def test_k_weighting_in_blocks_equals_one_long_filter():
    from v2meow.io import loudness

    rng = np.random.default_rng(5)
    sr = 16000
    x = rng.normal(0, 0.1, 3 * loudness.BLOCK_FFT + 1234) * np.sin(np.linspace(0, 40, 3 * loudness.BLOCK_FFT + 1234))
    n_fft = 1 << (len(x) + sr - 1).bit_length()  # the whole signal in one FFT, a second of zeros after it
    whole = np.fft.irfft(np.fft.rfft(x, n_fft) * loudness.k_weighting_response(sr, n_fft), n_fft)[: len(x)]
    blocks = loudness.k_weight(x, sr)
    assert np.abs(blocks - whole).max() < 1e-9 * np.abs(whole).max()


def test_flac_and_wav_need_no_pyav(tmp_path):
    """A machine without PyAV, librosa or mir_eval (a GPU box with no package index) still reads and writes
    FLAC/WAV and trains and exports the codec: PyAV is imported only for what libsndfile cannot read, and for
    videos."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for m in ('av', 'librosa', 'mir_eval'): sys.modules[m] = None\n"  # any import of them now fails
        "import numpy as np\n"
        "from v2meow.io.audio import load_audio, save_audio\n"
        "import v2meow.cli, v2meow.config, v2meow.train.tokenizers, v2meow.train.tokenizers.codec\n"
        f"p = {str(tmp_path / 'a.flac')!r}\n"
        "save_audio(p, np.full(1600, 0.25, np.float32), 16000)\n"
        "print(round(float(load_audio(p, 16000).mean()), 3))\n"
        "try:\n"
        f"    save_audio({str(tmp_path / 'a.m4a')!r}, np.zeros(1600, np.float32), 16000)\n"
        "except ImportError:\n"
        "    print('m4a needs pyav')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0.25", "m4a", "needs", "pyav"]
