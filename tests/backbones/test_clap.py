"""CLAP as the joint music-text tower (MuLan's role), from a tiny configuration and a tiny tokenizer."""

import pytest
import torch

pytest.importorskip("transformers")

from backbones.tiny import CLAP  # noqa: E402

from v2meow.config import load_preset  # noqa: E402
from v2meow.errors import ConfigError, UserError  # noqa: E402
from v2meow.text.towers import TextConfig, build_text_tower  # noqa: E402


def clap_cfg(tokenizer_file, **kw):
    return TextConfig.from_dict({"backend": "clap", "dim": 16,
                                 "clap": {"path": None, "model_config": CLAP, "tokenizer": tokenizer_file, **kw}})


@pytest.fixture(scope="module")
def tower(tokenizer_file):
    torch.manual_seed(0)
    return build_text_tower(clap_cfg(tokenizer_file))


def test_text_embeddings(tower):
    emb = tower.embed_text(["warm acoustic guitar", "aggressive techno drums", "warm acoustic guitar"])
    assert emb.shape == (3, 16) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(emb[0], emb[2]) and not torch.allclose(emb[0], emb[1])
    with pytest.raises(UserError, match="empty"):
        tower.embed_text(["  "])


def test_text_embedding_is_clap_s_own(tower):
    """Same ids through ClapModel directly (batch padding must not change a prompt's embedding)."""
    ids = tower.tokenizer.encode("calm piano").ids
    direct = tower.model.get_text_features(input_ids=torch.tensor([ids]))
    direct = direct if isinstance(direct, torch.Tensor) else direct.pooler_output
    batched = tower.embed_text(["calm piano", "aggressive techno drums dark synth"])[0]
    assert torch.allclose(batched, torch.nn.functional.normalize(direct, dim=-1)[0], atol=1e-5)


def test_audio_embeddings_in_the_same_space(tower):
    g = torch.Generator().manual_seed(0)
    clips = 0.1 * torch.randn(2, 16000, generator=g)
    emb = tower.embed_audio(clips, 16000)  # resampled to CLAP's 48 kHz inside
    assert emb.shape == (2, 16) and torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(tower.embed_audio(clips, 16000), emb)  # deterministic: no random crops
    whole = tower.embed_audio_segments(0.1 * torch.randn(16000 * 23, generator=g), 16000)
    assert whole.shape == (16,) and abs(float(whole.norm()) - 1.0) < 1e-5
    assert tower.sample_rate == 48000


def test_identity_and_tokenizer_travel_with_the_weights(tower, tokenizer_file):
    ident = tower.identity()
    assert ident["name"] == "clap" and ident["dim"] == 16 and ident["source"] == "random-init"
    meta = tower.safetensors_metadata()
    cfg = clap_cfg(None)
    cfg.clap = tower.config.replace(tokenizer=None)
    again = build_text_tower(cfg, load_weights=False)  # as from a model directory: no tokenizer file, no path
    again.load_state_dict(tower.state_dict())
    again.load_safetensors_metadata(meta)
    assert torch.allclose(again.embed_text(["warm piano"]), tower.embed_text(["warm piano"]))
    assert again.identity() == ident
    with pytest.raises(UserError, match="no tokenizer"):
        build_text_tower(cfg, load_weights=False).load_safetensors_metadata({})


def test_config_checks(tokenizer_file, tmp_path):
    bad = clap_cfg(tokenizer_file)
    bad.dim = 32
    with pytest.raises(ConfigError, match="16 dimensions"):
        build_text_tower(bad)
    with pytest.raises(UserError, match="hf download laion/larger_clap_music"):
        build_text_tower(TextConfig(backend="clap", dim=512, clap=bad.clap.replace(path=str(tmp_path / "none"),
                                                                                     model_config=None)))
    paper = load_preset("paper").text
    assert (paper.backend, paper.dim, paper.clap.path) == ("clap", 512, "laion/larger_clap_music")
    assert TextConfig(backend="clap").clap.path == "laion/larger_clap_music"
    with pytest.raises(ConfigError, match="takes no clap section"):
        TextConfig(backend="hash", clap=paper.clap)
