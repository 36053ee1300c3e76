"""How much of the corpus's rendered music is drums playing alone (:func:`v2meow.metrics.music.drums_alone`).

Samples ``--tracks`` training and held-out tracks with a drum part and as many without from
``data_cache/corpus/scores/sources.json`` and prints, for each kind, the share of 2.5 s stretches that are drums
alone and how many tracks hold at least 10 s of it. Renders made before drum parts stopped with their piece's last
note (entries without ``drums_end_with_piece``) are counted apart, so a corpus part-way through ``make corpus``
shows both.

    python scripts/corpus_drums.py --tracks 40
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(ROOT / "data_cache" / "corpus" / "scores"))
    p.add_argument("--tracks", type=int, default=40, help="tracks sampled of each kind")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import soundfile

    from v2meow.metrics.music import drums_alone

    files = json.loads((Path(args.corpus) / "sources.json").read_text())["files"]
    rng = np.random.default_rng(args.seed)
    kinds = {
        "drums, rendered before the fix": [f for f in files if "drums" in f["labels"]["instruments"]
                                           and not f.get("drums_end_with_piece")],
        "drums, rendered since": [f for f in files if "drums" in f["labels"]["instruments"]
                                  and f.get("drums_end_with_piece")],
        "no drums": [f for f in files if "drums" not in f["labels"]["instruments"]],
    }
    for kind, pool in kinds.items():
        if not pool:
            print(f"{kind}: no tracks")
            continue
        pick = [pool[i] for i in rng.choice(len(pool), min(args.tracks, len(pool)), replace=False)]
        alone = stretches = long = 0
        for f in pick:
            wav, sr = soundfile.read(str(Path(args.corpus) / f["path"]), dtype="float32")
            d = drums_alone(wav, sr, 2.5)
            alone, stretches, long = alone + int(d.sum()), stretches + len(d), long + int(d.sum() * 2.5 >= 10.0)
        print(f"{kind} ({len(pick)} of {len(pool)} tracks): {alone / max(stretches, 1):.1%} of the time drums alone; "
              f"{long} tracks with at least 10 s of it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
