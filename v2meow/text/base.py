"""What every text tower is (:class:`TextTower`), what a tower with an audio side adds (:class:`AudioTextTower`),
and the prompt clean-up they all apply (:func:`clean_prompt`).

The towers themselves live in :mod:`v2meow.text.towers` (``hash``), :mod:`v2meow.text.clap` (``clap``) and
:mod:`v2meow.text.joint` (``minilm``); this module imports none of them, so each can import it.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from v2meow.errors import UserError

MAX_PROMPT_CHARS = 2000


def clean_prompt(text: str) -> str:
    """Normalise a user's prompt; refuse empty or overlong ones with one clear sentence."""
    if not isinstance(text, str):
        raise UserError("The prompt must be text.")
    text = unicodedata.normalize("NFKC", text).strip()
    if not text:
        raise UserError("The prompt is empty; give a few words such as \"warm acoustic guitar\".")
    if len(text) > MAX_PROMPT_CHARS:
        raise UserError(f"The prompt is {len(text)} characters long; the limit is {MAX_PROMPT_CHARS}.")
    return text


@runtime_checkable
class TextTower(Protocol):
    """Prompts -> L2-normalised embeddings ``[B, dim]`` in the joint space stage 1 reads, with an identity stamp."""

    def identity(self) -> dict[str, Any]: ...

    def embed_text(self, texts: list[str]) -> Tensor: ...


@runtime_checkable
class AudioTextTower(TextTower, Protocol):
    """A text tower whose music lands in the same space (CLAP, the embedded joint model): the clip's audio
    embedding is the training stand-in for the prompt."""

    def embed_audio(self, wav: Tensor, sample_rate: int) -> Tensor: ...

    def embed_audio_segments(self, wav: Tensor, sample_rate: int) -> Tensor: ...
