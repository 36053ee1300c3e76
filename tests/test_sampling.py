import pytest
import torch

from v2meow.errors import ConfigError
from v2meow.sampling import SamplingConfig, apply_top_k, apply_top_p, draw, guide, make_generator, sample


def test_greedy_is_argmax():
    logits = torch.tensor([[0.1, 3.0, -1.0], [5.0, 0.0, 4.9]])
    assert sample(logits, SamplingConfig(temperature=0.0)).tolist() == [1, 0]


def test_top_k_keeps_k_largest():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    kept = torch.isfinite(apply_top_k(logits, 2))
    assert kept.tolist() == [[False, True, True, False]]


def test_top_p_keeps_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = torch.isfinite(apply_top_p(probs.log(), 0.75))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(apply_top_p(probs.log(), 0.5))
    assert kept.tolist() == [[True, False, False, False]]
    # p = 1 changes nothing
    assert torch.isfinite(apply_top_p(probs.log(), 1.0)).all()


def test_sampling_follows_distribution_and_seed():
    logits = torch.tensor([[0.0, 1.0, 2.0]]).repeat(20000, 1)
    draws = sample(logits, SamplingConfig(temperature=1.0), make_generator(0))
    freq = torch.bincount(draws, minlength=3).float() / len(draws)
    expected = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), -1)
    assert torch.allclose(freq, expected, atol=0.02)
    again = sample(logits, SamplingConfig(temperature=1.0), make_generator(0))
    assert torch.equal(draws, again)
    # low temperature concentrates mass on the best token
    cold = sample(logits, SamplingConfig(temperature=0.1), make_generator(0))
    assert (cold == 2).float().mean() > 0.99


def test_sampling_never_picks_masked_tokens():
    logits = torch.zeros(1000, 5)
    logits[:, :2] = float("-inf")
    draws = sample(logits, SamplingConfig(temperature=1.0, top_k=4, top_p=0.9), make_generator(1))
    assert draws.min() >= 2


def test_inverse_cdf_draws_at_the_edges_of_the_unit_interval():
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.5, 0.0]] * 4)
    u = torch.tensor([0.0, 0.4999, 0.5, 1.0 - 1e-7])
    assert draw(probs, u).tolist() == [1, 1, 3, 3]
    assert draw(probs, torch.ones(4)).tolist() == [3, 3, 3, 3]  # even past the top: never a token of probability 0


def test_guidance():
    c, u = torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 0.0]])
    assert torch.equal(guide(c, u, 1.0), c)
    assert torch.allclose(guide(c, u, 3.0), torch.tensor([[1.0, 6.0]]))


def test_config_validation():
    with pytest.raises(ConfigError):
        SamplingConfig(temperature=-1.0)
    with pytest.raises(ConfigError):
        SamplingConfig(top_p=0.0)
