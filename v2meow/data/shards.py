"""Training shards: tar archives of per-clip records, a sidecar index per shard, and a manifest.

A record is one source video: ``<key>.json`` (metadata: source, duration, split, every backend's identity)
and ``<key>.safetensors`` (``features/<name> [T, D]`` float16, ``semantic [T_s]`` int32, ``acoustic [N_q,
T_a]`` int16/int32, optional ``joint [D_m]`` float16). Each shard is written to a temporary name and
renamed, together with its sidecar ``<shard>.json`` listing its clips and their byte offsets, so a reader
can seek straight to any record and a rerun of extraction skips shards that are already complete.
``manifest.json`` gathers the sidecars. Nothing here unpickles: JSON and safetensors only.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from v2meow.errors import UserError
from v2meow.io.atomic import publish

FORMAT = "v2meow-shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class ClipRecord:
    """One clip's arrays and metadata, as stored in a shard."""

    key: str
    meta: dict[str, Any]
    tensors: dict[str, Tensor] = field(default_factory=dict)

    @property
    def features(self) -> dict[str, Tensor]:
        return {k.split("/", 1)[1]: v for k, v in self.tensors.items() if k.startswith("features/")}


def shard_name(index: int) -> str:
    return f"shard-{index:06d}.tar"


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # reproducible archives
    tar.addfile(info, io.BytesIO(data))
    return info


def write_shard(directory: str | os.PathLike, index: int, records: list[ClipRecord],
                sources: list[str] | None = None, digests: list[str] | None = None) -> dict[str, Any]:
    """Write shard ``index`` atomically with its sidecar; returns the sidecar's content. ``sources``: the inputs
    the shard was made from (its clips, less any skipped), and ``digests`` their files' SHA-256, so a rerun can
    tell whether it still holds them as they are now."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    name = shard_name(index)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=root)
    os.close(fd)
    clips = []
    try:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for rec in records:
                meta_bytes = json.dumps(rec.meta, sort_keys=True).encode("utf-8")
                _tar_add(tar, f"{rec.key}.json", meta_bytes)
                payload = st_save({k: v.contiguous() for k, v in rec.tensors.items()})
                _tar_add(tar, f"{rec.key}.safetensors", payload)
        # offsets are read back from the finished archive: the tar module knows where each member's data starts
        with tarfile.open(tmp, "r") as tar:
            members = {m.name: m for m in tar.getmembers()}
        for rec in records:
            m = members[f"{rec.key}.safetensors"]
            j = members[f"{rec.key}.json"]
            clips.append({
                "key": rec.key, "shard": name, "offset": m.offset_data, "size": m.size,
                "meta_offset": j.offset_data, "meta_size": j.size,
                "split": rec.meta.get("split", "train"), "duration": float(rec.meta.get("duration", 0.0)),
            })
        sidecar = {"format": FORMAT, "format_version": FORMAT_VERSION, "shard": name, "clips": clips}
        if sources is not None:
            sidecar["sources"] = list(sources)
        if digests is not None:
            sidecar["source_sha256"] = list(digests)
        side_tmp = root / f".{name}.json.tmp"
        side_tmp.write_text(json.dumps(sidecar, indent=1))
        publish(tmp, root / name)
        os.replace(side_tmp, root / f"{name}.json")  # the sidecar appears last: it marks the shard complete
    except BaseException:
        for p in (tmp, root / f".{name}.json.tmp"):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        raise
    return sidecar


def remove_partial_shard(directory: str | os.PathLike, index: int) -> None:
    """Delete the temporary files of shard ``index`` that a killed writer left behind (never a finished shard)."""
    root = Path(directory)
    name = shard_name(index)
    for p in root.glob(f".{name}.*"):
        p.unlink(missing_ok=True)


def shard_complete(directory: str | os.PathLike, index: int, sources: list[str] | None = None,
                   keys: list[str] | None = None, digests: list[str] | None = None) -> bool:
    """Shard ``index`` is written; with ``sources``, also made from exactly those inputs (a folder that gained or
    lost inputs moves later ones to other shards: a shard made before then holds the wrong clips), and with
    ``digests`` (their files' SHA-256) from those inputs as they are now (a video made again from new music holds
    other clips under the same name). A shard written before sidecars recorded their sources is checked by its clips'
    ``keys`` instead (each one of these), and one written before they recorded digests by its sources' names."""
    root = Path(directory)
    side = root / f"{shard_name(index)}.json"
    if not ((root / shard_name(index)).is_file() and side.is_file()):
        return False
    if sources is None:
        return True
    data = json.loads(side.read_text())
    if "sources" in data:
        same = data["sources"] == list(sources)
        return same and (digests is None or data.get("source_sha256", list(digests)) == list(digests))
    return keys is not None and {c["key"] for c in data["clips"]} <= set(keys)


