"""Pretrained SSL encoders (HuBERT, MERT, w2v-BERT 2.0) under the semantic tokenizer, from tiny configurations."""

import json
import math

import pytest
import torch

pytest.importorskip("transformers")

from backbones.tiny import HUBERT, W2V_BERT  # noqa: E402

from v2meow.config import SemanticTokenizerConfig, load_preset  # noqa: E402
from v2meow.errors import ConfigError, IdentityMismatch, UserError  # noqa: E402
from v2meow.tokenizers.semantic import FeatureEncoder, SemanticTokenizer  # noqa: E402
from v2meow.tokenizers.ssl import SSLEncoderConfig, build_ssl_encoder  # noqa: E402


def hubert(layer=2, **kw):
    return build_ssl_encoder("hubert", SSLEncoderConfig(model_config=dict(HUBERT), layer=layer, **kw))


def wav(n, b=1, seed=0):
    return 0.1 * torch.randn(b, n, generator=torch.Generator().manual_seed(seed))


def test_hubert_frames_follow_the_hop_and_satisfy_the_protocol():
    enc = hubert(frame_rate=50.0)
    assert isinstance(enc, FeatureEncoder)
    assert (enc.sample_rate, enc.hop_length, enc.frame_rate, enc.dim) == (16000, 320, 50.0, 32)
    for n in (16000, 15999, 321, 100):
        assert enc.features(wav(n, 2), 2).shape == (2, math.ceil(n / 320), 32)
    assert len(enc.model.encoder.layers) == 2  # layers past the token layer are dropped
    ident = enc.identity()
    assert ident["name"] == "ssl-hubert" and ident["hop_length"] == 320 and ident["source"] == "random-init"
    with pytest.raises(ValueError, match="keeps layer 2"):
        enc.features(wav(320), 3)


def test_layer_is_the_full_models_hidden_state():
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    full = HubertModel(HubertConfig(**HUBERT)).eval()
    x = wav(8000)
    for layer in (0, 2):
        enc = hubert(layer=layer, frame_rate=50.0)
        own = enc.model.state_dict()
        enc.model.load_state_dict({k: v for k, v in full.state_dict().items() if k in own})
        states = full(input_values=enc._align(x, 25), output_hidden_states=True).hidden_states
        assert torch.allclose(enc.features(x), states[layer], atol=1e-5)


def test_pooling_and_resampling_set_the_token_rate():
    pooled = hubert(pool=2, frame_rate=25.0)
    assert pooled.hop_length == 640 and pooled.features(wav(16000)).shape == (1, 25, 32)
    at24 = hubert(sample_rate=24000, frame_rate=50.0)  # the pipeline's audio at 24 kHz, the model at 16 kHz
    assert at24.hop_length == 480 and at24.features(wav(24000)).shape == (1, 50, 32)
    with pytest.raises(ConfigError, match="says 25"):
        hubert(frame_rate=25.0)
    with pytest.raises(ConfigError, match="has 3 layers"):
        hubert(layer=4)


def test_w2v_bert_runs_at_50_hz_on_its_fbank_frames():
    enc = build_ssl_encoder("w2v-bert", SSLEncoderConfig(model_config=dict(W2V_BERT), layer=1, frame_rate=50.0))
    assert enc.hop_length == 320 and enc.fx["stride"] == 2
    for n in (16000, 15000, 320):
        assert enc.features(wav(n, 2), 1).shape == (2, math.ceil(n / 320), 32)
    paper = load_preset("paper").semantic_tokenizer
    assert (paper.backend, paper.ssl.pool, paper.frame_rate, paper.layer) == ("w2v-bert", 2, 25.0, 7)


def test_mert_loads_into_hubert_and_refuses_what_hubert_cannot_compute(tmp_path):
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(1)
    ref = HubertModel(HubertConfig(**HUBERT)).eval()
    ref.save_pretrained(tmp_path / "mert", safe_serialization=True)
    raw = json.loads((tmp_path / "mert" / "config.json").read_text())
    raw.update(model_type="mert_model", architectures=["MERTModel"], attention_relax=-1.0, deepnorm=False,
               feature_extractor_cqt=False, auto_map={"AutoModel": "modeling_MERT.MERTModel"})
    (tmp_path / "mert" / "config.json").write_text(json.dumps(raw))
    (tmp_path / "mert" / "preprocessor_config.json").write_text(json.dumps({"sampling_rate": 24000,
                                                                            "do_normalize": True}))
    cfg = SSLEncoderConfig(path=str(tmp_path / "mert"), layer=2, sample_rate=24000, frame_rate=75.0)
    enc = build_ssl_encoder("mert", cfg)
    assert (enc.model_rate, enc.hop_length, enc.fx["do_normalize"]) == (24000, 320, True)
    assert cfg.feature_extractor == {"sampling_rate": 24000, "do_normalize": True}  # resolved for the model dir
    x = wav(2400)
    xn = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
    want = ref(input_values=enc._align(xn, 8), output_hidden_states=True).hidden_states[2]
    assert torch.allclose(enc.features(x), want, atol=1e-4)
    raw["attention_relax"] = 32.0
    (tmp_path / "mert" / "config.json").write_text(json.dumps(raw))
    with pytest.raises(UserError, match="attention_relax"):
        build_ssl_encoder("mert", cfg.replace(feature_extractor=None, model_config=None))


def test_kmeans_tokenizer_on_an_ssl_encoder():
    enc = hubert(pool=2, frame_rate=25.0)
    tok = SemanticTokenizer.fit(enc, [wav(16000, seed=s) for s in range(3)], k=8, layer=2)
    ids = tok.tokenize(wav(16000, 2, seed=9))
    assert ids.shape == (2, 25) and int(ids.max()) < 8
    ident = tok.identity()
    assert ident["encoder"] == "ssl-hubert" and ident["frame_rate"] == 25.0 and ident["layer"] == 2
    other = hubert(layer=1, pool=2, frame_rate=25.0)
    with pytest.raises(IdentityMismatch):
        SemanticTokenizer(other, tok.kmeans, layer=1)


def test_semantic_tokenizer_config_backends():
    cfg = SemanticTokenizerConfig.from_dict({"backend": "hubert", "ssl": {"path": "facebook/hubert-base-ls960",
                                                                           "layer": 6}})
    assert cfg.encoder is None and cfg.frame_rate == 50.0 and cfg.layer == 6 and cfg.sample_rate == 16000
    assert SemanticTokenizerConfig().backend == "v2meow" and SemanticTokenizerConfig().frame_rate == 25.0
    with pytest.raises(ConfigError, match="needs an ssl section"):
        SemanticTokenizerConfig(backend="mert")
    with pytest.raises(ConfigError, match="backend"):
        SemanticTokenizerConfig.from_dict({"backend": "wav2vec", "ssl": {"path": "x/y"}})


def test_missing_weights_say_what_to_download(tmp_path):
    with pytest.raises(UserError, match="hf download facebook/w2v-bert-2.0"):
        build_ssl_encoder("w2v-bert", SSLEncoderConfig(path=str(tmp_path / "none")))
    with pytest.raises(UserError, match="hf download m-a-p/MERT-v1-95M"):
        build_ssl_encoder("mert", SSLEncoderConfig(path="m-a-p/MERT-v1-95M", sample_rate=24000, frame_rate=75.0))
