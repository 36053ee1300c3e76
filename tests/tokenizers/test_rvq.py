"""Residual VQ: round trips, level ordering, quantiser dropout, EMA, dead codes, state, DDP helpers."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from v2meow.tokenizers.codec.rvq import ResidualVQ, RVQConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def mixture(n: int, dim: int = 8, t: int = 32, seed: int = 0) -> torch.Tensor:
    """``[n, dim, t]`` vectors from a mixture of 6 Gaussians (structured, so codebooks can learn it)."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(6, dim, generator=torch.Generator().manual_seed(123)) * 3
    pick = torch.randint(0, 6, (n, t), generator=g)
    return (centers[pick] + 0.5 * torch.randn(n, t, dim, generator=g)).transpose(1, 2)


def trained_rvq(**kw: object) -> tuple[ResidualVQ, torch.Tensor]:
    """An RVQ whose codebooks were k-means initialised on one batch (all levels, no dropout)."""
    cfg = RVQConfig(**{"num_levels": 4, "codebook_size": 16, "dim": 8, "quantizer_dropout": 0.0, **kw})
    torch.manual_seed(0)
    rvq = ResidualVQ(cfg)
    x = mixture(8)
    rvq.train()
    rvq(x)
    rvq.eval()
    return rvq, x


def test_decode_of_encode_equals_forward_output() -> None:
    rvq, x = trained_rvq()
    quantized, codes, _ = rvq(x)
    assert codes.shape == (8, 4, 32) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < 16
    assert torch.equal(rvq.encode(x), codes)
    torch.testing.assert_close(rvq.decode(rvq.encode(x)), quantized, rtol=0, atol=1e-5)
    for n in (1, 2, 3):  # the first n levels of the full code are the n-level code
        assert torch.equal(rvq.encode(x, n), codes[:, :n])


def test_more_levels_lower_the_error() -> None:
    rvq, x = trained_rvq()
    for data in (x, mixture(8, seed=1)):  # the fitting batch and a held-out one
        errors = [float((rvq.decode(rvq.encode(data, n)) - data).pow(2).mean()) for n in range(1, 5)]
        assert all(a > b for a, b in zip(errors, errors[1:])), errors
        assert errors[-1] < 0.5 * errors[0], errors


def test_quantizer_dropout_only_in_training() -> None:
    cfg = RVQConfig(num_levels=4, codebook_size=8, dim=4, quantizer_dropout=1.0, dead_code_threshold=0.0)
    torch.manual_seed(0)
    rvq = ResidualVQ(cfg)
    x = torch.randn(2, 4, 10)
    rvq.train()
    counts = {rvq(x)[1].shape[1] for _ in range(30)}
    assert counts == {1, 2, 3, 4}
    assert rvq(x, n_levels=2)[1].shape[1] == 2  # an explicit level count is obeyed in training too
    rvq.eval()
    assert {rvq(x)[1].shape[1] for _ in range(10)} == {4}


def test_ema_moves_used_codes_toward_their_vectors() -> None:
    cfg = RVQConfig(num_levels=1, codebook_size=4, dim=2, kmeans_init=False, dead_code_threshold=0.0, decay=0.5)
    rvq = ResidualVQ(cfg)
    with torch.no_grad():
        rvq.embed[0] = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
        rvq.embed_sum[0] = rvq.embed[0] * rvq.cluster_size[0, :, None]  # keep the EMA state consistent
    # Every vector is nearest to code 1; their mean is (8, 1).
    x = torch.tensor([[7.0, 1.0], [9.0, 1.0], [8.0, 0.0], [8.0, 2.0]]).t()[None]  # [1, 2, 4]
    before = rvq.embed[0].clone()
    rvq.train()
    _, codes, _ = rvq(x)
    assert codes.flatten().tolist() == [1, 1, 1, 1]
    after = rvq.embed[0]
    target = torch.tensor([8.0, 1.0])
    assert float((after[1] - target).norm()) < 0.5 * float((before[1] - target).norm())
    # Unused codes keep their place (up to the tiny Laplace smoothing).
    torch.testing.assert_close(after[[0, 2, 3]], before[[0, 2, 3]], atol=1e-3, rtol=1e-3)
    assert not rvq.embed.requires_grad and "embed" not in dict(rvq.named_parameters())


