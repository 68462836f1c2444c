"""Tiny mixture-of-experts models built offline (random weights, a tokenizer trained here), each
built once per test session and shared by the local-backend tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_moe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~1M-parameter DeepSeek-V3-layout MoE with the K2 chat template (saved in bf16)."""
    pytest.importorskip("torch", reason="the local extra (torch, transformers) is not installed")
    from k2nb.testing.tiny_moe import build_tiny_moe

    return build_tiny_moe(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def bench_moe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~40M parameters, 94% of them routed experts, like real MoEs (bf16 checkpoint ≈ 80 MB)."""
    pytest.importorskip("torch", reason="the local extra (torch, transformers) is not installed")
    from k2nb.testing.tiny_moe import build_tiny_moe

    return build_tiny_moe(tmp_path_factory.mktemp("moe") / "model", preset="bench")
