"""Backbone tests: one thread, and an offline guard (any socket connection fails), so a test that tried to
download would fail loudly instead of passing on a warm cache. Tiny configurations live in ``tiny.py``."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture(autouse=True)
def _one_thread_offline(monkeypatch):
    """Two shared cores: one thread per test. And no network: any connection attempt raises."""
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def refuse(*_a, **_k):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="session")
def tokenizer_file(tmp_path_factory) -> str:
    from backbones.tiny import write_tiny_tokenizer

    return write_tiny_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.json")
