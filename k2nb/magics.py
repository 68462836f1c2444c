"""``%%k2`` and ``%k2``: a thin layer that parses options and calls :func:`k2nb.runner.run`."""

from __future__ import annotations

import getpass
import shlex
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import Markdown, display
from traitlets import Float, Int, Unicode

from . import config, runner
from .agent.run import Run

HELP = """\
%%k2 [options]      run the agent on the cell's text
%k2                 show the configuration and where each value comes from
%k2 models          list the models the server offers
%k2 login           type an API key for this kernel session (never saved; also %k2 key)
%k2 help            this help"""


class K2Error(Exception):
    """A run that failed for a reason the user must fix; shown as one clean message."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mk2nb: {self}\x1b[0m"]


class K2Stopped(KeyboardInterrupt):
    """The user interrupted a run; the partial run is in ``_k2``."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[33mk2nb: {self}\x1b[0m"]


@magics_class
class K2Magics(Magics):
    """Configuration of ``%%k2``: ``%config K2Magics.max_steps = 80`` or ipython_config.py."""

    model = Unicode(None, allow_none=True, help="Model id (default: K2NB_MODEL, then "
                    "kimi-k2-thinking).").tag(config=True)
    base_url = Unicode(None, allow_none=True, help="OpenAI-compatible base URL (default: "
                       "K2NB_BASE_URL, then Moonshot's).").tag(config=True)
    max_steps = Int(50, help="Model calls per run before it stops (1-300).").tag(config=True)
    max_tokens = Int(32_000, help="Tokens per step, thinking included.").tag(config=True)
    timeout = Float(120.0, help="Seconds per tool call before it is interrupted; 0 = no "
                    "limit.").tag(config=True)
    temperature = Float(1.0, help="Sampling temperature (K2 Thinking: 1.0).").tag(config=True)
    reasoning_field = Unicode("auto", help="Field the reasoning is sent back in: auto, "
                              "reasoning_content, reasoning or both.").tag(config=True)
    observation_chars = Int(8_000, help="Characters of each tool output the model reads "
                            "(head and tail).").tag(config=True)
    max_retries = Int(4, help="Retries of rate-limited or failed requests.").tag(config=True)
    context_window = Int(262_144, help="The model's context window in tokens; older tool "
                         "outputs are hidden past 80% of it.").tag(config=True)
    transcript_dir = Unicode(".k2nb/runs", help="Where run transcripts (JSON lines) are "
                             "written.").tag(config=True)
    instructions = Unicode("", help="Extra instructions added to the system "
                           "prompt.").tag(config=True)
    approve = Unicode("auto", help="Ask before the agent's code runs: auto (never), ask "
                      "(always) or risky (only code that a static check flags: file deletion or "
                      "writes outside the working directory, shell commands, package installs, "
                      "network, secrets, %reset).").tag(config=True)

    def configured(self) -> dict[str, Any]:
        """Trait values the user changed from their defaults (they outrank the environment)."""
        out = {}
        for name, trait in self.traits(config=True).items():
            value = getattr(self, name)
            if value != trait.default_value:
                out[name] = value
        return out

    @magic_arguments()
    @argument("--model", "-m", help="model id")
    @argument("--base-url", help="OpenAI-compatible base URL")
    @argument("--max-steps", type=int, help="model calls before stopping")
    @argument("--max-tokens", type=int, help="tokens per step, thinking included")
    @argument("--timeout", type=float, help="seconds per tool call (0 = no limit)")
    @argument("--temperature", type=float, help="sampling temperature")
    @argument("--reasoning-field", help="auto | reasoning_content | reasoning | both")
    @argument("--approve", choices=("auto", "ask", "risky"),
              help="ask before code runs: auto, ask or risky")
    @argument("--out", "-o", help="also store the run in this variable")
    @argument("--quiet", "-q", action="store_true", help="show only the answer")
    @argument("words", nargs="*", help="a subcommand of %%k2: models, key, help")
    @line_cell_magic
    def k2(self, line: str = "", cell: str | None = None) -> Any:
        """Run the k2nb agent on the cell (``%%k2``), or configure it (``%k2``)."""
        try:
            args = parse_argstring(self.k2, line)
        except Exception as exc:
            raise K2Error(f"{exc}. Try `%k2 help`.") from None
        if cell is None:
            return self._line(args)
        prompt = cell.strip()
        if not prompt:
            raise K2Error("The %%k2 cell is empty: write the task below the %%k2 line.")
        options = {
            "model": args.model,
            "base_url": args.base_url,
            "max_steps": args.max_steps,
            "max_tokens": args.max_tokens,
            "timeout": args.timeout,
            "temperature": args.temperature,
            "reasoning_field": args.reasoning_field,
            "quiet": args.quiet or None,
            "approve": args.approve,
        }
        try:
            result = runner.run(prompt, shell=self.shell, **options)
        except ValueError as exc:
            raise K2Error(str(exc)) from None
        self.shell.user_ns["_k2"] = result
        if args.out:
            self.shell.user_ns[args.out] = result
        self._finish(result, quiet=bool(args.quiet))
        return None

    def _finish(self, result: Run, quiet: bool) -> None:
        if quiet or not runner.view_factories:
            if result.answer:
                display(Markdown(result.answer))
        if result.stop_reason == "error":
            raise K2Error(f"{result.note} (partial run in `_k2`)")
        if result.stop_reason == "interrupted":
            raise K2Stopped(f"{result.note} The partial run is in `_k2`; the namespace is intact.")
        if result.note and (quiet or not runner.view_factories):
            print(result.note)

    def _line(self, args: Any) -> Any:
        words = args.words
        command = words[0] if words else ""
        options = {"model": args.model, "base_url": args.base_url}
        if command == "":
            print(self._settings(options).describe())
        elif command == "help":
            print(HELP)
        elif command == "models":
            settings = self._settings(options)
            backend = runner.make_backend(settings)
            try:
                models = backend.models()
            except Exception as exc:
                raise K2Error(str(exc)) from None
            print(f"Models at {settings.base_url}:")
            for model in models:
                mark = "  (current)" if model == settings.model else ""
                print(f"  {model}{mark}")
        elif command in ("key", "login"):
            key = getpass.getpass("API key (kept in this kernel's memory only): ").strip()
            config.set_session_key(key)
            print("Key set for this kernel session." if key else "Session key cleared.")
        else:
            raise K2Error(f"Unknown %k2 command {' '.join(map(shlex.quote, words))!r}. "
                          f"Commands:\n{HELP}")
        return None

    def _settings(self, options: dict[str, Any]) -> config.Settings:
        try:
            return config.resolve(options, self.configured())
        except ValueError as exc:
            raise K2Error(str(exc)) from None
