"""Spectral frontends, the masked-prediction encoder and the semantic tokenizer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from v2meow.errors import ConfigError, IdentityMismatch, UserError
from v2meow.tokenizers.kmeans import KMeans, first_iteration_targets, fit_first_iteration_kmeans
from v2meow.tokenizers.mel import Chroma, LogMel, hz_to_mel, mel_filterbank, mel_to_hz
from v2meow.tokenizers.semantic import (
    SemanticEncoder,
    SemanticEncoderConfig,
    SemanticTokenizer,
    span_mask,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def sine(freq: float, seconds: float = 0.5, sr: int = 16000) -> torch.Tensor:
    t = torch.arange(int(seconds * sr)) / sr
    return 0.5 * torch.sin(2 * math.pi * freq * t)


def melody(seconds: float = 1.0, sr: int = 16000, seed: int = 0, note: float = 0.2) -> torch.Tensor:
    """``[T]``: a sequence of random notes of ``note`` seconds, so frames have context worth predicting from."""
    g = torch.Generator().manual_seed(seed)
    notes = 220.0 * 2 ** (torch.randint(0, 12, (int(seconds / note) + 1,), generator=g) / 12)
    t = torch.arange(int(seconds * sr)) / sr
    return 0.5 * torch.sin(2 * math.pi * notes[(t / note).long()] * t)


# ---- mel / chroma -----------------------------------------------------------------------------------


@pytest.mark.parametrize("htk", [False, True])
def test_mel_scale_inverts(htk: bool) -> None:
    f = np.array([0.0, 100.0, 999.0, 1000.0, 4000.0, 8000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f, htk), htk), f, rtol=1e-9, atol=1e-6)


def test_mel_filterbank_shape_and_coverage() -> None:
    fb = mel_filterbank(16000, 1024, 40)
    assert fb.shape == (40, 513) and (fb >= 0).all()
    assert (fb.sum(1) > 0).all()  # no empty band at this resolution
    peaks = fb.argmax(1)
    assert (np.diff(peaks) >= 0).all()  # bands go up in frequency


def test_log_mel_frames_and_peak() -> None:
    for padding, frames in (("center", 8000 // 320 + 1), ("same", math.ceil(8000 / 320))):
        mel = LogMel(16000, 1024, 320, 40, padding=padding)
        out = mel(sine(1000.0)[None])
        assert out.shape == (1, 40, frames) and out.dtype == torch.float32
    # The loudest band of a 1 kHz tone is the band whose filter peaks nearest 1 kHz.
    fb = mel_filterbank(16000, 1024, 40)
    centre_hz = fb.argmax(1) * 16000 / 1024
    band = int(LogMel(16000, 1024, 320, 40)(sine(1000.0)[None])[0, :, 5].argmax())
    assert abs(centre_hz[band] - 1000.0) <= np.abs(centre_hz - 1000.0).min() + 16000 / 1024
    assert LogMel(16000, 1024, 640, 40, padding="same")(torch.zeros(2, 7000)).shape == (2, 40, 11)


def test_chroma_finds_the_pitch_class() -> None:
    chroma = Chroma(16000, 2048, 320)
    assert int(chroma(sine(440.0)[None])[0, :, 10].argmax()) == 9  # A
    assert int(chroma(sine(261.63)[None])[0, :, 10].argmax()) == 0  # C


# ---- encoder -------------------------------------------------------------------------------------------


def test_config_rate_and_validation() -> None:
    cfg = SemanticEncoderConfig()
    assert cfg.hop_length == 640 and cfg.frame_rate == 25.0
    with pytest.raises(ConfigError, match="token_layer"):
        SemanticEncoderConfig(layers=2, token_layer=3)
    with pytest.raises(ConfigError, match="whole number"):
        SemanticEncoderConfig(frame_rate=24.0, sample_rate=16000)  # 666.67 samples per frame
    with pytest.raises(ConfigError, match="heads"):
        SemanticEncoderConfig(width=30, heads=4)
    dbg = SemanticEncoderConfig.debug()
    assert SemanticEncoderConfig.from_dict(dbg.to_dict()) == dbg


def test_span_mask() -> None:
    g = torch.Generator().manual_seed(0)
    mask = span_mask(64, 100, 0.13, 5, generator=g)
    assert mask.shape == (64, 100) and mask.dtype == torch.bool
    assert 0.35 < float(mask.float().mean()) < 0.65
    rare = span_mask(16, 10, 1e-6, 3, generator=g)
    assert bool(rare.any(1).all())  # every row gets at least one masked frame
    assert int(rare.sum(1).max()) <= 3


def test_features_shape_per_layer() -> None:
    torch.manual_seed(0)
    enc = SemanticEncoder(SemanticEncoderConfig.debug()).eval()
    wav = torch.randn(2, 7000) * 0.1
    for layer in (0, 1, 2):
        assert enc.features(wav, layer).shape == (2, 11, 32)
    assert not torch.equal(enc.features(wav, 1), enc.features(wav, 2))
    with pytest.raises(ValueError):
        enc.features(wav, 3)


def test_masked_frames_hide_their_audio() -> None:
    torch.manual_seed(0)
    enc = SemanticEncoder(SemanticEncoderConfig.debug())
    a, b = melody(seed=0)[None], melody(seed=1)[None]
    everything = torch.ones(1, 25, dtype=torch.bool)
    nothing = torch.zeros(1, 25, dtype=torch.bool)
    with torch.no_grad():
        assert torch.equal(enc._embed(a, everything), enc._embed(b, everything))
        assert not torch.equal(enc._embed(a, nothing), enc._embed(b, nothing))


def test_masked_prediction_loss_decreases() -> None:
    torch.manual_seed(0)
    cfg = SemanticEncoderConfig.debug()
    enc = SemanticEncoder(cfg)
    # 0.4 s notes and 0.2 s masked spans: a masked frame's note can be read off its unmasked neighbours.
    wav = torch.stack([melody(2.0, seed=s, note=0.4) for s in range(4)])  # [4, 32000] → 50 frames each
    km = fit_first_iteration_kmeans(enc.frontend, [wav], k=cfg.num_targets, seed=0)
    targets = first_iteration_targets(enc.frontend, km, wav)
    assert targets.shape == (4, 50)

    def fixed_mask_loss() -> float:  # the same four masks before and after, so only the weights differ
        with torch.no_grad():
            return sum(float(enc.loss(wav, targets, torch.Generator().manual_seed(s))) for s in range(4)) / 4

    # Predicting every masked frame with the targets' overall frequencies would score their entropy: going below
    # it shows that the encoder reads the masked frames' context.
    freq = torch.bincount(targets.flatten(), minlength=cfg.num_targets).float() / targets.numel()
    unigram_entropy = float(-(freq[freq > 0] * freq[freq > 0].log()).sum())
    before = fixed_mask_loss()
    opt = torch.optim.Adam(enc.parameters(), lr=1e-2)
    for _ in range(120):
        loss = enc.loss(wav, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = fixed_mask_loss()
    assert after < before and after < unigram_entropy - 0.05, (before, after, unigram_entropy)
    with pytest.raises(ValueError, match="targets"):
        enc.loss(wav, targets[:, :-1])


# ---- tokenizer -------------------------------------------------------------------------------------------


@pytest.fixture
def tokenizer() -> SemanticTokenizer:
    torch.manual_seed(0)
    enc = SemanticEncoder(SemanticEncoderConfig.debug())
    return SemanticTokenizer.fit(enc, [torch.stack([melody(seed=0), melody(seed=1)])], k=8, seed=0)


def test_tokenizer_shape_rate_and_range(tokenizer: SemanticTokenizer) -> None:
    assert tokenizer.frame_rate == 25.0 and tokenizer.vocab_size == 8 and tokenizer.layer == 1
    tokens = tokenizer.tokenize(torch.stack([melody(2.0, seed=2), melody(2.0, seed=3)]))
    assert tokens.shape == (2, 50) and tokens.dtype == torch.long  # 2 s at 25 tokens/s
    assert int(tokens.min()) >= 0 and int(tokens.max()) < 8
    assert tokenizer.tokenize(torch.zeros(1, 7000)).shape == (1, 11)  # ceil(7000 / 640)
    ident = tokenizer.identity()
    assert ident["frame_rate"] == 25.0 and ident["vocab_size"] == 8 and ident["layer"] == 1


def test_tokenize_uses_eval_mode_and_restores_it() -> None:
    torch.manual_seed(0)
    enc = SemanticEncoder(SemanticEncoderConfig.debug().replace(dropout=0.5))
    wav = melody(seed=0)[None]
    tok = SemanticTokenizer.fit(enc, [wav], k=4)
    enc.train()
    assert torch.equal(tok.tokenize(wav), tok.tokenize(wav))  # no dropout noise
    assert enc.training


def test_kmeans_of_another_layer_or_encoder_is_refused(tokenizer: SemanticTokenizer) -> None:
    enc, km = tokenizer.encoder, tokenizer.kmeans
    SemanticTokenizer(enc, km)  # the pair it was fitted on is accepted
    with pytest.raises(IdentityMismatch, match="layer"):
        SemanticTokenizer(enc, km, layer=2)
    torch.manual_seed(1)
    other = SemanticEncoder(SemanticEncoderConfig.debug())  # same config, other weights
    with pytest.raises(IdentityMismatch, match="weights"):
        SemanticTokenizer(other, km)
    bigger = SemanticEncoder(SemanticEncoderConfig.debug().replace(layers=3))
    with pytest.raises(IdentityMismatch, match="config_hash"):
        SemanticTokenizer(bigger, km)
    with pytest.raises(UserError, match="not been fitted"):
        SemanticTokenizer(enc, KMeans())


def test_tokenizer_survives_saving_the_kmeans(tokenizer: SemanticTokenizer, tmp_path) -> None:
    tokenizer.kmeans.save(tmp_path / "km.safetensors")
    again = SemanticTokenizer(tokenizer.encoder, KMeans.load(tmp_path / "km.safetensors"))
    wav = melody(seed=5)[None]
    assert torch.equal(again.tokenize(wav), tokenizer.tokenize(wav))
    assert again.identity() == tokenizer.identity()


def test_chroma_appended_to_the_token_features() -> None:
    torch.manual_seed(0)
    enc = SemanticEncoder(SemanticEncoderConfig.debug())
    wavs = [torch.stack([melody(seed=0), melody(seed=1)])]
    tok = SemanticTokenizer.fit(enc, wavs, k=8, seed=0, chroma=2)
    assert tok.kmeans.dim == enc.config.width + 24 and tok.chroma == 2
    tokens = tok.tokenize(torch.stack([melody(2.0, seed=2)]))
    assert tokens.shape == (1, 50) and int(tokens.max()) < 8
    assert tok.identity()["chroma"] == 2
    plain = SemanticTokenizer.fit(enc, wavs, k=8, seed=0)
    assert "chroma" not in plain.identity() and "chroma" not in plain.kmeans.fitted_on  # older files still match
    with pytest.raises(IdentityMismatch, match="chroma"):
        SemanticTokenizer(enc, tok.kmeans)  # fitted with chroma, read without
    with pytest.raises(IdentityMismatch, match="chroma"):
        SemanticTokenizer(enc, plain.kmeans, chroma=2)
    # the appended chroma is the frames' chroma: a pure tone puts its pitch class in every frame's bins
    t = torch.arange(16000) / 16000
    a440 = (0.3 * torch.sin(2 * torch.pi * 440.0 * t))[None]
    from v2meow.tokenizers.semantic import token_features

    with torch.no_grad():
        feats = token_features(enc, tok.layer, tok.chroma_frames, 2, a440)
    assert feats.shape == (1, 25, enc.config.width + 24)
    chroma = feats[0, 5:20, enc.config.width:enc.config.width + 12]
    assert torch.equal(chroma, feats[0, 5:20, enc.config.width + 12:])  # two identical copies
    assert (chroma.argmax(dim=1) == chroma[0].argmax()).all() and float(chroma.max()) == pytest.approx(1.0)
