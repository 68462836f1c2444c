"""%%k2 and %k2 as a user types them: options, configuration sources, errors."""

from __future__ import annotations

import pytest

from k2nb.kernel.magics import K2Error
from k2nb.testing import Call, Reply


def test_cell_magic_sets_k2_and_out(shell, k2env, capsys):
    k2env.add(Reply(reasoning="r", tool_calls=[Call("code_interpreter", {"code": "z = 3"})]),
              Reply(reasoning="r", content="z is **3**"))
    result = shell.run_cell("%%k2 --out myrun --max-steps 4 --temperature 0.6 --timeout 9\n"
                            "Set z to 3.")
    assert result.success
    assert shell.user_ns["z"] == 3
    assert shell.user_ns["myrun"] is shell.user_ns["_k2"]
    assert shell.user_ns["_k2"].answer == "z is **3**"
    assert k2env.requests[0]["temperature"] == 0.6


def test_config_traitlets_outrank_env_and_options_outrank_config(shell, k2env, monkeypatch):
    monkeypatch.setenv("K2NB_MODEL", "kimi-k2-thinking-turbo")
    shell.run_line_magic("config", "K2Magics.max_steps = 80")
    shell.run_line_magic("config", "K2Magics.max_tokens = 1234")
    k2env.add(Reply(reasoning="r", content="a"), Reply(reasoning="r", content="b"))
    shell.run_cell("%%k2\nfirst")
    assert k2env.requests[0]["max_tokens"] == 1234
    assert k2env.requests[0]["model"] == "kimi-k2-thinking-turbo"
    shell.run_cell("%%k2 --max-tokens 999 --model kimi-k2-thinking\nsecond")
    assert k2env.requests[1]["max_tokens"] == 999
    assert k2env.requests[1]["model"] == "kimi-k2-thinking"
    shell.run_line_magic("config", "K2Magics.max_tokens = 32000")
    shell.run_line_magic("config", "K2Magics.max_steps = 50")


def test_line_magic_prints_configuration_with_sources(shell, k2env, capsys):
    shell.run_line_magic("config", "K2Magics.max_steps = 80")
    try:
        shell.run_line_magic("k2", "")
    finally:
        shell.run_line_magic("config", "K2Magics.max_steps = 50")
    out = capsys.readouterr().out
    assert "k2nb configuration" in out
    assert f"base_url           {k2env.base_url}" in out and "(K2NB_BASE_URL)" in out
    assert "max_steps" in out and "(%config K2Magics)" in out
    assert "api_key            set" in out and "(MOONSHOT_API_KEY)" in out
    assert "sk-test" not in out  # the key itself is never printed
    assert out.rstrip().splitlines()[-1] == f"mode: kimi-k2-thinking at {k2env.base_url}"


def test_models_subcommand(shell, k2env, capsys):
    shell.run_line_magic("k2", "models")
    out = capsys.readouterr().out
    assert "kimi-k2-thinking  (current)" in out and "kimi-k2-thinking-turbo" in out


def test_errors_are_one_clean_line(shell, k2env, monkeypatch):
    monkeypatch.setenv("MOONSHOT_API_KEY", "bad-key-123456")
    with pytest.raises(K2Error, match="Invalid API key"):
        shell.run_cell_magic("k2", "", "hello")
    assert shell.user_ns["_k2"].stop_reason == "error"
    rendered = K2Error("x")._render_traceback_()
    assert rendered == ["\x1b[31mk2nb: x\x1b[0m"]


def test_empty_cell_and_unknown_command(shell, k2env):
    with pytest.raises(K2Error, match="empty"):
        shell.run_cell_magic("k2", "", "   \n")
    with pytest.raises(K2Error, match="Unknown %k2 command"):
        shell.run_line_magic("k2", "frobnicate")


def test_dotenv_file(shell, k2env, monkeypatch, tmp_path):
    monkeypatch.delenv("MOONSHOT_API_KEY")
    (tmp_path / ".env").write_text(f"MOONSHOT_API_KEY=sk-test-0123456789abcdef\n")
    k2env.add(Reply(reasoning="r", content="from dotenv"))
    shell.run_cell("%%k2\nhi")
    assert shell.user_ns["_k2"].answer == "from dotenv"
