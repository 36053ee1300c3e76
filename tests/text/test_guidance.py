"""Stage 1 with the joint embedding: conditioning dropout in training, classifier-free guidance at inference."""

import pytest
import torch

import v2meow.stages.base as base
from v2meow.modules.adaptors import StreamSpec
from v2meow.modules.transformer import TransformerConfig
from v2meow.sampling import SamplingConfig, make_generator
from v2meow.stages.semantic import SemanticStage, SemanticStageConfig, drop_joint

torch.set_num_threads(1)

STREAMS = [StreamSpec(name="motion", dim=4, rate=1.0)]
D_M = 16


def stage(cond_dropout=0.1, seed=0) -> SemanticStage:
    torch.manual_seed(seed)
    tf = TransformerConfig(width=32, heads=2, ff=64, encoder_layers=1, decoder_layers=1, max_len=80)
    cfg = SemanticStageConfig(transformer=tf, vocab_size=12, streams=STREAMS, joint_dim=D_M,
                              cond_dropout=cond_dropout, window_seconds=2.0)
    st = SemanticStage(cfg)
    with torch.no_grad():  # an untrained null vector is zero; make it distinct, as training does
        st.lm.condition.joint_null.normal_()
    return st


def feats(b=1, t=2):
    return {"motion": torch.randn(b, t, 4)}


def joint(b=1):
    return torch.nn.functional.normalize(torch.randn(b, D_M), dim=-1)


def test_drop_joint_rate_is_respected_in_training_only():
    torch.manual_seed(0)
    valid = torch.ones(20000, dtype=torch.bool)
    kept = drop_joint(valid, 0.1, training=True).float().mean().item()
    assert abs((1 - kept) - 0.1) < 0.01
    assert drop_joint(valid, 0.1, training=False).all()
    assert drop_joint(valid, 0.0, training=True).all()
    assert not drop_joint(valid, 1.0, training=True).any()
    already = valid.clone()
    already[:100] = False  # clips without an embedding stay without one
    assert not drop_joint(already, 0.1, training=True)[:100].any()


@pytest.mark.parametrize("rate", [0.0, 0.25])
def test_stage_one_drops_the_joint_position_at_its_rate(rate, monkeypatch):
    st = stage(cond_dropout=rate)
    seen = []
    real = st.encoder_input

    def spy(features, features_valid, j, jv):
        seen.append(jv.clone())
        return real(features, features_valid, j, jv)

    monkeypatch.setattr(st, "encoder_input", spy)
    batch = {"features": feats(64), "joint": joint(64), "semantic": torch.randint(0, 12, (64, 10))}
    torch.manual_seed(1)
    st.train()
    for _ in range(40):
        st.loss(batch)
    dropped = 1 - torch.cat(seen).float().mean().item()
    assert abs(dropped - rate) < 0.03
    seen.clear()
    st.eval()
    st.loss(batch)
    assert torch.cat(seen).all()  # never dropped in evaluation


def test_dropped_embedding_is_the_null_vector():
    st = stage().eval()
    f, j = feats(2), joint(2)
    x_drop, _, _ = st.encoder_input(f, None, j, torch.tensor([False, True]))
    x_none, _, _ = st.encoder_input(f, None, None, None)
    x_keep, _, _ = st.encoder_input(f, None, j, None)
    assert torch.equal(x_drop[0, -1], x_none[0, -1])  # dropped = no prompt
    assert torch.equal(x_drop[1, -1], x_keep[1, -1])
    assert not torch.allclose(x_keep[0, -1], x_none[0, -1])


class _Spy:
    """Records the logits that reach the sampler."""

    def __init__(self):
        self.logits = []

    def __call__(self, logits, cfg, generator=None):
        self.logits.append(logits.clone())
        return logits.argmax(-1)


def _first_logits(st, f, j, guidance, monkeypatch):
    spy = _Spy()
    monkeypatch.setattr(base, "sample", spy)
    st.generate(f, 3, joint=j, guidance=guidance, sampling=SamplingConfig(temperature=0.0))
    return spy.logits


def test_guidance_one_is_the_plain_conditional_path(monkeypatch):
    st = stage().eval()
    f, j = feats(), joint()
    a = st.generate(f, 12, joint=j, guidance=1.0, generator=make_generator(3))
    b = st.generate(f, 12, joint=j, generator=make_generator(3))
    assert torch.equal(a, b)
    # guidance 1 runs one conditional row, exactly as without guidance (no unconditional pass)
    calls = []
    real = st.encoder_input
    monkeypatch.setattr(st, "encoder_input", lambda *a: calls.append(a[2]) or real(*a))
    st.generate(f, 4, joint=j, guidance=1.0)
    assert len(calls) == 1 and calls[0] is not None


def test_guidance_moves_logits_along_cond_minus_uncond(monkeypatch):
    st = stage().eval()
    f, j = feats(), joint()
    cond = _first_logits(st, f, j, 1.0, monkeypatch)
    uncond = _first_logits(st, f, None, 1.0, monkeypatch)
    for g in (2.0, 4.0):
        guided = _first_logits(st, f, j, g, monkeypatch)
        # first step: nothing sampled yet, so the rows agree exactly
        want = uncond[0] + g * (cond[0] - uncond[0])
        assert torch.allclose(guided[0], want, atol=1e-4)
        assert torch.allclose(guided[0] - cond[0], (g - 1) * (cond[0] - uncond[0]), atol=1e-4)
    assert not torch.allclose(cond[0], uncond[0])  # the prompt does change the logits


def test_guidance_with_the_joint_text_tower():
    """A prompt embedded by the (tiny) joint model steers a stage with guidance, end to end."""
    from v2meow.text.joint import JointConfig, JointModel

    tiny = {"vocab_size": 101, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 32, "max_position_embeddings": 32}
    torch.manual_seed(0)
    jm = JointModel(JointConfig(dim=D_M, text_tiny=tiny, text_width=16, text_hidden=0, n_mels=8, width=16,
                                heads=2, layers=1, n_fft=256, hop_length=80, sample_rate=8000)).eval()
    st = stage().eval()
    f = feats()
    e = jm.embed_text(["warm acoustic guitar"])
    assert e.shape == (1, D_M)
    out = st.generate(f, 10, joint=e, guidance=3.0, generator=make_generator(0))
    assert out.shape == (1, 10)
