"""The Metric base: sum and cat states merge exactly; sync gathers over torch.distributed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch.distributed as dist

from v2meow.errors import IdentityMismatch
from v2meow.metrics.base import Metric, mean_std


class Toy(Metric):
    """Mean and per-item values of scalars, with a setting that must match to merge."""

    def __init__(self, tag: str = "a") -> None:
        super().__init__()
        self.tag = tag
        self._add_state("total", "sum")
        self._add_state("count", "sum")
        self._add_state("items", "cat")

    def config(self) -> dict[str, Any]:
        return {"tag": self.tag}

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        self._add("total", x.sum())
        self._add("count", np.int64(x.size))
        self._append("items", x)

    def compute(self) -> dict[str, Any]:
        return {"mean": float(self._total("total") / self._total("count")), "items": self._concat("items").tolist()}


def test_merge_state_dict_and_reset() -> None:
    a, b = Toy(), Toy()
    a.update([1.0, 2.0])
    b.update([3.0])
    b.update([6.0])
    assert a.merge(b).compute() == {"mean": 3.0, "items": [1.0, 2.0, 3.0, 6.0]}
    assert b.compute() == {"mean": 4.5, "items": [3.0, 6.0]}  # the merged-in metric is unchanged

    c = Toy()
    c.load_state_dict(a.state_dict())
    assert c.compute() == a.compute()
    sd = a.state_dict()
    sd["state"]["total"] += 100  # a state dict is a copy
    assert a.compute()["mean"] == 3.0

    a.reset()
    assert a.state_dict()["state"] == {"total": None, "count": None, "items": []}
    with pytest.raises(IdentityMismatch):
        Toy("b").merge(b)


def test_buffers_are_copied_on_update() -> None:
    buf = np.array([1.0, 2.0])
    m = Toy()
    m.update(buf)
    buf[:] = 50.0
    assert m.compute()["items"] == [1.0, 2.0]


def test_sync_without_distributed_is_a_copy() -> None:
    m = Toy()
    m.update([2.0, 4.0])
    s = m.sync()
    assert s is not m and s.compute() == m.compute()
    s.update([100.0])
    assert m.compute()["mean"] == 3.0


def test_sync_gathers_over_an_initialised_group(tmp_path) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        m = Toy()
        m.update([1.0, 5.0])
        s = m.sync()
        s2 = m.sync()  # syncing twice counts nothing twice
        assert s.compute() == s2.compute() == {"mean": 3.0, "items": [1.0, 5.0]}
    finally:
        dist.destroy_process_group()


def test_mean_std_uses_sample_std() -> None:
    assert mean_std(np.array([1.0, 2.0, 3.0])) == (2.0, 1.0)
    mean, std = mean_std(np.array([4.0]))
    assert mean == 4.0 and np.isnan(std)


def test_sync_merges_every_rank_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ranks, simulated: the gather hands back rank 0's state (ours) and rank 1's."""
    other = Toy()
    other.update([10.0])

    def fake_gather(out: list, obj: Any) -> None:
        out[0], out[1] = obj, other.state_dict()

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_gather_object", fake_gather)
    m = Toy()
    m.update([1.0, 4.0])
    assert m.sync().compute() == {"mean": 5.0, "items": [1.0, 4.0, 10.0]}
    assert m.compute()["items"] == [1.0, 4.0]  # the local state is kept
