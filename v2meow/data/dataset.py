"""Random crops of shard records for training, with a sampler whose position resumes exactly.

Which clip and which crop a sample gets depend only on ``(seed, global sample number)``: the sampler
walks a seeded permutation per epoch and the crop start is drawn from a generator seeded by
``(seed, epoch, clip)``. A checkpoint stores the sample number; resuming there reproduces the stream,
whatever the number of data-loader workers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from v2meow.data.shards import ShardReader
from v2meow.timebase import index_at, units_in

STAGE_CROP_SECONDS = {"semantic": 10.0, "coarse": 10.0, "fine": 3.0}


@dataclass
class CropSpec:
    """What a stage reads from a record and how long its crops are."""

    seconds: float
    streams: dict[str, float]  # visual feature name -> rate (empty: the stage reads no video)
    token_rate: float  # semantic tokens per second
    frame_rate: float  # acoustic frames per second
    semantic: bool
    acoustic: bool
    joint: bool

    @property
    def grid(self) -> float:
        """Crop starts fall on this grid (seconds) so every stream's rows line up with the crop."""
        rates = list(self.streams.values()) or [self.token_rate if self.semantic else self.frame_rate]
        return 1.0 / min(rates)


def permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(n)


class TiledCrops(Dataset):
    """Fixed validation crops: ``dataset[k]`` is tile ``k`` of :meth:`CropDataset.tiles`."""

    def __init__(self, crops: CropDataset):
        self.crops = crops
        self.items = crops.tiles()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> dict:
        index, t0 = self.items[k]
        return self.crops.crop(self.crops.reader[index], t0)


class CropDataset(Dataset):
    """``dataset[(epoch, clip_index)]`` -> one cropped example (a dict of tensors, unbatched)."""

    def __init__(self, reader: ShardReader, spec: CropSpec, seed: int = 0, random_crop: bool = True):
        self.reader = reader
        self.spec = spec
        self.seed = seed
        self.random_crop = random_crop

    def __len__(self) -> int:
        return len(self.reader)

    def crop_start(self, duration: float, epoch: int, index: int) -> float:
        grid = self.spec.grid
        slots = int(math.floor((duration - self.spec.seconds) / grid + 1e-6))
        if slots <= 0:
            return 0.0
        if not self.random_crop:
            return 0.0
        k = int(np.random.default_rng([self.seed, epoch, index, 0xC809]).integers(0, slots + 1))
        return k * grid

    def __getitem__(self, item: tuple[int, int]) -> dict:
        epoch, index = item
        rec = self.reader[index]
        return self.crop(rec, self.crop_start(float(rec.meta["duration"]), epoch, index))

    def tiles(self) -> list[tuple[int, float]]:
        """Every clip cut into consecutive whole crops (at least one per clip), ordered window by window:
        ``[(clip, t0), ...]`` with all clips' first windows first, so neighbours in a batch are other clips."""
        per_clip = []
        for i in range(len(self.reader)):
            duration = float(self.reader.meta(i)["duration"])
            n = max(1, int(math.floor(duration / self.spec.seconds + 1e-6)))
            per_clip.append([(i, k * self.spec.seconds) for k in range(n)])
        longest = max((len(t) for t in per_clip), default=0)
        return [t[k] for k in range(longest) for t in per_clip if k < len(t)]

    def crop(self, rec, t0: float) -> dict:
        """The crop of ``rec`` starting at ``t0`` seconds (a multiple of :attr:`CropSpec.grid`)."""
        t1 = t0 + self.spec.seconds
        out: dict = {"key": rec.key}
        feats = rec.features
        if self.spec.streams:
            out["features"] = {}
            for name, rate in self.spec.streams.items():
                if name not in feats:
                    raise KeyError(f"clip {rec.key} has no {name!r} features")
                a, b = _rows(t0, t1, rate)
                out["features"][name] = feats[name][a:b].float()
        if self.spec.semantic:
            a, b = _rows(t0, t1, self.spec.token_rate)
            out["semantic"] = rec.tensors["semantic"][a:b].long()
        if self.spec.acoustic:
            a, b = _rows(t0, t1, self.spec.frame_rate)
            out["acoustic"] = rec.tensors["acoustic"][:, a:b].long()
        if self.spec.joint:
            j = rec.tensors.get("joint")
            out["joint"] = j.float() if j is not None else None
        return out


def _rows(t0: float, t1: float, rate: float) -> tuple[int, int]:
    a = index_at(t0, rate)
    return a, max(a + 1, units_in(t1, rate))


def _pad_stack(xs: list[Tensor], dim: int) -> tuple[Tensor, Tensor]:
    """Pad along ``dim`` (the time axis) to the longest and stack; returns ``(batch, valid [B, T])``."""
    t = max(x.shape[dim] for x in xs)
    out, valid = [], torch.zeros(len(xs), t, dtype=torch.bool)
    for i, x in enumerate(xs):
        pad = t - x.shape[dim]
        if pad:
            shape = list(x.shape)
            shape[dim] = pad
            x = torch.cat([x, x.new_zeros(shape)], dim)
        out.append(x)
        valid[i, : t - pad] = True
    return torch.stack(out), valid


def collate(examples: list[dict]) -> dict:
    """Batch examples of different lengths with ``*_valid`` masks."""
    batch: dict = {"keys": [e["key"] for e in examples]}
    if "features" in examples[0]:
        batch["features"], batch["features_valid"] = {}, {}
        for name in examples[0]["features"]:
            batch["features"][name], batch["features_valid"][name] = _pad_stack(
                [e["features"][name] for e in examples], 0)
    if "semantic" in examples[0]:
        batch["semantic"], batch["semantic_valid"] = _pad_stack([e["semantic"] for e in examples], 0)
    if "acoustic" in examples[0]:
        batch["acoustic"], batch["acoustic_valid"] = _pad_stack([e["acoustic"] for e in examples], 1)
    if "joint" in examples[0]:
        js = [e["joint"] for e in examples]
        if any(j is not None for j in js):
            dim = next(j for j in js if j is not None).shape[-1]
            batch["joint"] = torch.stack([j if j is not None else torch.zeros(dim) for j in js])
            batch["joint_valid"] = torch.tensor([j is not None for j in js])
    return batch


class StepBatchSampler(Sampler):
    """Endless batches of ``(epoch, clip)`` pairs starting at global sample ``start``.

    Each step consumes ``batch_size * world`` samples of the global stream; rank ``r`` takes its slice,
    so ranks never see the same sample in a step and the stream is the same for any world size that
    divides the global batch the same way.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1,
                 shuffle: bool = True):
        if n <= 0:
            raise ValueError("no clips to sample from")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.rank, self.world, self.shuffle = start, rank, world, shuffle
        self._perm_epoch, self._perm = -1, np.arange(n)

    def sample(self, c: int) -> tuple[int, int]:
        epoch, pos = divmod(c, self.n)
        if not self.shuffle:
            return epoch, pos
        if epoch != self._perm_epoch:
            self._perm_epoch, self._perm = epoch, permutation(self.n, self.seed, epoch)
        return epoch, int(self._perm[pos])

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        c = self.start
        while True:
            first = c + self.rank * self.batch_size
            yield [self.sample(first + i) for i in range(self.batch_size)]
            c += self.batch_size * self.world

    def __len__(self) -> int:  # endless; DataLoader only needs this for progress estimates
        return 2**62
