"""VGGish front end against direct computations, and the network with random weights only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from v2meow.errors import UserError
from v2meow.metrics.fad import FrechetAudioDistance
from v2meow.metrics.vggish import (
    VGGish,
    VGGishEmbedder,
    fad_examples,
    hertz_to_mel,
    log_mel_spectrogram,
    mel_matrix,
    vggish_examples,
)

TINY = {"channels": (2, 3, 4, 4), "hidden": 8, "dim": 5}


def test_log_mel_frames_and_one_bin_by_direct_dft() -> None:
    rng = np.random.default_rng(0)
    wav = rng.uniform(-1, 1, 16000)
    log_mel = log_mel_spectrogram(wav)
    assert log_mel.shape == (1 + (16000 - 400) // 160, 64)  # 98 frames, no padding

    # Frame 3 by hand: periodic Hann of 400 samples, 512-point DFT magnitudes, mel weights, log(+0.01).
    seg = wav[3 * 160 : 3 * 160 + 400]
    n = np.arange(400)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / 400)
    k = np.arange(257)[:, None]
    mags = np.abs(np.sum(seg * hann * np.exp(-2j * np.pi * k * n / 512), axis=1))
    np.testing.assert_allclose(log_mel[3], np.log(mags @ mel_matrix() + 0.01), rtol=1e-9)


def test_mel_bands_span_125_to_7500_hz() -> None:
    w = mel_matrix()
    assert w.shape == (257, 64)
    assert np.all(w[0] == 0)  # DC excluded
    freqs = np.linspace(0, 8000, 257)
    used = freqs[w.sum(axis=1) > 0]
    assert used.min() > 125 and used.max() < 7500
    # A 1 kHz tone peaks in the band whose centre (mel edges are evenly spaced) is nearest to 1 kHz.
    t = np.arange(16000) / 16000
    peak = np.argmax(log_mel_spectrogram(np.sin(2 * np.pi * 1000 * t)).mean(axis=0))
    centres = np.linspace(hertz_to_mel(125.0), hertz_to_mel(7500.0), 66)[1:-1]
    assert peak == np.argmin(np.abs(centres - hertz_to_mel(1000.0)))


def test_example_framing() -> None:
    wav = np.random.default_rng(1).uniform(-0.5, 0.5, 3 * 16000)
    assert vggish_examples(wav).shape == ((1 + (48000 - 400) // 160) // 96, 96, 64)  # 3 examples of 0.96 s
    assert vggish_examples(np.stack([wav, wav]), 16000).shape == (3, 96, 64)  # [C, N] mixed to mono
    # Google FAD: 1 s windows every 8000 samples → starts 0, 0.5, ..., 2 s.
    assert fad_examples(wav).shape == (5, 96, 64)
    assert fad_examples(wav, step_size=None).shape == (3, 96, 64)
    assert fad_examples(wav[:15999]).shape == (0, 96, 64)
    # Its loudness normalisation (divide by max(0.1, max x)) makes louder copies identical...
    np.testing.assert_allclose(fad_examples(wav * 1.7), fad_examples(wav), rtol=1e-9)
    # ...and a 16 kHz window is exactly the plain front end's first example.
    np.testing.assert_allclose(fad_examples(wav, normalize=False)[0], vggish_examples(wav)[0], rtol=1e-12)


def test_full_vggish_shapes_and_size() -> None:
    torch.manual_seed(0)
    model = VGGish().eval()
    # Public VGGish: 72,141,184 parameters.
    assert sum(p.numel() for p in model.parameters()) == 72_141_184
    examples = torch.as_tensor(vggish_examples(np.random.default_rng(2).uniform(-1, 1, 2 * 16000)), dtype=torch.float32)
    with torch.inference_mode():
        out = model(examples)
    assert out.shape == (2, 128)
    assert torch.isfinite(out).all()
    with pytest.raises(UserError):
        model(torch.zeros(1, 64, 96))


def test_safetensors_round_trip_and_errors(tmp_path) -> None:
    torch.manual_seed(1)
    model = VGGish(**TINY).eval()
    path = tmp_path / "vggish.safetensors"
    save_file(model.state_dict(), str(path))
    loaded = VGGish.from_safetensors(path, **TINY)
    x = torch.randn(3, 96, 64)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x))

    with pytest.raises(UserError, match="not found"):
        VGGish.from_safetensors(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    with pytest.raises(UserError):
        VGGish.from_safetensors(garbage)
    partial = tmp_path / "partial.safetensors"
    save_file({k: v for k, v in model.state_dict().items() if k.startswith("features")}, str(partial))
    with pytest.raises(UserError, match="missing"):
        VGGish.from_safetensors(partial, **TINY)
    with pytest.raises(UserError, match="shape"):
        VGGish.from_safetensors(path, **{**TINY, "dim": 6})  # same names, another embedding size


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # 3 embeddings of 5 dims: singular
def test_embedder_feeds_fad() -> None:
    torch.manual_seed(2)
    embedder = VGGishEmbedder(VGGish(**TINY))
    rng = np.random.default_rng(3)
    wav = rng.uniform(-1, 1, 2 * 16000).astype(np.float32)
    emb = embedder.embed(wav)
    assert emb.shape == (3, 5)  # windows starting at 0, 0.5 and 1 s
    fad = FrechetAudioDistance(embedder)
    fad.update_reference_audio(wav, 16000)
    fad.update_generated_audio(np.stack([wav, wav]), 16000)  # stereo copy: same mono mix
    out = fad.compute()
    assert out["backend"] == "vggish" and out["n_generated"] == 3 and abs(out["fad"]) < 1e-6
