"""The listening study: study folders, the ratings database, win rates, and the HTTP server."""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading

import pytest
from media import make_audio, make_video

from v2meow.app.study import (
    RatingStore,
    export_results,
    export_study,
    load_study,
    make_server,
    make_study,
    wilson_interval,
)
from v2meow.errors import UserError


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Two tiny videos and three soundtracks (each a different length, so files are told apart by size)."""
    root = tmp_path_factory.mktemp("src")
    v0 = make_video(root / "v0.mp4", seconds=1.0, fps=10, size=(48, 32), pattern="flash")
    v1 = make_video(root / "v1.mp4", seconds=1.0, fps=10, size=(48, 32), pattern="move")
    audio = {name: make_audio(root / f"{name}.wav", seconds=0.5 + 0.1 * i, freq=300.0 + 100 * i)
             for i, name in enumerate(["v2meow", "baseline", "other"])}
    return {"v0": v0, "v1": v1, **audio}


def _pairs(src):
    return [
        {"video": src["v0"], "tracks": {"v2meow": src["v2meow"], "baseline": src["baseline"]}},
        {"video": src["v1"], "tracks": {"v2meow": src["v2meow"], "baseline": src["baseline"]}},
        {"id": "third", "video": src["v0"], "tracks": [{"system": "v2meow", "audio": src["v2meow"]},
                                                     {"system": "other", "audio": src["other"]}]},
    ]


@pytest.fixture(scope="module")
def study_dir(sources, tmp_path_factory):
    return make_study(_pairs(sources), tmp_path_factory.mktemp("study") / "s", name="unit", ratings_per_pair=2)


@pytest.fixture
def server(study_dir, tmp_path):
    srv = make_server(study_dir, tmp_path / "ratings.db", port=0, quiet=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def request(srv_or_port, method, path, body=None, cookie=None, headers=None):
    """Send ``path`` exactly as given (no normalisation); return ``(status, headers, body bytes)``."""
    port = srv_or_port if isinstance(srv_or_port, int) else srv_or_port.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = dict(headers or {})
    if cookie:
        h["Cookie"] = f"v2meow_rater={cookie}"
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    out = r.status, dict(r.getheaders()), r.read()
    conn.close()
    return out


def new_rater(srv):
    status, headers, body = request(srv, "GET", "/api/next")
    assert status == 200
    cookie = re.match(r"v2meow_rater=([^;]+);", headers["Set-Cookie"]).group(1)
    return cookie, json.loads(body)


def answer(srv, cookie, task, choice="left"):
    status, _, body = request(srv, "POST", "/api/answer", cookie=cookie,
                              body={"item": task["item"], "question": task["question"], "choice": choice})
    return status, json.loads(body)


# --------------------------------------------------------------------------------------------- study folders


def test_make_study_copies_files_once_and_loads(study_dir, sources):
    study = load_study(study_dir)
    assert study.name == "unit" and study.ratings_per_pair == 2 and not study.allow_no_preference
    assert study.questions == ("relevance", "preference")
    assert [it.id for it in study.items] == ["pair0000", "pair0001", "third"]
    assert study.items[2].video == study.items[0].video  # v0 copied once
    assert all(p.is_relative_to(study.root) for it in study.items for p in (it.video, *(t.audio for t in it.tracks)))
    assert [t.system for t in study.items[2].tracks] == ["v2meow", "other"]
    with pytest.raises(UserError, match="already holds a study"):
        make_study(_pairs(sources), study_dir)


@pytest.mark.parametrize("change, message", [
    (lambda s: s["items"][0].update(video="../outside.mp4"), "outside the study folder"),
    (lambda s: s["items"][0].update(video="/etc/passwd"), "relative"),
    (lambda s: s["items"][0].update(video="media/nope.mp4"), "does not exist"),
    (lambda s: s["items"][0]["tracks"][1].update(system="v2meow"), "with itself"),
    (lambda s: s["items"][0]["tracks"].pop(), "exactly two tracks"),
    (lambda s: s["items"][1].update(id="pair0000"), "used twice"),
    (lambda s: s["items"][1].update(id="../x"), "letters"),
    (lambda s: s.update(questions=["beauty"]), "questions"),
    (lambda s: s.update(ratings_per_pair=0), "ratings_per_pair"),
    (lambda s: s.update(colour="blue"), "unknown keys"),
])
def test_load_study_rejects_bad_definitions(study_dir, tmp_path, change, message):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(study_dir, bad)
    spec = json.loads((bad / "study.json").read_text())
    change(spec)
    (bad / "study.json").write_text(json.dumps(spec))
    with pytest.raises(UserError, match=message):
        load_study(bad)


def test_database_of_another_study_is_refused(study_dir, sources, tmp_path):
    db = tmp_path / "r.db"
    RatingStore(db, load_study(study_dir)).close()
    other = make_study(_pairs(sources), tmp_path / "other", name="another")
    with pytest.raises(UserError, match="holds ratings of study 'unit'"):
        RatingStore(db, load_study(other))


# --------------------------------------------------------------------------------------------- win rates


def test_wilson_interval_matches_hand_computation():
    # 8 wins of 10, z = 1.96: the textbook form (2k + z² ± z·sqrt(z² + 4k(n-k)/n)) / (2(n + z²)).
    z = 1.959963984540054
    k, n = 8, 10
    lo = (2 * k + z * z - z * math.sqrt(z * z + 4 * k * (n - k) / n)) / (2 * (n + z * z))
    hi = (2 * k + z * z + z * math.sqrt(z * z + 4 * k * (n - k) / n)) / (2 * (n + z * z))
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-12)
    assert got == pytest.approx((0.4902, 0.9433), abs=1e-4)  # as published tables give it
    assert wilson_interval(0, 0) is None
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
    assert wilson_interval(3, 6) == pytest.approx((1 - wilson_interval(3, 6)[1], 1 - wilson_interval(3, 6)[0]))


def _rate(store, rater, item_id, question, winner):
    """Record ``rater`` choosing ``winner`` (a system name, or None for no preference)."""
    item = store.study.item(item_id)
    left, right = store.sides(rater, item, question)
    choice = "none" if winner is None else "left" if left.system == winner else "right"
    return store.record(rater, item, question, choice)


def test_export_win_rates_on_hand_built_data(study_dir, tmp_path):
    study = load_study(study_dir)
    db = tmp_path / "r.db"
    store = RatingStore(db, study)
    # relevance, v2meow vs baseline: v2meow wins 3 of 4. relevance, v2meow vs other: other wins 1 of 1.
    # preference, v2meow vs baseline: 1 of 2.
    for rater, item, winner in [("r1", "pair0000", "v2meow"), ("r2", "pair0000", "v2meow"),
                                ("r1", "pair0001", "baseline"), ("r2", "pair0001", "v2meow")]:
        assert _rate(store, rater, item, "relevance", winner) == winner
    _rate(store, "r1", "third", "relevance", "other")
    _rate(store, "r3", "pair0000", "preference", "baseline")
    _rate(store, "r3", "pair0001", "preference", "v2meow")
    store.close()

    res = export_results(db, study)
    assert res["ratings"] == 7 and res["raters"] == 3
    rows = {(c["question"], c["system_a"], c["system_b"]): c for c in res["comparisons"]}
    assert list(rows) == [("relevance", "v2meow", "baseline"), ("relevance", "v2meow", "other"),
                          ("preference", "v2meow", "baseline")]
    c = rows["relevance", "v2meow", "baseline"]
    assert (c["n"], c["wins_a"], c["wins_b"], c["ties"]) == (4, 3, 1, 0)
    assert c["win_rate_a"] == 0.75 and c["win_rate_b"] == 0.25
    assert c["ci_a"] == pytest.approx(list(wilson_interval(3, 4)))
    assert c["ci_b"] == pytest.approx(list(wilson_interval(1, 4)))
    assert rows["relevance", "v2meow", "other"]["win_rate_b"] == 1.0
    assert rows["preference", "v2meow", "baseline"]["win_rate_a"] == 0.5
    assert res["progress"] == {"pairs": 6, "complete": 2}  # pair0000 and pair0001 relevance have 2 ratings each
    lo, hi = wilson_interval(3, 4)
    assert f"| relevance | v2meow | baseline | 4 | 3 | 1 | 0 | 75.0% [{100 * lo:.1f}%, {100 * hi:.1f}%] |" \
        in res["markdown"]
    assert "Wilson" in res["interval"]
    assert res["left_chosen"]["of"] == 7

    out = tmp_path / "out" / "results.json"
    assert export_study(study_dir, db, out) == json.loads(out.read_text())


def test_no_preference_is_a_tie_outside_the_win_rate(sources, tmp_path):
    study = load_study(make_study(_pairs(sources)[:1], tmp_path / "s", questions=["preference"],
                                  allow_no_preference=True))
    store = RatingStore(tmp_path / "r.db", study)
    for rater, winner in [("a", "v2meow"), ("b", None), ("c", "baseline"), ("d", "v2meow")]:
        _rate(store, rater, "pair0000", "preference", winner)
    store.close()
    (c,) = export_results(tmp_path / "r.db", study)["comparisons"]
    assert (c["n"], c["decisive"], c["ties"], c["wins_a"]) == (4, 3, 1, 2)
    assert c["win_rate_a"] == pytest.approx(2 / 3)
    assert c["ci_a"] == pytest.approx(list(wilson_interval(2, 3)))


def test_duplicate_rating_is_refused_by_the_database(study_dir, tmp_path):
    store = RatingStore(tmp_path / "r.db", load_study(study_dir))
    item = store.study.items[0]
    store.record("r1", item, "relevance", "left")
    with pytest.raises(UserError, match="already rated"):
        store.record("r1", item, "relevance", "right")
    store.record("r1", item, "preference", "right")  # the other question is another task
    with pytest.raises(sqlite3.IntegrityError):  # the constraint itself, not only the check in record()
        store.conn.execute("INSERT INTO ratings (rater, item_id, question, left_system, right_system, choice, "
                           "created) VALUES ('r1', ?, 'relevance', 'a', 'b', 'left', 0)", (item.id,))
    store.close()


# --------------------------------------------------------------------------------------------- HTTP


def test_answer_flow_and_duplicates_over_http(server):
    cookie, first = new_rater(server)
    task = first["task"]
    assert first["done"] is False and first["rated"] == 0
    assert task["choices"] == ["left", "right"]
    assert task["text"] in ("Which music goes best with the video?", "Which music do you prefer?")
    assert re.fullmatch(r"/media/\d/video", task["video"])
    assert answer(server, cookie, task) == (200, {"ok": True, "rated": 1})
    status, body = answer(server, cookie, task, "right")
    assert status == 409 and "already rated" in body["error"]
    with sqlite3.connect(server.store.path) as conn:
        rows = conn.execute("SELECT rater, item_id, question, choice FROM ratings").fetchall()
    assert rows == [(cookie, task["item"], task["question"], "left")]

    # This rater goes through the other five tasks once each, never seeing one twice, then is done.
    seen = {(task["item"], task["question"])}
    while True:
        status, _, body = request(server, "GET", "/api/next", cookie=cookie)
        nxt = json.loads(body)
        if nxt["done"]:
            break
        key = (nxt["task"]["item"], nxt["task"]["question"])
        assert key not in seen
        seen.add(key)
        assert answer(server, cookie, nxt["task"])[0] == 200
    assert len(seen) == 6 and nxt["rated"] == 6


def test_least_rated_pairs_first_and_target(server):
    counts: dict = {}
    for _ in range(2 * 6):  # ratings_per_pair = 2, six (pair, question) tasks; one answer per new rater
        cookie, nxt = new_rater(server)
        key = (nxt["task"]["item"], nxt["task"]["question"])
        assert counts.get(key, 0) == min([counts.get(k, 0) for k in counts] + [0] * (6 - len(counts)))
        counts[key] = counts.get(key, 0) + 1
        assert answer(server, cookie, nxt["task"])[0] == 200
    assert sorted(counts.values()) == [2] * 6
    assert new_rater(server)[1] == {"done": True, "rated": 0}


def test_left_right_order_is_recorded_and_served(server, study_dir):
    study = load_study(study_dir)
    for _ in range(8):
        cookie, nxt = new_rater(server)
        task = nxt["task"]
        left = request(server, "GET", task["left"], cookie=cookie)[2]
        right = request(server, "GET", task["right"], cookie=cookie)[2]
        assert answer(server, cookie, task, "left")[0] == 200
        with sqlite3.connect(server.store.path) as conn:
            ls, rs, winner = conn.execute("SELECT left_system, right_system, winner FROM ratings WHERE rater = ?",
                                          (cookie,)).fetchone()
        tracks = {t.system: t.audio.read_bytes() for t in study.item(task["item"]).tracks}
        assert (tracks[ls], tracks[rs]) == (left, right) and winner == ls
    # The order is a coin flip per rater and task: over 400 raters both orders occur about equally often.
    item = study.items[0]
    firsts = [server.store.sides(f"rater{i:04d}", item, "relevance")[0] == item.tracks[0] for i in range(400)]
    assert 140 < sum(firsts) < 260  # binomial(400, 1/2): outside this with probability < 1e-9


@pytest.mark.parametrize("path", [
    "/study.json", "/../study.json", "/media/../study.json", "/media/0/../../study.json", "/media/%2e%2e/study.json",
    "/media/0/video/../../study.json", "/media/0/relevance/../../../../etc/passwd", "//etc/passwd",
    "/media/3/video", "/media/99/video", "/media/-1/video", "/media/0/beauty/left", "/media/0/relevance/middle",
    "/static/study.js", "/study.py", "/media/0/video%00", "/media/0%2fvideo", "/%2e%2e/%2e%2e/etc/passwd",
])
def test_path_traversal_and_unknown_paths_get_404(server, path):
    cookie, _ = new_rater(server)
    assert request(server, "GET", path, cookie=cookie)[0] == 404


def test_media_needs_a_rater_for_the_soundtracks_and_serves_ranges(server, study_dir):
    video = load_study(study_dir).items[0].video.read_bytes()
    status, headers, body = request(server, "GET", "/media/0/video")
    assert status == 200 and body == video and headers["Content-Type"] == "video/mp4"
    assert request(server, "GET", "/media/0/relevance/left")[0] == 404  # no rater: no side
    status, headers, body = request(server, "GET", "/media/0/video", headers={"Range": "bytes=10-19"})
    assert status == 206 and body == video[10:20] and headers["Content-Range"] == f"bytes 10-19/{len(video)}"
    assert request(server, "GET", "/media/0/video", headers={"Range": "bytes=-5"})[2] == video[-5:]
    assert request(server, "GET", "/media/0/video", headers={"Range": f"bytes={len(video)}-"})[0] == 416
    status, headers, body = request(server, "GET", "/")
    assert status == 200 and b"<video" in body and "v2meow_rater=" in headers["Set-Cookie"]
    assert request(server, "GET", "/study.js")[0] == 200


def test_bad_posts_are_refused(server):
    cookie, nxt = new_rater(server)
    task = nxt["task"]
    ok = {"item": task["item"], "question": task["question"], "choice": "left"}
    assert request(server, "POST", "/api/answer", body=ok)[0] == 403  # no cookie
    assert request(server, "POST", "/api/answer", body=b"x" * 100_000, cookie=cookie)[0] == 413
    assert request(server, "POST", "/api/answer", body=json.dumps(ok).encode(), cookie=cookie,
                   headers={"Content-Type": "text/plain"})[0] == 415
    assert request(server, "POST", "/api/answer", body=b"{not json", cookie=cookie)[0] == 400
    assert request(server, "POST", "/api/answer", body={**ok, "choice": "none"}, cookie=cookie)[0] == 400
    assert request(server, "POST", "/api/answer", body={**ok, "item": "../x"}, cookie=cookie)[0] == 400
    assert request(server, "POST", "/api/answer", body={**ok, "question": "beauty"}, cookie=cookie)[0] == 400
    assert request(server, "POST", "/api/answer", body=ok, cookie="short")[0] == 403  # malformed id: ignored
    assert request(server, "POST", "/api/../api/answer", body=ok, cookie=cookie)[0] == 404
    assert request(server, "POST", "/api/rater", body={"name": "Ada"}, cookie=cookie)[0] == 200
    assert request(server, "POST", "/api/rater", body={"name": "x" * 101}, cookie=cookie)[0] == 400
    with sqlite3.connect(server.store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] == 0
        assert conn.execute("SELECT name FROM raters WHERE id = ?", (cookie,)).fetchone() == ("Ada",)


def _start_subprocess(study_dir, db):
    code = "import sys; from v2meow.app.study import serve_study; serve_study(sys.argv[1], sys.argv[2], port=0)"
    proc = subprocess.Popen([sys.executable, "-c", code, str(study_dir), str(db)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    assert m, f"no address in {line!r}"
    return proc, int(m.group(1))


def test_acknowledged_answer_survives_sigkill(study_dir, tmp_path):
    db = tmp_path / "crash.db"
    proc, port = _start_subprocess(study_dir, db)
    try:
        cookie, nxt = new_rater(port)
        task = nxt["task"]
        assert answer(port, cookie, task) == (200, {"ok": True, "rated": 1})
        os.kill(proc.pid, signal.SIGKILL)  # right after the acknowledgement: no clean shutdown, no checkpoint
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
    assert os.path.getsize(f"{db}-wal") > 0  # the answer is in the write-ahead log, not checkpointed yet
    assert export_results(db, load_study(study_dir))["ratings"] == 1  # a read-only reader sees it
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT rater, item_id, question, choice FROM ratings").fetchall()
    assert rows == [(cookie, task["item"], task["question"], "left")]

    proc, port = _start_subprocess(study_dir, db)  # the restarted server knows the rater and the answer
    try:
        assert answer(port, cookie, task)[0] == 409
        status, _, body = request(port, "GET", "/api/next", cookie=cookie)
        nxt2 = json.loads(body)
        assert nxt2["rated"] == 1 and (nxt2["task"]["item"], nxt2["task"]["question"]) != (task["item"],
                                                                                           task["question"])
    finally:
        proc.terminate()
        proc.wait(10)
