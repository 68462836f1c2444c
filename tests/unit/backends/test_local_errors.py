"""Errors a user of the local backend meets are one actionable line, not a traceback."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from k2nb.core.backend import BackendError
from k2nb.backends.local import LocalBackend


def test_missing_local_extra_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "bitsandbytes" else real(name, *a),
    )
    with pytest.raises(BackendError) as caught:
        LocalBackend("/models/anything")
    message = str(caught.value)
    assert "\n" not in message
    assert "bitsandbytes" in message and "pip install 'k2nb[local]'" in message


def test_missing_model_folder_says_what_to_pass(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the local extra is not installed")
    missing = tmp_path / "no-such-model"
    with pytest.raises(BackendError, match="No model folder at .*no-such-model"):
        LocalBackend(str(missing))


def test_folder_without_config_is_rejected(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the local extra is not installed")
    with pytest.raises(BackendError, match="no config.json"):
        LocalBackend(str(tmp_path))


def test_unknown_quantization_is_rejected(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the local extra is not installed")
    with pytest.raises(BackendError, match="nf4"):
        LocalBackend(str(tmp_path), quantization="int3")
