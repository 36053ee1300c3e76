"""Token files, the shipped-tokenizer format and loader, and the codec's discriminator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from v2meow.errors import IdentityMismatch, UserError
from v2meow.tokenizers.codec import SoundStream, SoundStreamConfig
from v2meow.tokenizers.codec.discriminator import (
    DiscriminatorConfig,
    MultiScaleSTFTDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from v2meow.tokenizers.default import (
    Tokenizers,
    canonical_codec,
    codec_state_for_shipping,
    default_tokenizers_dir,
    load_codec_state,
    load_tokenizers,
    save_tokenizers,
    windowed_semantic_tokens,
)
from v2meow.tokenizers.kmeans import KMeans
from v2meow.tokenizers.semantic import SemanticEncoder, SemanticEncoderConfig, SemanticTokenizer
from v2meow.tokenizers.tokenfile import TokenFile, detokenize, load_tokens, save_tokens, tokenize

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def noise(seconds: float, seed: int = 0) -> torch.Tensor:
    return torch.randn(int(seconds * 16000), generator=torch.Generator().manual_seed(seed)) * 0.1


@pytest.fixture(scope="module")
def tokenizers() -> Tokenizers:
    """A tiny random codec and a semantic tokenizer fitted on noise, both float16-exact like shipped ones."""
    torch.manual_seed(0)
    codec = SoundStream.debug("frame")
    codec.train()
    codec(noise(0.5)[None])  # codebooks from data
    codec = canonical_codec(codec)
    encoder = SemanticEncoder(SemanticEncoderConfig.debug())
    encoder.load_state_dict({k: v.half().float() for k, v in encoder.state_dict().items()})
    semantic = SemanticTokenizer.fit(encoder.eval(), [noise(2.0, 1)], k=4, seed=0)
    km = semantic.kmeans
    km.centroids, km.mean, km.scale = km.centroids.half().float(), km.mean.half().float(), km.scale.half().float()
    return Tokenizers(codec, semantic, {"coarse_levels": 2})


def test_token_file_round_trip(tmp_path: Path) -> None:
    tf = TokenFile(semantic=torch.tensor([1, 2, 3]), acoustic=torch.randint(0, 1024, (4, 6)), sample_rate=16000,
                   num_samples=1900, semantic_identity={"name": "s"}, codec_identity={"name": "c", "weights": "ab"},
                   source="x.wav", extra={"coarse_levels": 2})
    path = save_tokens(tmp_path / "t.safetensors", tf)
    back = load_tokens(path)
    assert torch.equal(back.semantic, tf.semantic) and torch.equal(back.acoustic, tf.acoustic)
    assert back.acoustic.dtype == torch.long and back.num_samples == 1900 and back.source == "x.wav"
    assert back.codec_identity == tf.codec_identity and back.extra == {"coarse_levels": 2}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert f.get_tensor("acoustic").dtype == torch.int16  # ids < 32768 are stored small
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"), metadata={"format": "something"})
    with pytest.raises(UserError, match="not a v2meow token file"):
        load_tokens(tmp_path / "other.safetensors")


def test_shipping_state_drops_training_statistics(tokenizers: Tokenizers) -> None:
    state = codec_state_for_shipping(tokenizers.codec)
    assert "quantizer.embed_sum" not in state and "quantizer.cluster_size" not in state
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    again = load_codec_state(SoundStream.debug("frame"), state)
    assert again.identity() == tokenizers.codec.identity()  # canonical form survives shipping exactly
    with pytest.raises(UserError, match="do not match"):
        load_codec_state(SoundStream.debug("conv"), state)


def test_save_load_keeps_tokens_identical(tokenizers: Tokenizers, tmp_path: Path) -> None:
    out = save_tokenizers(tokenizers.codec, tokenizers.semantic, tmp_path / "tok", coarse_levels=2,
                          sources={"note": "test"})
    info = json.loads((out / "tokenizers.json").read_text())
    assert info["coarse_levels"] == 2 and info["fine_levels"] == 2 and info["sources"] == {"note": "test"}
    loaded = load_tokenizers(out)
    assert loaded.identity() == tokenizers.identity() == info["identity"]
    wav = noise(1.3, 5)
    assert torch.equal(loaded.semantic_tokens(wav), tokenizers.semantic_tokens(wav))
    assert torch.equal(loaded.acoustic_codes(wav), tokenizers.acoustic_codes(wav))
    assert load_tokenizers(out) is loaded  # cached while the files are unchanged


def test_save_load_keeps_chroma_tokens(tokenizers: Tokenizers, tmp_path: Path) -> None:
    encoder = tokenizers.semantic.encoder
    semantic = SemanticTokenizer.fit(encoder, [noise(2.0, 1)], k=4, seed=0, chroma=2)
    km = semantic.kmeans
    km.centroids, km.mean, km.scale = km.centroids.half().float(), km.mean.half().float(), km.scale.half().float()
    out = save_tokenizers(tokenizers.codec, semantic, tmp_path / "tok", coarse_levels=2)
    assert json.loads((out / "tokenizers.json").read_text())["semantic"]["chroma"] == 2
    loaded = load_tokenizers(out)
    assert loaded.semantic.chroma == 2 and loaded.identity()["semantic"] == semantic.identity()
    wav = noise(1.3, 5)
    assert torch.equal(loaded.semantic_tokens(wav), windowed_semantic_tokens(semantic, wav))


def test_windowed_helpers_match_whole_signal_calls(tokenizers: Tokenizers) -> None:
    wav = noise(2.3, 7)
    whole_codes = tokenizers.codec.encode(wav[None])[0]
    windowed = tokenizers.acoustic_codes(wav, window_seconds=0.5, context_seconds=0.4)
    assert windowed.shape == whole_codes.shape == (4, 115)
    assert (windowed == whole_codes).float().mean() > 0.9  # only edge effects of the STFT framing may differ
    sem = tokenizers.semantic_tokens(wav, window_seconds=0.8, context_seconds=0.4)
    assert sem.shape == (58,) and int(sem.max()) < 4
    decoded = tokenizers.decode(whole_codes, window_seconds=0.5, context_seconds=0.3)
    assert decoded.shape == (115 * 320,) and torch.isfinite(decoded).all()


def test_tokenize_and_detokenize_files(tokenizers: Tokenizers, tmp_path: Path) -> None:
    import soundfile as sf

    (tmp_path / "in" / "sub").mkdir(parents=True)
    sf.write(tmp_path / "in" / "a.wav", noise(0.7).numpy(), 16000)
    sf.write(tmp_path / "in" / "sub" / "b.flac", noise(0.4, 2).numpy(), 16000)
    files = tokenize(tmp_path / "in", tmp_path / "out", tokenizers=tokenizers)
    assert [f.relative_to(tmp_path / "out").as_posix() for f in files] == ["a.tokens.safetensors",
                                                                            "sub/b.tokens.safetensors"]
    wav = detokenize(files[1], tmp_path / "b.wav", tokenizers=tokenizers)
    assert sf.info(str(wav)).frames == int(0.4 * 16000)
    raw = tokenizers.decode
    try:  # a decode that overshoots full scale is written limited under it, not clipped
        tokenizers.decode = lambda codes, **kw: 3.0 * raw(codes, **kw) / raw(codes, **kw).abs().max()
        loud = sf.read(str(detokenize(files[1], tmp_path / "loud.wav", tokenizers=tokenizers)))[0]
    finally:
        tokenizers.decode = raw
    assert 0.98 < np.abs(loud).max() < 0.999
    with pytest.raises(UserError, match="output folder"):
        tokenize(tmp_path / "in", tmp_path / "x.safetensors", tokenizers=tokenizers)
    with pytest.raises(UserError, match="levels"):
        detokenize(files[0], tmp_path / "c.wav", tokenizers=tokenizers, levels=9)
    torch.manual_seed(3)
    other = Tokenizers(SoundStream.debug("frame").eval(), tokenizers.semantic)
    with pytest.raises(IdentityMismatch):
        detokenize(files[0], tmp_path / "d.wav", tokenizers=other)


def test_kmeans_of_another_layer_is_refused(tokenizers: Tokenizers) -> None:
    km = KMeans()
    km.load_state_dict(tokenizers.semantic.kmeans.state_dict())
    km.fitted_on = {**tokenizers.semantic.kmeans.fitted_on, "layer": 2}
    with pytest.raises(IdentityMismatch, match="layer"):
        SemanticTokenizer(tokenizers.semantic.encoder, km)


@torch.no_grad()
def test_discriminator_shapes_and_losses() -> None:
    torch.manual_seed(0)
    disc = MultiScaleSTFTDiscriminator(DiscriminatorConfig(n_ffts=(256, 128), channels=4, dilations=(1, 2)))
    wav = torch.randn(2, 4000) * 0.1
    logits, feats = disc(wav)
    assert len(logits) == len(feats) == 2 and all(lg.shape[:2] == (2, 1) for lg in logits)
    assert len(feats[0]) == 4  # input conv, two dilated convs, last conv
    assert float(feature_matching_loss(feats, feats)) == 0.0
    other = disc(wav + 0.1 * torch.randn_like(wav))
    assert float(feature_matching_loss(feats, other[1])) > 0
    big = [torch.full((1, 1, 2, 2), 5.0)]
    assert float(discriminator_loss(big, [-x for x in big])) == 0.0  # confident and right: no hinge loss
    assert float(generator_adversarial_loss(big)) == 0.0


shipped = pytest.mark.skipif(not (default_tokenizers_dir() / "tokenizers.json").is_file(),
                             reason="this checkout ships no tokenizers")


def test_the_fad_reference_encoder_round_trips_and_refuses_edited_weights(tokenizers: Tokenizers,
                                                                       tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from v2meow.tokenizers.default import load_fad_semantic, save_fad_reference

    root = save_fad_reference(tokenizers.semantic, tmp_path / "fad", note="test")
    got = load_fad_semantic(root)
    weights = ("encoder_weights", "kmeans")  # float16 on disk
    mine = tokenizers.semantic.identity()
    assert {k: v for k, v in got.identity().items() if k not in weights} == \
        {k: v for k, v in mine.items() if k not in weights}
    assert load_fad_semantic(save_fad_reference(got, tmp_path / "again")).identity() == got.identity()
    wav = noise(1.0)
    assert (got.tokenize(wav[None]) == tokenizers.semantic.tokenize(wav[None])).float().mean() > 0.9
    state = load_file(str(root / "semantic_encoder.safetensors"))
    name = next(iter(state))
    state[name] = state[name] + 0.5
    save_file(state, str(root / "semantic_encoder.safetensors"))
    with pytest.raises(UserError, match="weights"):  # the k-means no longer fits, or the recorded identity
        load_fad_semantic(root)
    with pytest.raises(UserError, match="no fad.json"):
        load_fad_semantic(tmp_path)


@shipped
def test_shipped_fad_reference_is_a_shipped_semantic_tokenizer() -> None:
    from v2meow.tokenizers.default import load_fad_semantic

    ref = load_fad_semantic()  # checked against its recorded identity on loading
    assert ref.frame_rate == 25 and ref.identity()["encoder"] == "v2meow-semantic-encoder"


@shipped
def test_shipped_tokenizers_load_and_round_trip(tmp_path: Path) -> None:
    tok = load_tokenizers()
    info = tok.info
    assert tok.sample_rate == 16000 and tok.codec.frame_rate == 50 and tok.semantic.frame_rate == 25
    assert 1 <= info["coarse_levels"] < tok.codec.num_levels
    sizes = {name: (default_tokenizers_dir() / name).stat().st_size for name in info["files"]}
    assert sum(sizes.values()) <= 9.5e6  # leaves the stages their room in the embedded model's 24 MB
    wav = noise(1.0)
    codes = tok.acoustic_codes(wav)
    assert codes.shape == (tok.codec.num_levels, 50) and tok.semantic_tokens(wav).shape == (25,)
    assert tok.decode(codes).shape == (16000,)


def test_windows_keep_the_phase_cycle_of_a_phase_advance_codec(tokenizers: Tokenizers) -> None:
    torch.manual_seed(0)
    codec = SoundStream(SoundStreamConfig.debug("frame").replace(n_fft=1280, phase_advance=True))
    codec.train()
    codec(noise(0.5)[None])
    codec = canonical_codec(codec)
    assert codec.frame_cycle == 4 and codec.aligned_start(7) == 4 and SoundStream.debug("frame").frame_cycle == 1
    tok = Tokenizers(codec, tokenizers.semantic, {"coarse_levels": 2})
    wav = noise(2.3, 7)
    codes = codec.encode(wav[None])[0]
    with torch.no_grad():
        whole = codec.decode(codes[None])[0]
        shifted = codec.decode(codes[None, :, 3:])[0]  # a window starting off the cycle
    inner = slice(20 * 320, 90 * 320)
    moved = shifted[inner.start - 3 * 320 : inner.stop - 3 * 320]
    off = (moved - whole[inner]).abs().mean() / whole[inner].abs().mean()
    assert off > 0.3  # phases coded from another origin: not the same sound
    windowed = tok.decode(codes, window_seconds=0.5, context_seconds=0.3)  # 25-frame windows, 15 of context
    assert (windowed - whole).abs().max() < 1e-3 * whole.abs().max()
    again = tok.acoustic_codes(wav, window_seconds=0.5, context_seconds=0.3)
    assert (again == codes).float().mean() > 0.9


def test_codec_decoding_script_keeps_the_codes_and_cuts_the_head(tokenizers: Tokenizers, tmp_path: Path) -> None:
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "scripts" / "codec_decoding.py"
    spec = importlib.util.spec_from_file_location("codec_decoding", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg = tokenizers.codec.config.replace(phase_advance=True, phase_head="frequency", freq_below_hz=2000.0,
                                          freq_hidden=8)
    codec = SoundStream(cfg)
    codec.load_state_dict(tokenizers.codec.state_dict(), strict=False)  # the same codec, and a new head
    torch.nn.init.normal_(codec.decoder.freq[-1].weight, std=0.1)
    codec = canonical_codec(codec)
    src = save_tokenizers(codec, tokenizers.semantic, tmp_path / "src", coarse_levels=2)
    assert module.main([str(src), "-o", str(tmp_path / "out"), "--below-hz", "1000", "--reset-db", "6"]) == 0
    a, b = load_tokenizers(src).codec, load_tokenizers(tmp_path / "out").codec
    assert b.config.freq_below_hz == 1000.0 and b.config.freq_reset_db == 6.0
    assert b.decoder.freq[-1].weight.shape[0] == 40  # 1000 Hz at 25 Hz a bin (n_fft 640)
    assert torch.equal(b.decoder.freq[-1].weight, a.decoder.freq[-1].weight[:40])
    assert (a.identity()["codes"], a.identity()["config_hash"]) == (b.identity()["codes"], b.identity()["config_hash"])
    with pytest.raises(SystemExit):  # a head reaches no higher than it was trained for
        module.main([str(src), "-o", str(tmp_path / "bad"), "--below-hz", "4000"])
