"""The release rule, applied: a candidate model against the committed one on every gate measure, from the folders
`scripts/eval_embedded.py` wrote for each (the same held-out videos and seeds), with a verdict per measure.

A measure is **better** when the candidate's mean is better; **within noise** when it is worse by less than one
standard error of the paired (clip by clip, seed by seed) difference; **worse** otherwise. FAD's standard error comes
from a paired bootstrap over the videos (scripts/paired_fad.py; until 2026-12-06 FAD, one number per set, had to
be no worse at all). Tempo accuracy (whole clips) is judged as the paired measures are (until 2026-12-07 it had to
be no worse at all). A candidate passes when no measure is
worse, at least one is better by more than two standard errors, and the paired measures do not lean worse together
(the mean of their differences in standard errors is not below 0): what it was made to improve, it must improve
beyond noise, and nothing may get measurably worse, alone or as a group of small losses.

    python scripts/eval_embedded.py --model BASE --models trained --videos 240 --out B --best-only \\
        --skip rhythm,bbb,oracle,sanity,prompts,speed
    python scripts/eval_embedded.py --model BASE --models trained --videos 6 --out B_extra --best-only \\
        --skip evaluate,oracle,sanity,speed --bbb-seeds 32 --rhythm-seeds 6 --first-seed 100
    # the same for the candidate into C and C_extra, then:
    python scripts/release_gate.py B C --extra B_extra C_extra

The extras' draws (since 2026-12-07): 6 per periodic-motion video and 32 of Big Buck Bunny from ``--first-seed 100``
(draw s at seed 4 s), none of which chose a generation setting and twice the periodic clips: the shipped model's
tempo acc1 moved from 75 % to 92 % between sets of draws, and the earlier Big Buck Bunny seeds shared candidates
three in four.

Exits 0 when the candidate passes, 1 when it does not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

KEY = "evaluate_trained_best4"


def _se(d: np.ndarray) -> float:
    return float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("inf")


def paired_row(name: str, base: np.ndarray, cand: np.ndarray, higher: bool) -> dict:
    """A measure with one value per clip (or seed) for both: the paired difference, signed so that > 0 is better."""
    d = (cand - base) * (1 if higher else -1)
    se = _se(d)
    m = float(d.mean())
    verdict = "better" if m > 0 else ("within noise" if m >= -se else "worse")
    return {"measure": name, "base": float(base.mean()), "candidate": float(cand.mean()),
            "paired": f"{float((cand - base).mean()):+.4f} ± {se:.4f}", "verdict": verdict,
            "clear": m > 2 * se, "z": m / se if se > 0 else 0.0}


def whole_row(name: str, base: float, cand: float, higher: bool, noise: float = 0.0) -> dict:
    """A measure with one value per set: worse by more than ``noise`` fails."""
    d = (cand - base) * (1 if higher else -1)
    verdict = "better" if d > 0 else ("equal" if d == 0 else ("within noise" if d >= -noise else "worse"))
    return {"measure": name, "base": base, "candidate": cand, "paired": "", "verdict": verdict, "clear": False}


def tempo_row(name: str, base: np.ndarray, cand: np.ndarray) -> dict:
    """Tempo accuracy, clip by clip (1 at the video's tempo, else 0): worse by more than one standard error of the
    paired difference fails, as for the other paired measures (until 2026-12-07 any loss failed: on fresh draws two
    models of equal tempo accuracy swap a tenth of the clips each way); better beyond noise (``clear``) when the
    paired gain exceeds two standard errors. It stays out of the lean."""
    row = paired_row(name, base.astype(float), cand.astype(float), higher=True)
    del row["z"]  # out of the lean
    if row["candidate"] == row["base"]:
        row["verdict"] = "equal"
    return row


def fad_row(name: str, base: float, cand: float, emb: dict[str, list[np.ndarray]], folders: list[str],
            boot: int = 500) -> dict:
    """FAD as evaluate reported it, with the standard error of the difference from a paired bootstrap over the
    videos (scripts/paired_fad.py) on one encoder's clip embeddings ``emb``; signed so that > 0 is better."""
    from paired_fad import paired_bootstrap

    _, draws = paired_bootstrap(emb["real"], [emb[f] for f in folders], boot)
    se = float((draws[:, 1] - draws[:, 0]).std(ddof=1))
    m = base - cand
    verdict = "better" if m > 0 else ("within noise" if m >= -se else "worse")
    return {"measure": name, "base": base, "candidate": cand, "paired": f"{cand - base:+.4f} ± {se:.4f} (bootstrap)",
            "verdict": verdict, "clear": m > 2 * se, "z": m / se if se > 0 else 0.0}


def gate(base: Path, cand: Path, extra: tuple[Path, Path] | None, joint: str) -> list[dict]:
    from beat_gap import clip_beats
    from paired_fad import BACKENDS, clip_embeddings
    from paired_joint import clip_joint

    rb = json.loads((base / "results.json").read_text())[KEY]["v2meow"]
    rc = json.loads((cand / "results.json").read_text())[KEY]["v2meow"]
    videos = base / "heldout_videos"
    folders = [str(base / KEY), str(cand / KEY)]
    emb = clip_embeddings(videos, folders, tuple(BACKENDS))  # the soundtracks read once for both encoders
    rows = [fad_row(f"FAD, {backend} encoder ↓", rb[col], rc[col], emb[backend], folders)
            for backend, col in BACKENDS.items()]
    kld_mcc = clip_joint(videos, folders, joint)
    (kb, mb), (kc, mc) = (kld_mcc[f] for f in folders)
    rows.append(paired_row("KLD ↓", kb, kc, higher=False))
    rows.append(paired_row("MCC ↑", mb, mc, higher=True))
    beats = clip_beats(videos, folders)
    (ob, xb), (oc, xc) = (beats[f] for f in folders)
    rows.append(paired_row("beat F, own video ↑", ob, oc, higher=True))
    rows.append(paired_row("beat F, own minus other videos' ↑", ob - xb, oc - xc, higher=True))
    if extra is not None:
        eb, ec = (json.loads((e / "results.json").read_text()) for e in extra)
        name = next(iter(eb["rhythm"]))
        cb, cc = eb["rhythm"][name]["clips"], ec["rhythm"][name]["clips"]
        if [(c["video"], c["seed"]) for c in cb] != [(c["video"], c["seed"]) for c in cc]:
            raise SystemExit("The two rhythm parts scored other videos or seeds (eval_embedded.py --rhythm-seeds): "
                             "run both the same way.")
        gap = lambda clips: np.array([c["f_matched"] - c["f_mismatched"] for c in clips])  # noqa: E731
        rows.append(paired_row(f"periodic-motion videos ({len(cb)} clips): beat F gap ↑", gap(cb), gap(cc),
                               higher=True))
        acc = lambda clips: np.array([float(c["acc1"]) for c in clips])  # noqa: E731
        rows.append(tempo_row("periodic-motion videos: tempo acc1 ↑", acc(cb), acc(cc)))
        sb, sc = eb["bbb"]["trained"], ec["bbb"]["trained"]
        if "beat_f_seeds" in sb and "beat_f_seeds" in sc:
            rows.append(paired_row(f"Big Buck Bunny beat F, {len(sb['beat_f_seeds'])} seeds ↑",
                                   np.array(sb["beat_f_seeds"]), np.array(sc["beat_f_seeds"]), higher=True))
        else:
            rows.append(whole_row("Big Buck Bunny beat F ↑ (no per-seed values)", sb["beat_f"], sc["beat_f"], True))
        for prompt, pb in eb["prompts"]["trained"].items():
            pc = ec["prompts"]["trained"][prompt]
            noise = float(np.hypot(pb["gain_se"], pc["gain_se"]))
            rows.append(whole_row(f"prompt gain: {prompt} ↑", pb["paired_gain"], pc["paired_gain"], True, noise))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base", help="the committed model's eval_embedded folder (the held-out videos part)")
    p.add_argument("candidate", help="the candidate's, on the same videos")
    p.add_argument("--extra", nargs=2, metavar=("BASE", "CANDIDATE"),
                   help="the folders of the rhythm, Big Buck Bunny and prompt parts")
    p.add_argument("--joint", default="embedded", help="the joint model KLD and MCC are scored with")
    p.add_argument("--json", default=None, help="also write the rows here")
    args = p.parse_args(argv)
    rows = gate(Path(args.base), Path(args.candidate), None if args.extra is None else
                (Path(args.extra[0]), Path(args.extra[1])), args.joint)
    print("| measure | committed | candidate | paired difference | verdict |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['measure']} | {r['base']:.4f} | {r['candidate']:.4f} | {r['paired']} | {r['verdict']} |")
    none_worse = all(r["verdict"] != "worse" for r in rows)
    clear = any(r["clear"] for r in rows)
    lean = float(np.mean([r["z"] for r in rows if "z" in r]))
    passes = none_worse and clear and lean >= 0
    print(f"\n{'PASSES' if passes else 'DOES NOT PASS'}: no measure worse beyond its noise: {none_worse}; "
          f"one better beyond noise: {clear}; paired measures' mean difference {lean:+.2f} standard errors "
          f"({'not below 0' if lean >= 0 else 'leaning worse'})")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "lean": lean, "passes": passes}, indent=1))
    return 0 if passes else 1


if __name__ == "__main__":
    sys.exit(main())
