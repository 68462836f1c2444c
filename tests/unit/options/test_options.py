"""One table of options: Settings, %config traits, %%k2 flags, %k2 help, the "where each value
comes from" display and the README table are all made from k2nb.options.OPTIONS."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets import Bool, Dict, Float, Int, Unicode

from k2nb.kernel.commands import help_text
from k2nb.kernel.magics import K2Magics
from k2nb.options import (
    OPTIONS,
    FlagError,
    Settings,
    flag_parser,
    markdown_table,
    parse_flags,
    readme_section,
    resolve,
)

ROOT = Path(__file__).resolve().parents[3]
TRAIT_TYPES = {int: Int, float: Float, str: Unicode, bool: Bool, dict: Dict}


def test_readme_table_is_generated_from_the_options():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme_section(readme)
    assert section is not None, "README.md lost its generated configuration table markers"
    assert section == markdown_table(), (
        "README.md's configuration table is out of date: run `python -m k2nb readme README.md`")
    for option in OPTIONS:  # every option is documented, with its sources
        row = next(line for line in section.splitlines() if option.help in line)
        for env in option.env:
            assert f"`{env}`" in row
        if option.config:
            assert f"`{option.name}`" in row


def test_settings_has_one_field_per_option_with_the_tables_default():
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    assert set(fields) == {o.name for o in OPTIONS} | {"sources"}
    settings = Settings()
    for option in OPTIONS:
        assert getattr(settings, option.name) == option.default, option.name


def test_magic_traits_follow_the_table():
    traits = K2Magics.class_traits(config=True)
    configurable = {o.name for o in OPTIONS if o.config}
    assert set(traits) == configurable
    for option in OPTIONS:
        if not option.config:
            continue
        trait = traits[option.name]
        assert isinstance(trait, TRAIT_TYPES[option.kind]), option.name
        assert option.help[1:] in trait.help  # the table's text is the trait's help
        if option.env:  # unset, the environment decides
            assert trait.default() is None
        else:
            assert trait.default() == option.default


def test_flags_follow_the_table_and_are_validated():
    parser = flag_parser()
    flags = {o.flag for o in OPTIONS if o.flag}
    declared = {a.option_strings[0] for a in parser._actions}
    assert declared == flags
    given, rest = parse_flags("--max-steps 7 -q --replay --model kimi-k2-thinking-turbo")
    assert given == {"max_steps": 7, "quiet": True, "replay": "on",
                     "model": "kimi-k2-thinking-turbo"} and rest == []
    assert parse_flags("--replay 20250101-x")[0]["replay"] == "20250101-x"
    with pytest.raises(ValueError, match=r"max_steps must be between 1 and 300, got 0"):
        parse_flags("--max-steps 0")
    with pytest.raises(FlagError, match="invalid choice"):
        parse_flags("--approve sometimes")
    with pytest.raises(FlagError, match="unrecognized arguments: --frobnicate"):
        parse_flags("--frobnicate")


def test_help_lists_every_flag_with_its_default():
    text = help_text()
    for option in OPTIONS:
        if option.flag:
            line = next(line for line in text.splitlines() if line.strip().startswith(option.flag))
            assert option.help in line
            if option.default not in (None, "", False):
                assert f"(default {option.default})" in line


def test_sources_are_resolved_highest_first(monkeypatch, tmp_path):
    for option in OPTIONS:
        for env in option.env:
            monkeypatch.delenv(env, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("K2NB_MODEL=from-dotenv\nK2NB_RUNS_DIR=runs-from-dotenv\n")
    monkeypatch.setenv("K2NB_RUNS_DIR", "runs-from-env")
    settings = resolve({"max_steps": "12"}, {"max_tokens": 999, "model": "from-config"})
    assert (settings.max_steps, settings.source("max_steps")) == (12, "option")
    assert (settings.max_tokens, settings.source("max_tokens")) == (999, "%config K2Magics")
    assert (settings.model, settings.source("model")) == ("from-config", "%config K2Magics")
    assert (settings.transcript_dir, settings.source("transcript_dir")) == (
        "runs-from-env", "K2NB_RUNS_DIR")
    assert resolve().model == "from-dotenv" and resolve().source("model") == ".env"
    assert settings.source("temperature") == "default"
    monkeypatch.setenv("K2NB_BACKEND", "gpu")
    with pytest.raises(ValueError, match="backend must be api or local, got 'gpu'"):
        resolve()


def test_moonshot_style_variables_are_read_after_k2nb_s_own(monkeypatch, tmp_path):
    """Moonshot's own names work (``MOONSHOT_API_KEY``, ``MOONSHOT_BASE_URL``); k2nb's win."""
    for option in OPTIONS:
        for env in option.env:
            monkeypatch.delenv(env, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOONSHOT_BASE_URL", "http://127.0.0.1:9/v1")
    settings = resolve()
    assert (settings.base_url, settings.source("base_url")) == (
        "http://127.0.0.1:9/v1", "MOONSHOT_BASE_URL")
    monkeypatch.setenv("K2NB_BASE_URL", "http://127.0.0.1:8/v1")
    assert resolve().base_url == "http://127.0.0.1:8/v1"


def test_describe_shows_every_option_and_hides_secrets(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOONSHOT_API_KEY", "sk-test-0123456789abcdef")
    text = resolve({}, {"mcp_servers": {"tok": {"command": "x", "env": {"T": "secret-t"}}}}
                   ).describe()
    names = [line.split()[0] for line in text.splitlines()[1:]]
    assert names == [o.name for o in OPTIONS if o.shown]
    assert "api_key" in text and "set" in text and "sk-test" not in text
    assert "secret-t" not in text and "tok" in text


def test_python_dash_m_k2nb_prints_and_checks_the_table(tmp_path):
    out = subprocess.run([sys.executable, "-m", "k2nb", "options"], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == markdown_table()
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- options: generated by `python -m k2nb readme README.md` -->\n"
                      "old\n<!-- /options -->\n")
    done = subprocess.run([sys.executable, "-m", "k2nb", "readme", str(readme)],
                          capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "updated" in done and readme_section(readme.read_text()) == markdown_table()
