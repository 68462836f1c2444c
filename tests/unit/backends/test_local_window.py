"""A local model's window comes from its own config, and the run keeps to it."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the local extra (torch, transformers) is not installed")

import k2nb
from k2nb.core import events as ev


def test_local_window_comes_from_the_model_config(tiny_moe: Path, shell) -> None:
    from transformers import AutoConfig

    from k2nb.backends.local import LocalBackend

    backend = LocalBackend(str(tiny_moe), temperature=0, progress=False)
    window = AutoConfig.from_pretrained(tiny_moe).max_position_embeddings
    assert backend.context_window == window
    started: list[ev.RunStarted] = []
    k2nb.run("Say hello.", backend=backend, shell=shell, max_steps=1, max_tokens=8, views=False,
             subscribers=[lambda e: isinstance(e, ev.RunStarted) and started.append(e)])
    assert started[0].context_window == window  # not the 262,144 of the API's setting


def test_a_local_backend_given_to_run_gets_its_step_budget(tiny_moe: Path, shell) -> None:
    """The option's default (32,000 tokens a step) is the API's; a local model passed to
    k2nb.run gets its device's budget unless the user set one."""
    from k2nb.backends.local import LocalBackend
    from k2nb.runs.transcript import read_transcript

    backend = LocalBackend(str(tiny_moe), temperature=0, progress=False)
    run = k2nb.run("Say hello.", backend=backend, shell=shell, max_steps=1, views=False)
    settings = next(r for r in read_transcript(run.transcript_path) if r["type"] == "settings")
    assert settings["max_tokens"] == backend.step_tokens < 32_000
    run = k2nb.run("Say hello.", backend=backend, shell=shell, max_steps=1, max_tokens=8,
                   views=False)
    settings = next(r for r in read_transcript(run.transcript_path) if r["type"] == "settings")
    assert settings["max_tokens"] == 8  # the user's value wins
