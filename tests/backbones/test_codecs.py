"""EnCodec and DAC behind the AcousticCodec interface, built from tiny configurations; the codec factory."""

import pytest
import torch

pytest.importorskip("transformers")

from backbones.tiny import DAC, ENCODEC  # noqa: E402

from v2meow.config import load_preset  # noqa: E402
from v2meow.errors import ConfigError, IdentityMismatch, UserError  # noqa: E402
from v2meow.tokenizers.codec.factory import CodecConfig, build_codec  # noqa: E402
from v2meow.tokenizers.codec.soundstream import SoundStream, SoundStreamConfig  # noqa: E402


def encodec_cfg(**kw):
    sec = {"path": None, "model_config": dict(ENCODEC), "sample_rate": 16000, "frame_rate": 50.0, "num_levels": 4,
           "codebook_size": 64, **kw}
    return CodecConfig.from_dict({"backend": "encodec", "encodec": sec})


def dac_cfg(**kw):
    sec = {"path": None, "model_config": dict(DAC), "num_levels": 4, "codebook_size": 64, **kw}
    return CodecConfig.from_dict({"backend": "dac", "dac": sec})


def spread_codebooks(codec, seed=0):
    """EnCodec initialises its codebooks to zeros; random ones make the codes say something."""
    g = torch.Generator().manual_seed(seed)
    for layer in codec.model.quantizer.layers:
        layer.codebook.embed.copy_(torch.randn(layer.codebook.embed.shape, generator=g))


@pytest.mark.parametrize("make", [encodec_cfg, dac_cfg], ids=["encodec", "dac"])
def test_interface_shapes_and_rates(make):
    cfg = make()
    codec = build_codec(cfg)
    if cfg.backend == "encodec":
        spread_codebooks(codec)
    assert (codec.sample_rate, codec.hop_length, codec.frame_rate) == (16000, 320, 50.0)
    assert (codec.num_levels, codec.codebook_size) == (4, 64)
    assert (cfg.sample_rate, cfg.frame_rate, cfg.num_levels, cfg.codebook_size) == (16000, 50.0, 4, 64)
    wav = 0.1 * torch.randn(2, 8000, generator=torch.Generator().manual_seed(0))
    codes = codec.encode(wav)
    assert codes.shape == (2, 4, 25) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < 64 and len(codes.unique()) > 1
    assert codec.encode(wav[:, :7990]).shape == (2, 4, 25)  # ceil(T / hop) frames
    # residual levels: the first n levels do not depend on how many follow
    assert torch.equal(codec.encode(wav, n_levels=2), codes[:, :2])
    for n in (4, 2):
        out = codec.decode(codes[:, :n])
        assert out.shape == (2, 25 * 320) and torch.isfinite(out).all()
    ident = codec.identity()
    assert ident["name"] == cfg.backend and ident["frame_rate"] == 50.0 and ident["num_levels"] == 4
    assert ident["source"] == "random-init" and len(ident["weights"]) == 12
    codec.check_codes(codes, ident)
    with pytest.raises(UserError, match="outside"):
        codec.check_codes(codes + 64, ident)


def test_encodec_levels_match_its_own_bandwidth_encode():
    codec = build_codec(encodec_cfg())
    spread_codebooks(codec, 1)
    wav = 0.1 * torch.randn(1, 3200, generator=torch.Generator().manual_seed(1))
    ref = codec.model.encode(wav[:, None], bandwidth=1.2).audio_codes[0]  # 1.2 kbps = 4 levels at 50 Hz × 6 bits
    assert torch.equal(codec.encode(wav), ref)


def test_dac_matches_its_own_encode():
    codec = build_codec(dac_cfg())
    wav = 0.1 * torch.randn(1, 3200, generator=torch.Generator().manual_seed(2))
    ref = codec.model.encode(wav[:, None], n_quantizers=4).audio_codes
    assert torch.equal(codec.encode(wav), ref[:, :4])


def test_codes_of_one_codec_are_refused_by_another():
    a, b = build_codec(encodec_cfg()), build_codec(dac_cfg())
    codes = b.encode(torch.zeros(1, 640))
    with pytest.raises(IdentityMismatch, match="this encodec has"):
        a.check_codes(codes, b.identity())


def test_declared_numbers_are_checked_against_the_network():
    with pytest.raises(ConfigError, match="frame_rate"):
        build_codec(encodec_cfg(frame_rate=25.0))
    with pytest.raises(ConfigError, match="codebook_size"):
        build_codec(dac_cfg(codebook_size=1024))
    with pytest.raises(ConfigError, match="6 RVQ levels"):
        build_codec(dac_cfg(num_levels=8))


def test_loads_safetensors_from_a_local_directory_and_rebuilds_offline(tmp_path):
    from transformers import DacConfig, DacModel

    torch.manual_seed(3)
    DacModel(DacConfig(**DAC)).save_pretrained(tmp_path / "dac", safe_serialization=True)
    cfg = CodecConfig.from_dict({"backend": "dac", "dac": {"path": str(tmp_path / "dac"), "num_levels": 4,
                                                             "codebook_size": 64}})
    codec = build_codec(cfg)
    assert cfg.dac.model_config["n_codebooks"] == 6  # resolved into the config, for the model directory
    again = build_codec(CodecConfig.from_dict(cfg.to_dict()), load_weights=False)
    again.load_state_dict(codec.state_dict())
    wav = 0.1 * torch.randn(1, 1600)
    assert torch.equal(again.encode(wav), codec.encode(wav)) and again.identity() == codec.identity()
    # the identity ignores what transformers records about where and with which version a config was saved
    plain = build_codec(dac_cfg())
    plain.load_state_dict(codec.state_dict())
    assert plain.identity()["config_hash"] == codec.identity()["config_hash"]


def test_missing_weights_say_what_to_download(tmp_path):
    cfg = CodecConfig.from_dict({"backend": "encodec", "encodec": {}})  # defaults: facebook/encodec_24khz
    assert (cfg.sample_rate, cfg.frame_rate, cfg.num_levels) == (24000, 75.0, 8)
    with pytest.raises(UserError, match="hf download facebook/encodec_24khz"):
        build_codec(CodecConfig.from_dict({"backend": "encodec", "encodec": {"path": str(tmp_path / "x")}}))
    with pytest.raises(UserError, match="hf download descript/dac_16khz"):
        build_codec(CodecConfig(backend="dac", dac=dac_cfg().dac.replace(path=str(tmp_path / "x"))))


def test_codec_config_shapes():
    legacy = CodecConfig.from_dict({"sample_rate": 16000, "num_levels": 4, "codebook_size": 64})
    assert legacy.backend == "soundstream" and legacy.num_levels == 4
    assert isinstance(build_codec(legacy), SoundStream)
    assert isinstance(build_codec(SoundStreamConfig.debug()), SoundStream)
    assert CodecConfig().backend == "soundstream" and CodecConfig().frame_rate == 50.0
    with pytest.raises(ConfigError, match="needs a dac section"):
        CodecConfig(backend="dac")
    with pytest.raises(ConfigError, match="also has a section"):
        CodecConfig.from_dict({"backend": "dac", "dac": {}, "soundstream": {}})
    with pytest.raises(ConfigError, match="backend"):
        CodecConfig.from_dict({"backend": "mp3"})
    paper = load_preset("paper").codec
    assert (paper.backend, paper.sample_rate, paper.frame_rate, paper.num_levels) == ("dac", 16000, 50.0, 12)
    debug = load_preset("debug").codec
    assert debug.backend == "soundstream" and debug.num_levels == 4
