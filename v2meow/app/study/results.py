"""Win rates with 95% Wilson score intervals from a ratings database (:func:`export_results`)."""

from __future__ import annotations

import json
import math
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from v2meow.app.study.model import QUESTIONS, Study, load_study
from v2meow.app.study.store import _check_study_name
from v2meow.errors import UserError

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for a proportion ``k / n`` (95% for the default ``z``); None when ``n == 0``.

    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``p = k/n``.
    """
    if n <= 0:
        return None
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def export_results(db: str | os.PathLike[str], study: Study | str | os.PathLike[str]) -> dict:
    """Win rates per system pair and question, with 95% Wilson score intervals, from a ratings database.

    The win rate of a system is its wins over the decisive ratings (ties, "no preference", are counted
    apart and left out). Returns a JSON-ready dict: ``comparisons`` (one row per system pair and
    question), ``progress`` (pairs that reached their target number of ratings), ``left_chosen`` (how
    often raters picked the left side, a check on position bias) and ``markdown`` (a table of it all).
    """
    if not isinstance(study, Study):
        study = load_study(study)
    if not Path(db).is_file():
        raise UserError(f"no ratings database at {db}")
    try:
        conn = sqlite3.connect(f"file:{quote(str(Path(db).resolve()))}?mode=ro", uri=True)
        try:
            _check_study_name(conn, study, db)
            rows = conn.execute("SELECT rater, item_id, question, left_system, right_system, choice, winner "
                                "FROM ratings ORDER BY id").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise UserError(f"cannot read the ratings database {db}: {e}") from None

    # A system pair is reported in the order its systems first appear in study.json.
    order: dict[frozenset, tuple[str, str]] = {}
    for it in study.items:
        order.setdefault(frozenset(t.system for t in it.tracks), (it.tracks[0].system, it.tracks[1].system))
    known = {it.id for it in study.items}
    stats: dict[tuple[str, str, str], dict[str, int]] = {}
    per_item: dict[tuple[str, str], int] = {}
    left_chosen = decisive = 0
    raters = set()
    for rater, item_id, question, left, right, choice, winner in rows:
        if item_id not in known:
            continue  # a pair removed from study.json since
        a, b = order.get(frozenset((left, right)), tuple(sorted((left, right))))
        s = stats.setdefault((question, a, b), {"n": 0, "wins_a": 0, "wins_b": 0, "ties": 0})
        s["n"] += 1
        s["wins_a" if winner == a else "wins_b" if winner == b else "ties"] += 1
        per_item[(item_id, question)] = per_item.get((item_id, question), 0) + 1
        raters.add(rater)
        if choice != "none":
            decisive += 1
            left_chosen += choice == "left"

    comparisons = []
    qrank = {q: i for i, q in enumerate(QUESTIONS)}
    for (question, a, b), s in sorted(stats.items(), key=lambda kv: (qrank.get(kv[0][0], 99), kv[0][1:])):
        d = s["wins_a"] + s["wins_b"]
        ci_a, ci_b = wilson_interval(s["wins_a"], d), wilson_interval(s["wins_b"], d)
        comparisons.append({
            "question": question, "question_text": QUESTIONS.get(question, (question,))[0],
            "system_a": a, "system_b": b, **s, "decisive": d,
            "win_rate_a": s["wins_a"] / d if d else None, "ci_a": list(ci_a) if ci_a else None,
            "win_rate_b": s["wins_b"] / d if d else None, "ci_b": list(ci_b) if ci_b else None,
        })
    tasks = [(it.id, q) for it in study.items for q in study.questions]
    complete = sum(per_item.get(t, 0) >= study.ratings_per_pair for t in tasks)
    result = {
        "study": study.name,
        "interval": "95% Wilson score interval (z = 1.96) on the win rate; ties ('no preference') excluded",
        "ratings": sum(s["n"] for s in stats.values()),
        "raters": len(raters),
        "ratings_per_pair": study.ratings_per_pair,
        "progress": {"pairs": len(tasks), "complete": complete},
        "left_chosen": {"count": left_chosen, "of": decisive, "rate": left_chosen / decisive if decisive else None},
        "comparisons": comparisons,
    }
    result["markdown"] = _markdown(result)
    return result


def _markdown(result: dict) -> str:
    lines = [f"Study **{result['study']}**: {result['ratings']} ratings by {result['raters']} raters; "
             f"{result['progress']['complete']} of {result['progress']['pairs']} (pair, question) tasks have "
             f"{result['ratings_per_pair']} ratings.", "",
             "| question | system A | system B | ratings | A wins | B wins | no pref. | A win rate [95% CI] |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for c in result["comparisons"]:
        ci = f" [{_pct(c['ci_a'][0])}, {_pct(c['ci_a'][1])}]" if c["ci_a"] else ""
        lines.append(f"| {c['question']} | {c['system_a']} | {c['system_b']} | {c['n']} | {c['wins_a']} | "
                     f"{c['wins_b']} | {c['ties']} | {_pct(c['win_rate_a'])}{ci} |")
    lines += ["", f"Win rates over decisive ratings; {result['interval']}."]
    return "\n".join(lines) + "\n"


def export_study(study_dir: str | os.PathLike[str], db_path: str | os.PathLike[str],
                 out_json: str | os.PathLike[str]) -> dict:
    """:func:`export_results` written to ``out_json`` (atomically); returns the same dict."""
    result = export_results(db_path, load_study(study_dir))
    out = Path(out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return result
