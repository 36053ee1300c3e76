import json
import os

import pytest

from v2meow.data.extract import clip_split, extract, split_of
from v2meow.data.shards import ShardReader, read_manifest
from v2meow.errors import UserError


def test_extract_records(shard_dir):
    m = read_manifest(shard_dir)
    assert len(m["clips"]) == 6  # the silent video is skipped
    assert {c["split"] for c in m["clips"]} == {"train", "validation"}
    reader = ShardReader(shard_dir)
    rec = reader[0]
    d = rec.meta["duration"]
    assert rec.tensors["semantic"].shape == (round(d * 25),)
    assert rec.tensors["acoustic"].shape == (4, round(d * 50))
    assert rec.tensors["features/appearance"].shape[0] == round(d)
    ids = rec.meta["identities"]
    assert ids["codec"]["num_levels"] == 4 and ids["semantic_tokenizer"]["vocab_size"] == 64
    assert [e["name"] for e in ids["encoders"]] == ["appearance", "motion"]


def test_rerun_skips_complete_shards_and_machines_partition(tmp_path, video_dir, debug_model_dir):
    out = tmp_path / "s"
    extract(video_dir, out, debug_model_dir, shard_size=2, shard_index=1, num_shards=2, progress=False)
    assert sorted(p.name for p in out.glob("shard-*.tar")) == ["shard-000001.tar", "shard-000003.tar"]
    mtimes = {p.name: os.stat(p).st_mtime_ns for p in out.glob("shard-*.tar")}
    m = extract(video_dir, out, debug_model_dir, shard_size=2, shard_index=0, num_shards=2, progress=False)
    assert len(m["shards"]) == 4
    for name, t in mtimes.items():
        assert os.stat(out / name).st_mtime_ns == t  # not rewritten
    again = extract(video_dir, out, debug_model_dir, shard_size=2, progress=False)
    assert again["clips"] == m["clips"]


def test_a_folder_that_gains_videos_is_extracted_again_where_its_shards_moved(tmp_path, video_dir,
                                                                              debug_model_dir):
    """Shards take videos by sorted order, so a video added in front moves every later one to another shard: the
    shards made before it must not be kept as they are (each clip once, none lost)."""
    import shutil

    from media import make_video

    src = tmp_path / "videos"
    shutil.copytree(video_dir, src)
    out = tmp_path / "s"
    before = extract(src, out, debug_model_dir, shard_size=2, progress=False)
    make_video(src / "a_first.mp4", seconds=2.0, fps=10, size=(48, 32), pattern="flash", audio=True, seed=9)
    after = extract(src, out, debug_model_dir, shard_size=2, progress=False)
    keys = [c["key"] for c in after["clips"]]
    assert len(keys) == len(set(keys)) == len(before["clips"]) + 1
    (src / "a_first.mp4").unlink()  # and when it goes again, the shard past the new end goes too
    again = extract(src, out, debug_model_dir, shard_size=2, progress=False)
    assert sorted(c["key"] for c in again["clips"]) == sorted(c["key"] for c in before["clips"])
    assert len(again["shards"]) == len(before["shards"])


def test_a_video_made_again_under_the_same_name_is_extracted_again(tmp_path, video_dir, debug_model_dir):
    """A shard is judged by its videos' contents too: synth-data makes a video again when its music changed (the
    corpus rendered anew), and the shard that holds it must then hold the new clip; the others are kept."""
    import shutil

    from media import make_video

    from v2meow.data.shards import ShardReader

    src = tmp_path / "videos"
    shutil.copytree(video_dir, src)
    out = tmp_path / "s"
    extract(src, out, debug_model_dir, shard_size=2, progress=False)
    mtimes = {p.name: os.stat(p).st_mtime_ns for p in out.glob("shard-*.tar")}
    target = sorted(src.glob("clip*.mp4"))[3]  # clip3: the second video of shard 1
    old = next(r for r in ShardReader(out) if r.meta["source"] == target.name).tensors["semantic"]
    make_video(target, seconds=2.0 + 0.5 * 3, fps=10, size=(48, 32), pattern="noise", audio=True, seed=77)
    after = extract(src, out, debug_model_dir, shard_size=2, progress=False)
    changed = [n for n, t in mtimes.items() if os.stat(out / n).st_mtime_ns != t]
    assert changed == ["shard-000001.tar"]  # only the shard that holds it
    new = next(r for r in ShardReader(out) if r.meta["source"] == target.name).tensors["semantic"]
    assert not (new.shape == old.shape and bool((new == old).all()))
    sidecar = json.loads((out / "shard-000001.tar.json").read_text())
    assert len(sidecar["source_sha256"]) == len(sidecar["sources"]) == 2
    assert len(after["clips"]) == 6


def test_split_is_fixed_by_seed():
    names = [f"v{i}.mp4" for i in range(400)]
    a = [split_of(n, 0, 0.2) for n in names]
    assert a == [split_of(n, 0, 0.2) for n in names]
    assert 0.1 < a.count("validation") / 400 < 0.3
    assert a != [split_of(n, 1, 0.2) for n in names]


def test_bad_arguments(tmp_path, debug_model_dir):
    with pytest.raises(UserError, match="no videos"):
        extract(tmp_path, tmp_path / "o", debug_model_dir, progress=False)
    with pytest.raises(UserError):
        extract(tmp_path / "nope", tmp_path / "o", debug_model_dir, progress=False)


def test_held_out_music_decides_the_split(tmp_path):
    for name, flag in (("held.mp4", True), ("trained.mp4", False)):
        (tmp_path / name).write_bytes(b"")
        (tmp_path / name).with_suffix(".json").write_text(json.dumps({"source": {"info": {"heldout": flag}}}))
    (tmp_path / "plain.mp4").write_bytes(b"")
    assert clip_split(tmp_path, "held.mp4", 0, 0.0) == "validation"
    assert clip_split(tmp_path, "trained.mp4", 0, 0.99) == "train"
    names = [f"v{i}.mp4" for i in range(40)]
    assert [clip_split(tmp_path, n, 0, 0.5) for n in names] == [split_of(n, 0, 0.5) for n in names]


def test_hidden_files_are_not_videos(tmp_path):
    from v2meow.data.extract import list_videos

    for name in ("a.mp4", ".tmp-b.mp4-x1.mp4", ".cache/c.mp4", "d/e.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert list_videos(tmp_path) == ["a.mp4", os.path.join("d", "e.mp4")]