def remove_shard(directory: str | os.PathLike, index: int) -> None:
    """Delete shard ``index`` and its sidecar (the sidecar first: a shard without one is not complete)."""
    root = Path(directory)
    for p in (root / f"{shard_name(index)}.json", root / shard_name(index)):
        p.unlink(missing_ok=True)


def write_manifest(directory: str | os.PathLike, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Gather every complete shard's sidecar into ``manifest.json`` (atomically)."""
    root = Path(directory)
    clips, shards = [], []
    for side in sorted(root.glob("shard-*.tar.json")):
        data = json.loads(side.read_text())
        if not (root / data["shard"]).is_file():
            continue
        shards.append(data["shard"])
        clips.extend(data["clips"])
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "info": info or {}, "shards": shards,
                "clips": clips}
    tmp = root / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, root / MANIFEST)
    return manifest


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    root = Path(directory)
    path = root / MANIFEST
    if not path.is_file():
        raise UserError(f"{root} holds no {MANIFEST}; run `v2meow extract` to make shards.")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        raise UserError(f"{path} is not valid JSON.") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path} is not a v2meow shard manifest of version {FORMAT_VERSION}.")
    return data


class ShardReader:
    """Random access to records through the manifest's byte offsets (one open file per shard)."""

    def __init__(self, directory: str | os.PathLike, split: str | None = None):
        self.root = Path(directory)
        self.manifest = read_manifest(self.root)
        self.clips = [c for c in self.manifest["clips"] if split is None or c["split"] == split]
        self._files: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.clips)

    def _read(self, shard: str, offset: int, size: int) -> bytes:
        f = self._files.get(shard)
        if f is None:
            f = self._files[shard] = open(self.root / shard, "rb")
        if hasattr(os, "pread"):
            # a positional read: DataLoader workers forked after this file was opened share its offset, so a
            # seek then read could read another worker's record
            data = os.pread(f.fileno(), size, offset)
        else:
            f.seek(offset)
            data = f.read(size)
        if len(data) != size:
            raise UserError(f"Shard {self.root / shard} is truncated; rerun extraction.")
        return data

    def meta(self, i: int) -> dict[str, Any]:
        c = self.clips[i]
        try:
            return json.loads(self._read(c["shard"], c["meta_offset"], c["meta_size"]))
        except (ValueError, RecursionError):
            raise UserError(f"Shard {self.root / c['shard']} holds a damaged record ({c['key']}); rerun extraction.") \
                from None

    def __getitem__(self, i: int) -> ClipRecord:
        c = self.clips[i]
        try:
            tensors = st_load(self._read(c["shard"], c["offset"], c["size"]))
        except SafetensorError:
            raise UserError(f"Shard {self.root / c['shard']} holds a damaged record ({c['key']}); rerun extraction.") \
                from None
        return ClipRecord(key=c["key"], meta=self.meta(i), tensors=tensors)

    def __iter__(self) -> Iterator[ClipRecord]:
        for i in range(len(self)):
            yield self[i]

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    def __getstate__(self) -> dict:  # data-loader workers reopen their own files
        state = dict(self.__dict__)
        state["_files"] = {}
        return state


def iter_shard(path: str | os.PathLike) -> Iterator[ClipRecord]:
    """Stream the records of one shard in order (no index needed)."""
    pending: dict[str, dict] = {}
    with tarfile.open(path, "r|") as tar:
        for m in tar:
            data = tar.extractfile(m).read() if m.isfile() else b""
            key, ext = m.name.rsplit(".", 1)
            slot = pending.setdefault(key, {})
            slot[ext] = data
            if "json" in slot and "safetensors" in slot:
                yield ClipRecord(key=key, meta=json.loads(slot["json"]), tensors=st_load(slot["safetensors"]))
                del pending[key]


def as_int_tokens(x: np.ndarray | Tensor, vocab: int) -> Tensor:
    """Store token ids in the smallest integer type that holds ``vocab`` (int16 or int32)."""
    t = torch.as_tensor(x)
    return t.to(torch.int16 if vocab <= 32767 else torch.int32)
