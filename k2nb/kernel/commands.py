"""``%k2 <command> ...``: each subcommand parses into a typed object and one handler does its work.

The magic only dispatches: :func:`dispatch` finds the command, its parser turns the words into
that command's dataclass, and ``handle_<command>(ctx, args)`` acts. Bad input raises
:class:`CommandError` with the usage line.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..agent.context import estimate_tokens, turn_messages
from ..backends import choice
from ..core.conversation import Conversation
from ..options import FlagError, flags_help
from ..runs.export import export
from ..session import Session
from ..tools.interpreter.history import current_cell, user_cells
from ..tools.mcp import McpError, tool_name


class CommandError(ValueError):
    """A subcommand that cannot run as typed; the message says what to type instead."""


@dataclass
class Context:
    """What a handler works with: the shell, its session, and the magics (for %config values)."""

    shell: Any
    session: Session
    magics: Any


# --- typed arguments --------------------------------------------------------------------------


@dataclass
class ShowArgs:
    """``%k2 [--model M] [--base-url URL]``: the configuration and where each value comes from."""

    model: str | None = None
    base_url: str | None = None


@dataclass
class ModelsArgs:
    model: str | None = None
    base_url: str | None = None


@dataclass
class LoginArgs:
    pass


@dataclass
class HelpArgs:
    pass


@dataclass
class ReplayArgs:
    run: str | None = None
    step: bool = False
    source: str | None = None


@dataclass
class ExportArgs:
    run: str
    path: str
    format: str | None = None


@dataclass
class BackendArgs:
    choice: str | None = None
    model: str | None = None


@dataclass
class HistoryArgs:
    pass


@dataclass
class NewArgs:
    pass


@dataclass
class McpArgs:
    verb: str = "help"  # add | list | remove | help
    name: str | None = None
    url: str | None = None
    env: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise CommandError(f"{message}\nUsage: {self.format_usage().strip()}")


def _parser(prog: str) -> argparse.ArgumentParser:
    return _Parser(prog=f"%k2 {prog}".strip(), add_help=False, allow_abbrev=False)


def _server_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--model", "-m")
    parser.add_argument("--base-url", dest="base_url")
    return parser


def _show_parser() -> argparse.ArgumentParser:
    return _server_options(_parser(""))


def _models_parser() -> argparse.ArgumentParser:
    return _server_options(_parser("models"))


def _replay_parser() -> argparse.ArgumentParser:
    parser = _parser("replay")
    parser.add_argument("run", nargs="?", help="a run id, a transcript file, or `last`")
    parser.add_argument("--step", action="store_true", help="one step per execution")
    parser.add_argument("--from", dest="source", metavar="NOTEBOOK",
                        help="read run records from this notebook")
    return parser


def _export_parser() -> argparse.ArgumentParser:
    parser = _parser("export")
    parser.add_argument("run", help="a run id, a transcript file, or `last`")
    parser.add_argument("path", help="PATH.ipynb or PATH.md")
    parser.add_argument("--format", choices=("ipynb", "markdown"))
    return parser


def _backend_parser() -> argparse.ArgumentParser:
    parser = _parser("backend")
    parser.add_argument("choice", nargs="?", choices=("api", "local"))
    parser.add_argument("--model", "-m", metavar="PATH")
    return parser


def _no_arguments(name: str) -> Callable[[], argparse.ArgumentParser]:
    return lambda: _parser(name)


def parse_mcp(words: list[str]) -> McpArgs:
    """``mcp add NAME [--env K[=V]]... (--url URL | [--] command args...)``, ``mcp list``,
    ``mcp remove NAME`` (argparse cannot tell the server's own flags from ours)."""
    if not words or words[0] in ("help", "-h", "--help"):
        return McpArgs("help")
    verb, rest = {"ls": "list", "rm": "remove"}.get(words[0], words[0]), words[1:]
    if verb == "list":
        return McpArgs("list")
    if verb == "remove":
        if len(rest) != 1:
            raise CommandError("Usage: %k2 mcp remove NAME")
        return McpArgs("remove", rest[0])
    if verb != "add":
        raise CommandError(f"Unknown %k2 mcp command {verb!r}.\n{MCP_USAGE}")
    if not rest or rest[0].startswith("-"):
        raise CommandError(f"Name the server first.\n{MCP_USAGE}")
    args = McpArgs("add", rest[0])
    rest = rest[1:]
    while rest and rest[0] in ("--url", "--env") and len(rest) > 1:
        option, value, rest = rest[0], rest[1], rest[2:]
        if option == "--url":
            args.url = value
        else:
            args.env.append(value)
    args.command = rest[1:] if rest[:1] == ["--"] else rest
    if args.url and args.command:
        raise CommandError("Give either --url URL or `-- command args...`, not both.")
    if not args.url and not args.command:
        raise CommandError(f"Say how to reach the server.\n{MCP_USAGE}")
    return args


# --- handlers ---------------------------------------------------------------------------------


def handle_show(ctx: Context, args: ShowArgs) -> None:
    settings = ctx.magics.settings({"model": args.model, "base_url": args.base_url})
    print(settings.describe() + f"\nmode: {choice.mode(settings)}")


def handle_help(ctx: Context, args: HelpArgs) -> None:
    print(help_text())


def handle_models(ctx: Context, args: ModelsArgs) -> None:
    settings = ctx.magics.settings({"model": args.model, "base_url": args.base_url})
    try:
        models = choice.api_backend(settings).models()
    except Exception as exc:
        raise CommandError(str(exc)) from None
    print(f"Models at {settings.base_url}:")
    for model in models:
        mark = "  (current)" if model == settings.model else ""
        print(f"  {model}{mark}")


def handle_login(ctx: Context, args: LoginArgs) -> None:
    key = getpass.getpass("API key (kept in this kernel's memory only): ").strip()
    ctx.session.typed_key = key or None
    print("Key set for this kernel session." if key else "Session key cleared.")


def handle_replay(ctx: Context, args: ReplayArgs) -> None:
    from .stepper import replay_command

    try:
        replay_command(ctx.shell, ctx.session, args.run, step=args.step, source=args.source,
                       settings=ctx.magics.settings({}))
    except OSError as exc:
        raise CommandError(str(exc)) from None


def handle_export(ctx: Context, args: ExportArgs) -> None:
    from .stepper import resolve_run

    found = resolve_run(ctx.shell, ctx.session, args.run, ctx.magics.settings({}))
    try:
        path = export(found.record, args.path, format=args.format)
    except OSError as exc:
        raise CommandError(str(exc)) from None
    print(f"Exported run to {path}.")


def handle_backend(ctx: Context, args: BackendArgs) -> None:
    """``%k2 backend [api|local] [--model PATH]``: choose, and load a local model now."""
    magics = ctx.magics
    if args.choice is None:
        settings = magics.settings({})
        print(f"backend: {settings.backend}"
              + (f" ({settings.local_model})" if settings.backend == "local" else ""))
        return
    magics.backend = args.choice
    if args.choice == "api":
        print("Runs use the API backend again.")
        return
    if args.model:
        magics.local_model = args.model
    model = magics.settings({}).local_model
    try:
        backend = ctx.session.local_backends.get(model)
    except Exception as exc:  # a missing model or extra: one clean line, the API stays
        magics.backend = "api"
        raise CommandError(str(exc)) from None
    print(f"Runs use {model} in this kernel. {backend.load_report.summary()}".strip())


def handle_history(ctx: Context, args: HistoryArgs) -> None:
    """``%k2 history``: the turns the next ``%%k2`` cell will carry, with their size."""
    print(history_text(ctx.shell, ctx.session.conversation, ctx.magics.settings({})))


def history_text(shell: Any, conversation: Conversation, settings: Any) -> str:
    turns = conversation.history(settings.history_turns)
    if settings.history_turns == 0:
        head = "history_turns is 0: each %%k2 cell runs alone (no earlier turns are carried)."
    elif not conversation.turns:
        head = "No turns yet: the next %%k2 cell starts the conversation."
    else:
        head = (f"The next %%k2 cell carries {len(turns)} of {len(conversation.turns)} turn(s) "
                f"(history_turns = {settings.history_turns}), oldest first; shortened to prompt "
                "and answer if the window fills up:")
    lines = [head]
    for number, turn in enumerate(turns, len(conversation.turns) - len(turns) + 1):
        where = f"In [{turn.execution_count}] " if turn.execution_count else ""
        tokens = estimate_tokens(turn_messages(turn))
        prompt = " ".join(turn.prompt.split())[:70]
        lines.append(f"{number:>3}. {where}{prompt!r} · {len(turn.calls)} call(s) · "
                     f"≈ {tokens:,} tokens · {turn.stop_reason}")
        if turn.user_cells:
            lines.append("      after your cells " + ", ".join(
                f"In [{c.count}]" for c in turn.user_cells))
    count, _ = current_cell(shell)
    cells, _ = ([], 0) if conversation.last_count is None else user_cells(
        shell, conversation.last_count, count, conversation.agent_counts())
    if settings.history_turns and cells:
        lines.append("Your cells run since the last turn, carried too: "
                     + ", ".join(f"In [{c.count}]" for c in cells))
    return "\n".join(lines)


def handle_new(ctx: Context, args: NewArgs) -> None:
    """``%k2 new``: the next ``%%k2`` cell starts a new conversation."""
    ctx.session.conversation.clear()
    print("New conversation: the next %%k2 cell carries no earlier turns or cells.")


def handle_mcp(ctx: Context, args: McpArgs) -> None:
    servers = ctx.session.mcp
    try:
        if args.verb == "help":
            print(MCP_USAGE)
        elif args.verb == "list":
            print(servers.listing())
        elif args.verb == "remove":
            if not servers.remove(args.name or ""):
                raise CommandError(f"No MCP server named `{args.name}` is registered (see "
                                   "`%k2 mcp list`).")
            print(f"MCP server `{args.name}` stopped and removed.")
        else:
            server = servers.add(args.name or "", command=args.command or None, url=args.url,
                                 env=_environment(args.env) or None)
            names = ", ".join(tool_name(server.spec.name, t.name) for t in server.tools)
            print(f"MCP server `{server.spec.name}` connected ({server.spec.describe()}): "
                  f"{len(server.tools)} tool(s) for this kernel's %%k2 runs: "
                  f"{names or 'no tools'}")
    except McpError as exc:
        raise CommandError(str(exc)) from None


def _environment(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE``, or ``KEY`` alone for the kernel's own value (a secret is never typed)."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            if key not in os.environ:
                raise CommandError(f"--env {key}: the kernel has no environment variable {key}.")
            value = os.environ[key]
        env[key] = value
    return env


# --- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    args: type
    handler: Callable[[Context, Any], None]
    parser: Callable[[], argparse.ArgumentParser] | None = None  # None: parse_mcp
    aliases: tuple[str, ...] = ()


MCP_USAGE = """\
%k2 mcp add NAME -- command args...     start an MCP server over stdio
%k2 mcp add NAME --env KEY[=VALUE] -- ...  the same with an environment variable (KEY alone:
                                        the kernel's value, so secrets stay out of the notebook)
%k2 mcp add NAME --url URL              connect to an MCP server over streamable HTTP
%k2 mcp list                            registered servers and their tools
%k2 mcp remove NAME                     stop and forget a server"""

COMMANDS = (
    Command("", "%k2", ShowArgs, handle_show, _show_parser),
    Command("help", "%k2 help", HelpArgs, handle_help, _no_arguments("help")),
    Command("models", "%k2 models", ModelsArgs, handle_models, _models_parser),
    Command("login", "%k2 login", LoginArgs, handle_login, _no_arguments("login"),
            aliases=("key",)),
    Command("replay", "%k2 replay RUN [--step] | %k2 replay --from NOTEBOOK.ipynb", ReplayArgs,
            handle_replay, _replay_parser),
    Command("export", "%k2 export RUN PATH.ipynb [--format markdown]", ExportArgs,
            handle_export, _export_parser),
    Command("backend", "%k2 backend [api | local [--model PATH]]", BackendArgs, handle_backend,
            _backend_parser),
    Command("mcp", "%k2 mcp add|list|remove ...", McpArgs, handle_mcp, None),
    Command("history", "%k2 history", HistoryArgs, handle_history, _no_arguments("history")),
    Command("new", "%k2 new", NewArgs, handle_new, _no_arguments("new")),
)
BY_NAME = {alias: c for c in COMMANDS for alias in (c.name, *c.aliases)}

HELP = """\
%%k2 [options]      run the agent on the cell's text
%k2                 show the configuration and where each value comes from
%k2 models          list the models the server offers
%k2 login           type an API key for this kernel session (never saved; also %k2 key)
%k2 mcp add NAME -- command args...   register an MCP server (stdio) for this kernel's runs
%k2 mcp add NAME --url URL            register an MCP server (streamable HTTP)
%k2 mcp list | remove NAME            show or drop registered MCP servers
%k2 replay RUN [--step]              replay a recorded run here (--step: one step per execution)
%k2 replay --from NOTEBOOK.ipynb     use the run records saved in that notebook
%k2 export RUN PATH.ipynb [--format markdown]   write a run as a notebook (or Markdown)
%k2 backend local --model PATH   run a local 4-bit model in this kernel (%k2 backend api: back)
%k2 history         the earlier turns the next %%k2 cell carries (the notebook's conversation)
%k2 new             start a new conversation (also %%k2 --new)
%k2 help            this help"""


def help_text() -> str:
    """``%k2 help``: the commands, then every ``%%k2`` option with its default."""
    return f"{HELP}\n\n%%k2 options (also %config K2Magics.<name>; see %k2):\n{flags_help()}"


def dispatch(ctx: Context, line: str) -> None:
    """Run the ``%k2`` line ``line``."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise CommandError(f"{exc}. Try `%k2 help`.") from None
    name = words[0] if words and not words[0].startswith("-") else ""
    command = BY_NAME.get(name)
    if command is None:
        raise CommandError(f"Unknown %k2 command {' '.join(map(shlex.quote, words))!r}. "
                           f"Commands:\n{HELP}")
    rest = words[1:] if name else words
    if command.parser is None:
        args = parse_mcp(rest)
    else:
        try:
            namespace = command.parser().parse_args(rest)
        except FlagError as exc:
            raise CommandError(str(exc)) from None
        args = command.args(**vars(namespace))
    command.handler(ctx, args)
