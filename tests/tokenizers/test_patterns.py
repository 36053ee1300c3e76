"""Token layouts: build/revert are inverse, offsets and allowed ranges agree with what build produces."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from v2meow.tokenizers.patterns import (
    DelayPattern,
    FlatPattern,
    coarse_fine_patterns,
    join_levels,
    split_levels,
)

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def pattern_and_codes(draw: st.DrawFn) -> tuple[FlatPattern, torch.Tensor]:
    n = draw(st.integers(1, 6))
    k = draw(st.integers(1, 50))
    first = draw(st.integers(0, 8))
    b = draw(st.integers(1, 3))
    t = draw(st.integers(0, 7))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, k, (b, n, t), generator=g)
    return FlatPattern(n, k, first_level=first), codes


@SETTINGS
@given(pattern_and_codes())
def test_build_revert_round_trip(pc: tuple[FlatPattern, torch.Tensor]) -> None:
    pattern, codes = pc
    tokens = pattern.build(codes)
    b, n, t = codes.shape
    assert tokens.shape == (b, t * n)
    assert torch.equal(pattern.revert(tokens), codes)


@SETTINGS
@given(pattern_and_codes())
def test_frame_major_order_and_offsets(pc: tuple[FlatPattern, torch.Tensor]) -> None:
    pattern, codes = pc
    tokens = pattern.build(codes)
    b, n, t = codes.shape
    for frame in range(t):
        for row in range(n):
            expected = codes[:, row, frame] + row * pattern.codebook_size  # offsets relative to first_level
            assert torch.equal(tokens[:, frame * n + row], expected)
    if tokens.numel():
        assert 0 <= int(tokens.min()) and int(tokens.max()) < pattern.vocab_size


@SETTINGS
@given(pattern_and_codes())
def test_allowed_ranges_agree_with_build(pc: tuple[FlatPattern, torch.Tensor]) -> None:
    pattern, codes = pc
    tokens = pattern.build(codes)
    length = tokens.shape[1]
    mask = pattern.allowed_mask(torch.arange(length))
    assert mask.shape == (length, pattern.vocab_size)
    for pos in range(length):
        lo, hi = pattern.allowed_range(pos)
        assert hi - lo == pattern.codebook_size
        assert bool(((tokens[:, pos] >= lo) & (tokens[:, pos] < hi)).all())
        assert mask[pos].nonzero().flatten().tolist() == list(range(lo, hi))
        assert pattern.level_at(pos) == pattern.first_level + pos % pattern.num_levels
    # The slices of one frame tile the vocabulary exactly once.
    if length >= pattern.num_levels:
        assert bool((mask[: pattern.num_levels].sum(0) == 1).all())


@SETTINGS
@given(pattern_and_codes(), st.integers(1, 5))
def test_revert_partial_drops_incomplete_frame(pc: tuple[FlatPattern, torch.Tensor], extra: int) -> None:
    pattern, codes = pc
    tokens = pattern.build(codes)
    extra = extra % pattern.num_levels  # 0..N-1 tokens of an unfinished frame (any values: they are dropped)
    more = torch.cat([tokens, torch.zeros(tokens.shape[0], extra, dtype=torch.long)], dim=1)
    assert torch.equal(pattern.revert_partial(more), codes)
    if extra:
        with pytest.raises(ValueError):
            pattern.revert(more)


def test_revert_rejects_incomplete_frames() -> None:
    pattern = FlatPattern(3, 10)
    with pytest.raises(ValueError, match="whole number of frames"):
        pattern.revert(torch.zeros(1, 7, dtype=torch.long))


def test_revert_rejects_token_of_wrong_level() -> None:
    pattern = FlatPattern(2, 10, first_level=4)
    tokens = pattern.build(torch.tensor([[[1, 2], [3, 4]]]))  # [[1, 13, 2, 14]]
    assert tokens.tolist() == [[1, 13, 2, 14]]
    bad = tokens.clone()
    bad[0, 1] = 5  # a level-4 token where a level-5 token belongs
    with pytest.raises(ValueError, match="level 5"):
        pattern.revert(bad)
    bad = tokens.clone()
    bad[0, 2] = 20  # beyond the vocabulary
    with pytest.raises(ValueError, match="outside"):
        pattern.revert(bad)


def test_build_rejects_bad_codes() -> None:
    pattern = FlatPattern(2, 4)
    with pytest.raises(ValueError, match="levels"):
        pattern.build(torch.zeros(1, 3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        pattern.build(torch.full((1, 2, 5), 4))
    with pytest.raises(ValueError, match="integer"):
        pattern.build(torch.zeros(1, 2, 5))


@SETTINGS
@given(st.integers(2, 8), st.data())
def test_split_join_round_trip(n: int, data: st.DataObject) -> None:
    n_coarse = data.draw(st.integers(1, n - 1))
    codes = torch.randint(0, 9, (2, n, 5))
    coarse, fine = split_levels(codes, n_coarse)
    assert coarse.shape == (2, n_coarse, 5) and fine.shape == (2, n - n_coarse, 5)
    assert torch.equal(join_levels(coarse, fine), codes)
    pc, pf = coarse_fine_patterns(n, n_coarse, 9)
    assert list(pc.levels) + list(pf.levels) == list(range(n))
    assert torch.equal(join_levels(pc.revert(pc.build(coarse)), pf.revert(pf.build(fine))), codes)


def test_split_and_join_reject_mismatches() -> None:
    codes = torch.zeros(1, 4, 3, dtype=torch.long)
    with pytest.raises(ValueError):
        split_levels(codes, 4)
    with pytest.raises(ValueError):
        split_levels(codes, 0)
    with pytest.raises(ValueError, match="frame count"):
        join_levels(codes[..., :2], codes)


# ---- the delay layout -----------------------------------------------------------------------------------


@SETTINGS
@given(pattern_and_codes())
def test_delay_build_revert_round_trip(pc: tuple[FlatPattern, torch.Tensor]) -> None:
    flat, codes = pc
    b, n, t = codes.shape
    pattern = DelayPattern(n, flat.codebook_size, first_level=flat.first_level)
    tokens = pattern.build(codes)
    steps = t + n - 1 if t else 0
    assert tokens.shape == (b, steps * n) and pattern.num_tokens(t) == steps * n
    assert tokens.numel() == 0 or (0 <= int(tokens.min()) and int(tokens.max()) < pattern.vocab_size)
    assert torch.equal(pattern.revert(tokens), codes)
    grid = tokens.reshape(b, steps, n)
    for k in range(n):  # level k of frame f stands at step f + k, in stream k's slice
        assert torch.equal(grid[:, k : k + t, k] - k * pattern.stride, codes[:, k])
    # what allowed_mask permits agrees with what build wrote (before the end; the caller pads the tail)
    mask = pattern.allowed_mask(torch.arange(steps * n))
    data = pattern.data_mask(t).reshape(-1)
    head = (torch.arange(steps)[:, None] < torch.arange(n)[None, :]).reshape(-1)
    rows = mask[torch.arange(steps * n)[:, None].expand(-1, b).T.reshape(-1), tokens.reshape(-1)].reshape(b, -1)
    assert rows[:, data | head].all()


def test_delay_steps_are_fewer_and_revert_is_strict() -> None:
    pattern = DelayPattern(4, 10)
    assert pattern.num_steps(500) == 503 and FlatPattern(4, 10).num_tokens(500) == 2000
    codes = torch.randint(0, 10, (2, 4, 6), generator=torch.Generator().manual_seed(0))
    tokens = pattern.build(codes)
    for step, k, value in ((0, 1, 3 + pattern.stride), (2, 0, 10), (8, 0, 2),
                           (3, 2, 5)):  # a code before its start, a pad in the data, a code after the end,
        bad = tokens.clone()  # and an id from another level's slice
        bad[0, step * 4 + k] = value
        with pytest.raises(ValueError):
            pattern.revert(bad)
    with pytest.raises(ValueError):
        pattern.revert(tokens[:, :-1])
    with pytest.raises(ValueError):
        pattern.build(codes + 10)