def test_dead_codes_restart_on_current_residuals() -> None:
    cfg = RVQConfig(num_levels=1, codebook_size=8, dim=3, kmeans_init=False, dead_code_threshold=1.0)
    rvq = ResidualVQ(cfg)
    with torch.no_grad():
        rvq.embed[0] = torch.randn(8, 3) + 100.0  # far from the data: all but the nearest code go unused
        rvq.embed_sum[0] = rvq.embed[0] * rvq.cluster_size[0, :, None]
    x = torch.randn(1, 3, 50)
    rvq.train()
    _, codes, _ = rvq(x)
    used = set(codes.flatten().tolist())
    vectors = x[0].t()  # [50, 3]
    restarted = [k for k in range(8) if k not in used]
    assert restarted, "the test needs unused codes"
    for k in restarted:  # each restarted code now sits on one of the batch's vectors
        assert float((vectors - rvq.embed[0, k]).norm(dim=1).min()) < 1e-5
        assert float(rvq.cluster_size[0, k]) == pytest.approx(1.0)


def test_straight_through_gradient_and_commitment() -> None:
    rvq, x = trained_rvq()
    rvq.train()
    x = x.clone().requires_grad_(True)
    quantized, _, losses = rvq(x, n_levels=4)
    quantized.sum().backward(retain_graph=True)
    torch.testing.assert_close(x.grad, torch.ones_like(x))
    x.grad = None
    losses["commitment"].backward()
    assert float(losses["commitment"].detach()) > 0 and x.grad.abs().sum() > 0
    assert float(losses["codebook"]) == 0.0  # EMA codebooks take no gradient loss


def test_gradient_codebooks_without_ema() -> None:
    cfg = RVQConfig(num_levels=2, codebook_size=8, dim=4, ema=False, quantizer_dropout=0.0)
    rvq = ResidualVQ(cfg).train()
    assert isinstance(rvq.embed, torch.nn.Parameter)
    _, _, losses = rvq(torch.randn(2, 4, 6))
    losses["codebook"].backward()
    assert rvq.embed.grad is not None and rvq.embed.grad.abs().sum() > 0


def test_state_dict_is_float_and_round_trips_through_safetensors(tmp_path) -> None:
    rvq, x = trained_rvq()
    state = rvq.state_dict()
    assert set(state) == {"embed", "cluster_size", "embed_sum", "initialized"}
    assert all(t.dtype == torch.float32 for t in state.values())
    save_file(state, str(tmp_path / "rvq.safetensors"))
    fresh = ResidualVQ(rvq.config)
    fresh.load_state_dict(load_file(str(tmp_path / "rvq.safetensors")))
    fresh.eval()
    assert torch.equal(fresh.encode(x), rvq.encode(x))
    assert torch.equal(fresh(x)[0], rvq(x)[0])


def test_loaded_codebooks_are_not_reinitialised() -> None:
    rvq, x = trained_rvq(dead_code_threshold=0.0)
    fresh = ResidualVQ(rvq.config)
    assert float(fresh.initialized.max()) == 0.0
    fresh.load_state_dict(rvq.state_dict())
    fresh.train()
    before = fresh.embed[0].clone()
    fresh(torch.full_like(x, 1000.0), n_levels=1)
    # k-means initialisation would move all 16 codes onto 1000; an EMA step moves only the one code in use.
    moved = (fresh.embed[0] - before).abs().amax(1) > 1e-4
    assert int(moved.sum()) == 1


def test_debug_config_matches_the_debug_codec() -> None:
    from v2meow.tokenizers.codec import SoundStreamConfig

    assert SoundStreamConfig.debug().rvq_config() == RVQConfig.debug()


def test_rejects_bad_inputs() -> None:
    rvq, x = trained_rvq()
    with pytest.raises(ValueError):
        rvq.encode(x, n_levels=5)
    with pytest.raises(ValueError):
        rvq.decode(torch.full((1, 2, 3), 16))
    with pytest.raises(ValueError):
        rvq(torch.randn(1, 7, 3))


def test_distributed_helpers_under_a_single_process_group(tmp_path) -> None:
    """With torch.distributed initialised (gloo, world size 1) training takes the all-reduce/broadcast path and
    gives exactly what it gives without it."""
    reference, x = trained_rvq(quantizer_dropout=0.5)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        with_dist, _ = trained_rvq(quantizer_dropout=0.5)
    finally:
        dist.destroy_process_group()
    for name, t in reference.state_dict().items():
        assert torch.equal(t, with_dist.state_dict()[name]), name
