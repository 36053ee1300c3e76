import pytest
import torch

from v2meow.modules.adaptors import ConditionInput, StreamSpec
from v2meow.modules.kv_cache import KVCache
from v2meow.modules.transformer import Decoder, TransformerConfig, relative_bucket
from v2meow.sampling import SamplingConfig
from v2meow.stages.base import TokenLM

GREEDY = SamplingConfig(temperature=0.0)


def tiny(encoder_layers=2, **kw):
    return TransformerConfig(width=32, heads=4, ff=64, encoder_layers=encoder_layers, decoder_layers=2, **kw)


def test_relative_buckets_exact_near_and_monotone_far():
    rel = torch.arange(-200, 201)
    b = relative_bucket(rel, bidirectional=True, num_buckets=32, max_distance=128)
    assert b.min() >= 0 and b.max() < 32
    # small distances each get their own bucket, per direction
    near = b[(rel.abs() < 8)]
    assert len(set(near.tolist())) == 15
    # buckets never decrease with distance in each direction
    pos = b[rel >= 0]
    assert (pos[1:] >= pos[:-1]).all()
    causal = relative_bucket(rel, bidirectional=False, num_buckets=32, max_distance=128)
    assert (causal[rel >= 0] == 0).all()  # future keys are masked anyway; they share bucket 0


def test_cached_and_uncached_greedy_decoding_agree_encoder_decoder():
    torch.manual_seed(4)
    streams = [StreamSpec(name="a", dim=7, rate=1.0), StreamSpec(name="b", dim=5, rate=10.0)]
    lm = TokenLM(tiny(), 50, streams=streams, joint_dim=6, target_rate=20.0).eval()
    enc = lm.condition({"a": torch.randn(2, 4, 7), "b": torch.randn(2, 40, 5)}, joint=torch.randn(2, 6))
    cached = lm.generate(80, GREEDY, enc_in=enc)
    uncached = lm.generate(80, GREEDY, enc_in=enc, use_cache=False)
    assert torch.equal(cached, uncached)
    assert len(set(cached[0].tolist())) > 3  # a random model does not emit one token over and over


def test_cross_attention_bias_aligns_decoder_tokens_with_conditioning_time():
    # With the time bias forced to "same moment only", a decoder token at second s reads only the encoder items
    # of second s: changing the memory at second 3 leaves every token before second 3 unchanged and changes
    # the tokens within it. 10 target tokens per second, features at 1 per second, plus the untimed joint item.
    torch.manual_seed(0)
    lm = TokenLM(tiny(), 30, streams=[StreamSpec(name="a", dim=7, rate=1.0)], joint_dim=6, target_rate=10.0).eval()
    with torch.no_grad():
        table = lm.decoder.cross_bias.table.weight
        table.fill_(-1e4)
        table[0] = 0.0  # bucket 0 of the bidirectional bias: offset 0
    enc = lm.condition({"a": torch.randn(1, 6, 7)}, joint=torch.randn(1, 6))
    assert enc[1][0].tolist() == [0, 1, 2, 3, 4, 5, -1]  # the joint item is untimed
    memory, valid = lm.encode(enc)
    changed = memory.clone()
    changed[0, 3] = torch.randn(memory.shape[-1])
    ids = lm.decoder_input(None, torch.randint(0, 30, (1, 59)))
    q = lm.query_positions(0, ids.shape[1], 0, ids.device)
    assert q[:12].tolist() == [0] * 10 + [1, 1]  # input j predicts target j, at j / 10 s
    a, b = (lm.decoder(lm.embed(ids), m, valid, memory_pos=enc[1], query_pos=q) for m in (memory, changed))
    assert torch.allclose(a[:, :30], b[:, :30], atol=1e-6)
    assert (a[:, 30:40] - b[:, 30:40]).abs().amax() > 1e-2
    # without positions the bias is off, and the change reaches the first second too
    c, d = (lm.decoder(lm.embed(ids), m, valid) for m in (memory, changed))
    assert (c[:, :10] - d[:, :10]).abs().amax() > 1e-2


def test_cached_and_uncached_greedy_decoding_agree_decoder_only_with_prompt():
    torch.manual_seed(1)
    lm = TokenLM(tiny(encoder_layers=0), 40, prefix_vocab=30).eval()
    prefix = torch.randint(0, 30, (3, 17))
    prompt = torch.randint(0, 40, (3, 5))
    a = lm.generate(60, GREEDY, prefix=prefix, prompt=prompt)
    b = lm.generate(60, GREEDY, prefix=prefix, prompt=prompt, use_cache=False)
    assert torch.equal(a, b)
    # the prompt matters: another prompt gives another continuation
    c = lm.generate(60, GREEDY, prefix=prefix, prompt=(prompt + 1) % 40)
    assert not torch.equal(a, c)


def test_decoder_is_causal():
    torch.manual_seed(0)
    dec = Decoder(tiny(encoder_layers=0), cross=False).eval()
    x = torch.randn(1, 12, 32)
    y = dec(x)
    x2 = x.clone()
    x2[:, 8:] = torch.randn(1, 4, 32)
    y2 = dec(x2)
    assert torch.allclose(y[:, :8], y2[:, :8], atol=1e-6)
    assert not torch.allclose(y[:, 8:], y2[:, 8:])


def test_kv_cache_refuses_overflow_and_gaps():
    c = KVCache(1, 2, 4, 8, torch.float32, "cpu")
    k = torch.zeros(1, 2, 3, 8)
    c.update(0, k, k)
    with pytest.raises(ValueError):
        c.update(3, k, k)  # would run past max_len
    with pytest.raises(ValueError):
        c.update(4, k[:, :, :1], k[:, :, :1])  # a gap after position 2
    c.reset()
    assert c.length == 0


def test_condition_input_positions_are_time_aligned_and_joint_dropout_uses_null():
    torch.manual_seed(0)
    ci = ConditionInput([StreamSpec(name="slow", dim=3, rate=1.0), StreamSpec(name="fast", dim=3, rate=4.0)],
                        joint_dim=5, width=16)
    x, pos, valid = ci({"slow": torch.randn(2, 3, 3), "fast": torch.randn(2, 12, 3)}, joint=torch.randn(2, 5),
                       joint_valid=torch.tensor([True, False]))
    assert x.shape == (2, 3 + 12 + 1, 16)
    assert pos[0, :3].tolist() == [0, 4, 8]  # slow stream at 1/s on the 4/s grid
    assert pos[0, 3:15].tolist() == list(range(12))
    assert valid.all()
    x_none, _, _ = ci({"slow": torch.randn(2, 3, 3), "fast": torch.randn(2, 12, 3)}, joint=None)
    assert torch.allclose(x[1, -1], x_none[1, -1])  # a dropped joint embedding is the null vector
    assert not torch.allclose(x[0, -1], x_none[0, -1])
