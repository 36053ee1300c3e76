import numpy as np
import pytest
import torch

from v2meow.metrics.joint_backends import JointModelEmbedder, ZeroShotTagger
from v2meow.metrics.kld import ClassKLDivergence
from v2meow.metrics.mcc import JointCosine
from v2meow.text.joint import JointConfig, JointModel

TINY_TEXT = {"vocab_size": 200, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 32, "max_position_embeddings": 64}


@pytest.fixture(scope="module")
def joint():
    torch.manual_seed(0)
    cfg = JointConfig(dim=8, text_tiny=TINY_TEXT, text_width=16, text_hidden=0, width=16, layers=1, heads=2,
                      n_mels=16, segment_seconds=1.0)
    return JointModel(cfg).eval()


def test_zero_shot_tag_probabilities_and_kld(joint):
    tagger = ZeroShotTagger(joint, tags=("happy", "sad", "calm"))
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(16000).astype(np.float32) * 0.1, rng.standard_normal(16000).astype(np.float32)
    logits = tagger.logits(a)
    assert logits.shape == (3,) and np.isfinite(logits).all()
    kld = ClassKLDivergence(tagger, per="item")
    kld.update_audio(a, a, 16000)
    assert kld.compute()["kld"] == pytest.approx(0.0, abs=1e-5)  # the 1e-6 inside the log, per class
    kld.update_audio(b, a, 16000)
    assert kld.compute()["n"] == 2


def test_mcc_with_joint_model(joint):
    emb = JointModelEmbedder(joint)
    mcc = JointCosine(emb, target="audio")
    wav = np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    mcc.update_audio(wav, wav, 16000)
    assert mcc.compute()["mcc"] == pytest.approx(1.0, abs=1e-6)
    text = JointCosine(emb, target="text")
    text.update_text([wav], ["calm piano"], 16000)
    # by hand: the cosine of the clip's first crop_seconds (already at the model's rate) and the prompt
    assert emb.sample_rate == 16000
    a = emb.embed_audio(wav[: int(round(emb.crop_seconds * 16000))])
    t = emb.embed_text("calm piano")
    expected = float(a @ t / (np.linalg.norm(a) * np.linalg.norm(t)))
    assert text.compute()["mcc"] == pytest.approx(expected, abs=1e-6)
    assert -1.0 <= text.compute()["mcc"] <= 1.0


def test_a_pinned_joint_model_scores_instead_of_the_models_own(joint, tmp_path):
    from v2meow.errors import UserError
    from v2meow.metrics.joint_backends import load_joint_backend

    class Model:  # a model whose own joint model is ``joint``
        text = joint

    own, source = load_joint_backend(Model())
    assert own is joint and "own" in source
    torch.manual_seed(1)
    other = JointModel(joint.cfg).eval()
    other.save(tmp_path / "other", dtype=None)
    pinned, source = load_joint_backend(Model(), str(tmp_path / "other"))
    assert "pinned" in source and pinned is not joint
    wav = torch.from_numpy(np.sin(np.linspace(0, 2000, 16000)).astype(np.float32))[None]
    assert torch.allclose(pinned.embed_audio(wav), other.embed_audio(wav), atol=1e-5)
    assert not torch.allclose(pinned.embed_audio(wav), joint.embed_audio(wav), atol=1e-3)
    with pytest.raises(UserError):
        load_joint_backend(Model(), str(tmp_path / "missing"))
