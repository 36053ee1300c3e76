"""The listening study (``v2meow study``): side-by-side ratings of two soundtracks for the same video.

A study is a folder holding ``study.json`` and the media it lists. Each *pair* (an item) is one video and
two soundtracks made by two systems. A rater sees the video (muted) with both soundtracks, in an order
randomised per rater and pair, and answers one of the paper's two questions:

- ``relevance``: "Which music goes best with the video?" (ignore the sound quality);
- ``preference``: "Which music do you prefer?" (ignore the video).

``study.json``::

    {
      "name": "v2meow-vs-baseline",
      "questions": ["relevance", "preference"],
      "ratings_per_pair": 3,
      "allow_no_preference": false,
      "items": [
        {"id": "pair0000", "video": "media/0000/video.mp4",
         "tracks": [{"system": "v2meow", "audio": "media/0000/track0.wav"},
                    {"system": "baseline", "audio": "media/0000/track1.wav"}]}
      ]
    }

Media paths are relative to the study folder and must stay inside it. The server addresses media by item
index only (``/media/3/video``, ``/media/3/relevance/left``) and serves only files listed in
``study.json``: no part of a request is ever used as a file name. Which system is "left" is decided by
the server from a secret salt and the rater id, so the URLs do not reveal the systems.

Ratings live in SQLite (WAL journal, ``synchronous=FULL``): each answer is committed in its own
transaction before it is acknowledged, so an acknowledged answer survives the server being killed (and,
with ``synchronous=FULL``, a power cut). ``UNIQUE(rater, item_id, question)`` makes sure that a rater
rates a (pair, question) at most once, whatever the page does.

Win rates (ties, i.e. "no preference", excluded) come with 95% Wilson score intervals, which stay inside
[0, 1] and behave at small counts. They treat ratings as independent, which several ratings of the same
pair by the same raters are not quite; read them as a rough guide at small study sizes.

Layout: :mod:`.model` (``study.json``: :func:`load_study`, :func:`make_study`), :mod:`.store` (the ratings
database), :mod:`.results` (win rates and their intervals), :mod:`.server` (the HTTP server); the names used
elsewhere are re-exported here.
"""

from v2meow.app.study.model import load_study, make_study
from v2meow.app.study.results import export_results, export_study, wilson_interval
from v2meow.app.study.server import make_server, serve_study
from v2meow.app.study.store import RatingStore

__all__ = [
    "load_study",
    "make_study",
    "RatingStore",
    "wilson_interval",
    "export_results",
    "export_study",
    "make_server",
    "serve_study",
]
