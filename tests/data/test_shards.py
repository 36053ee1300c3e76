import json

import pytest
import torch

from v2meow.data.dataset import CropDataset, CropSpec, StepBatchSampler, collate
from v2meow.data.shards import ClipRecord, ShardReader, iter_shard, read_manifest, write_manifest, write_shard
from v2meow.errors import UserError


def record(key, t=10, split="train"):
    return ClipRecord(key=key, meta={"key": key, "duration": t / 10, "split": split},
                      tensors={"features/a": torch.randn(t, 3).half(), "semantic": torch.arange(t * 2).short(),
                               "acoustic": torch.randint(0, 9, (2, t * 4)).short()})


def test_round_trip_random_access_and_streaming(tmp_path):
    recs = [record(f"k{i}", t=5 + i, split="validation" if i == 2 else "train") for i in range(4)]
    write_shard(tmp_path, 0, recs[:2])
    write_shard(tmp_path, 1, recs[2:])
    m = write_manifest(tmp_path, {"note": "x"})
    assert m["shards"] == ["shard-000000.tar", "shard-000001.tar"] and len(m["clips"]) == 4
    reader = ShardReader(tmp_path)
    for i, rec in enumerate(reader):
        assert rec.key == recs[i].key and rec.meta == recs[i].meta
        for k, v in recs[i].tensors.items():
            assert torch.equal(rec.tensors[k], v) and rec.tensors[k].dtype == v.dtype
    streamed = list(iter_shard(tmp_path / "shard-000001.tar"))
    assert [r.key for r in streamed] == ["k2", "k3"]
    assert len(ShardReader(tmp_path, split="validation")) == 1


def test_failed_write_leaves_nothing(tmp_path):
    bad = ClipRecord(key="bad", meta={"duration": 1.0}, tensors={"x": "not a tensor"})
    with pytest.raises(Exception):
        write_shard(tmp_path, 0, [record("ok"), bad])
    assert list(tmp_path.iterdir()) == []
    write_manifest(tmp_path)
    assert read_manifest(tmp_path)["clips"] == []


def test_incomplete_shard_is_not_listed(tmp_path):
    write_shard(tmp_path, 0, [record("a")])
    write_shard(tmp_path, 1, [record("b")])
    (tmp_path / "shard-000001.tar").unlink()  # a sidecar without its archive
    assert [c["key"] for c in write_manifest(tmp_path)["clips"]] == ["a"]


def test_missing_or_foreign_manifest(tmp_path):
    with pytest.raises(UserError, match="extract"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(UserError):
        read_manifest(tmp_path)


def test_crops_align_streams_and_resume_exactly(tmp_path):
    write_shard(tmp_path, 0, [record(f"k{i}", t=30 + 10 * i) for i in range(3)])
    write_manifest(tmp_path)
    spec = CropSpec(seconds=2.0, streams={"a": 10.0}, token_rate=20.0, frame_rate=40.0, semantic=True,
                    acoustic=True, joint=False)
    ds = CropDataset(ShardReader(tmp_path), spec, seed=1)
    ex = ds[(0, 2)]
    assert ex["features"]["a"].shape == (20, 3) and ex["semantic"].shape == (40,) and ex["acoustic"].shape == (2, 80)
    # the crop's semantic ids are the stored ones at the crop's start: semantic[i] == i here
    start = int(ex["semantic"][0])
    assert start % 2 == 0 and torch.equal(ex["semantic"], torch.arange(start, start + 40))
    sampler = iter(StepBatchSampler(3, 2, seed=5))
    stream = [next(sampler) for _ in range(6)]
    resumed = iter(StepBatchSampler(3, 2, seed=5, start=6))
    assert [next(resumed) for _ in range(3)] == stream[3:]
    # two ranks split each step's samples without overlap
    r0 = next(iter(StepBatchSampler(3, 2, seed=5, rank=0, world=2)))
    r1 = next(iter(StepBatchSampler(3, 2, seed=5, rank=1, world=2)))
    assert r0 + r1 == stream[0] + stream[1]
    batch = collate([ds[(0, 0)], ds[(0, 1)]])
    assert batch["semantic"].shape[0] == 2 and batch["semantic_valid"].all()


def test_short_clips_are_padded_with_masks(tmp_path):
    write_shard(tmp_path, 0, [record("short", t=5), record("long", t=40)])
    write_manifest(tmp_path)
    spec = CropSpec(seconds=2.0, streams={"a": 10.0}, token_rate=20.0, frame_rate=40.0, semantic=True,
                    acoustic=True, joint=False)
    ds = CropDataset(ShardReader(tmp_path), spec)
    b = collate([ds[(0, 0)], ds[(0, 1)]])
    assert b["semantic_valid"][0].sum() == 10 and b["semantic_valid"][1].sum() == 40
    assert b["acoustic"].shape == (2, 2, 80) and b["acoustic_valid"][0].sum() == 20


class _Keys(torch.utils.data.Dataset):
    def __init__(self, reader, n):
        self.reader, self.n = reader, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        j = (i * 7) % len(self.reader)
        return int(self.reader[j].key[1:] == str(j))


def test_forked_loader_workers_read_their_own_records(tmp_path):
    # workers forked after the parent opened a shard share the file's offset: reads must not depend on it
    write_shard(tmp_path, 0, [record(f"k{i}", t=200) for i in range(16)])
    write_manifest(tmp_path, {})
    reader = ShardReader(tmp_path)
    assert reader[0].key == "k0"  # the parent opens the shard before the fork
    loader = torch.utils.data.DataLoader(_Keys(reader, 4000), batch_size=50, num_workers=2,
                                         multiprocessing_context="fork")
    assert int(sum(b.sum() for b in loader)) == 4000
