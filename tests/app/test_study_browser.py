"""The listening study page in a real headless Chromium (Debian's), driven by Playwright.

Needs ``apt-get install -y chromium`` and ``pip install playwright`` (never ``playwright install``: the
browser is the system one). Skips when either is missing, except under ``V2MEOW_REQUIRE_BROWSER=1`` (CI), where it
fails (tests/browser.py).
"""

from __future__ import annotations

import sqlite3
import threading

import pytest
from browser import require_browser
from media import make_audio, make_video

from v2meow.app.study import make_server, make_study

require_browser()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    pairs = []
    for i in range(2):
        video = make_video(root / f"v{i}.mp4", seconds=1.0, fps=10, size=(48, 32), pattern="flash", seed=i)
        a = make_audio(root / f"a{i}.wav", seconds=1.0, freq=330.0 + 50 * i)
        b = make_audio(root / f"b{i}.wav", seconds=1.0, freq=550.0 + 50 * i)
        pairs.append({"video": video, "tracks": {"v2meow": a, "baseline": b}})
    study = make_study(pairs, root / "study", name="browser", questions=["relevance"], ratings_per_pair=1)
    srv = make_server(study, root / "ratings.db", port=0, quiet=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)




def test_rate_two_pairs_in_the_browser(server, browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)

    page.wait_for_selector("#task:not([hidden])")
    assert page.inner_text("#question") == "Which music goes best with the video?"
    assert "sound quality" in page.inner_text("#hint")
    assert page.eval_on_selector("#video", "v => v.muted") is True
    assert page.locator("audio").count() == 2
    assert page.locator("button.play").count() == 2
    assert page.is_hidden("button[data-choice='none']")  # no "no preference" in this study
    first = page.eval_on_selector("#task", "s => s.dataset.item")
    assert page.get_attribute("#video", "src") == f"/media/{int(first[-4:])}/video"
    # Both soundtracks load from the server (range requests), so the players really have their media.
    page.wait_for_function("['audio-left', 'audio-right'].every(id => document.getElementById(id).readyState >= 1)")
    durations = page.evaluate("[...document.querySelectorAll('audio')].map(a => a.duration)")
    assert durations == [pytest.approx(1.0, abs=0.05)] * 2

    # "Play" starts the video and that soundtrack together (Debian's Chromium decodes H.264); pressing it
    # again stops both.
    page.click("button.play[data-side='left']")
    page.wait_for_function("(() => { const v = document.getElementById('video'), a = document.getElementById("
                           "'audio-left'); return !v.paused && !a.paused && v.currentTime > 0.2; })()")
    assert page.evaluate("document.getElementById('audio-right').paused") is True
    page.click("button.play[data-side='left']")
    assert page.evaluate("[...document.querySelectorAll('video, audio')].every(m => m.paused)") is True

    page.fill("#name", "Ada")
    page.click("#name-form button")
    page.wait_for_selector("#name-status:has-text('Saved.')")

    page.click("button[data-choice='right']")
    page.wait_for_function("s => document.getElementById('task').dataset.item !== s", arg=first)
    second = page.eval_on_selector("#task", "s => s.dataset.item")
    assert second != first and page.is_visible("#task")
    assert page.inner_text("#progress") == "You have rated 1 pair(s)."

    rater = next(c["value"] for c in context.cookies() if c["name"] == "v2meow_rater")
    with sqlite3.connect(server.store.path) as conn:
        rows = conn.execute("SELECT r.item_id, r.question, r.choice, r.winner, r.right_system, x.name "
                            "FROM ratings r JOIN raters x ON x.id = r.rater WHERE r.rater = ?", (rater,)).fetchall()
    assert len(rows) == 1
    item_id, question, choice, winner, right_system, name = rows[0]
    assert (item_id, question, choice, name) == (first, "relevance", "right", "Ada")
    assert winner == right_system

    page.click("button[data-choice='left']")  # the last pair; then there is nothing left for this rater
    page.wait_for_selector("#done:not([hidden])")
    assert page.is_hidden("#task")
    with sqlite3.connect(server.store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM ratings WHERE rater = ?", (rater,)).fetchone()[0] == 2
    assert errors == []
    context.close()
