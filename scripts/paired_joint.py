"""Per-clip KLD (zero-shot tags) and MCC of generated music against its video's real music, in one joint space,
from `v2meow evaluate` folders on the same videos; later folders are also paired with the first, clip by clip,
so a difference between two models comes with its standard error (evaluate reports the means only).

    python scripts/paired_joint.py VIDEOS EVAL_DIR [EVAL_DIR ...] [--joint embedded]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("videos")
    p.add_argument("folders", nargs="+")
    p.add_argument("--joint", default="embedded", help="the joint model both are scored with (default: the shipped)")
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args(argv)
    print("| system | KLD ↓ | MCC ↑ |")
    print("|---|---|---|")
    rows = clip_joint(args.videos, args.folders, args.joint, args.seconds)
    for folder, (kld, mcc) in rows.items():
        print(f"| {Path(folder).parent.name}/{Path(folder).name} | {np.mean(kld):.3f} | {np.mean(mcc):.3f} |")
    first = rows[args.folders[0]]
    for folder in args.folders[1:]:
        dk, dm = rows[folder][0] - first[0], rows[folder][1] - first[1]
        se = np.sqrt(len(dk))
        print(f"{folder} minus {args.folders[0]}: KLD {dk.mean():+.3f} ± {dk.std(ddof=1) / se:.3f} "
              f"(lower on {np.mean(dk < 0):.0%} of clips), MCC {dm.mean():+.3f} ± {dm.std(ddof=1) / se:.3f} "
              f"(higher on {np.mean(dm > 0):.0%})")
    return 0


def clip_joint(videos_dir: str | Path, folders: list[str], joint_name: str = "embedded",
               seconds: float = 10.0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per folder, each clip's KLD and MCC against its video's music ``(kld, mcc)``, scored with one joint model."""
    import soundfile as sf

    from v2meow.io.audio import load_audio
    from v2meow.metrics.joint_backends import JointModelEmbedder, ZeroShotTagger
    from v2meow.metrics.kld import ClassKLDivergence
    from v2meow.metrics.mcc import JointCosine
    from v2meow.train.joint import load_joint

    joint = load_joint(joint_name)[0].eval()
    embedder, tagger = JointModelEmbedder(joint), ZeroShotTagger(joint)
    videos = sorted(Path(videos_dir).glob("*.mp4"))
    sr = 16000
    refs = [load_audio(str(v), sample_rate=sr, duration=seconds) for v in videos]
    ref_emb = [JointCosine(embedder).embed_clip(r, sr) for r in refs]
    rows = {}
    for folder in folders:
        wavs = sorted((Path(folder) / "audio").glob("*.wav"))
        assert len(wavs) == len(videos), (folder, len(wavs), len(videos))
        kld, mcc = [], []
        for w, ref, r_emb in zip(wavs, refs, ref_emb):
            a, rate = sf.read(str(w), always_2d=True, dtype="float32")
            wav = a.mean(1)
            k = ClassKLDivergence(tagger, per="item")
            k.update_audio(wav, ref, rate)
            kld.append(k.compute()["kld"])
            c = JointCosine(embedder)
            c.update(c.embed_clip(wav, rate)[None], r_emb[None])
            mcc.append(float(c.scores()[0]))
        rows[folder] = (np.array(kld), np.array(mcc))
    return rows


if __name__ == "__main__":
    sys.exit(main())
