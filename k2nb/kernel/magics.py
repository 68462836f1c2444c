"""``%%k2`` and ``%k2``: parse, call, display. The work is in :mod:`k2nb.runner` (runs) and
:mod:`k2nb.kernel.commands` (subcommands); the options and their traits come from
:mod:`k2nb.options`."""

from __future__ import annotations

import io
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import Markdown, display

from .. import options, runner
from ..core.run import Run
from ..runs.record import RECORD_MIME, record_metadata
from ..session import Session
from .commands import CommandError, Context, dispatch

#: The configurable traits of K2Magics, one per option of k2nb.options.OPTIONS.
K2Options = type("K2Options", (Magics,), {"__doc__": "Traits made from k2nb.options.OPTIONS.",
                                          **options.traits()})


class K2Error(Exception):
    """A run that failed for a reason the user must fix; shown as one clean message."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mk2nb: {self}\x1b[0m"]


class K2Stopped(KeyboardInterrupt):
    """The user interrupted a run; the partial run is in ``_k2``."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[33mk2nb: {self}\x1b[0m"]


@magics_class
class K2Magics(K2Options):
    """Configuration of ``%%k2``: ``%config K2Magics.max_steps = 80`` or ipython_config.py."""

    def __init__(self, shell: Any = None, **kwargs: Any):
        super().__init__(shell=shell, **kwargs)
        self.session = Session.of(shell)
        self._flags = options.flag_parser()

    def configured(self) -> dict[str, Any]:
        """Trait values the user changed from their defaults (they outrank the environment)."""
        return {name: getattr(self, name) for name, trait in self.traits(config=True).items()
                if getattr(self, name) != trait.default()}

    def settings(self, given: dict[str, Any]) -> Any:
        try:
            return self.session.settings(given)
        except ValueError as exc:
            raise K2Error(str(exc)) from None

    @line_cell_magic
    def k2(self, line: str = "", cell: str | None = None) -> Any:
        """Run the k2nb agent on the cell (``%%k2``), or configure it (``%k2``; ``%k2 help``)."""
        if cell is None:
            try:
                dispatch(Context(self.shell, self.session, self), line)
            except (CommandError, ValueError) as exc:
                raise K2Error(str(exc)) from None
            return None
        try:
            given, words = options.parse_flags(line, self._flags)
        except ValueError as exc:
            raise K2Error(f"{exc}. Try `%k2 help`.") from None
        if words:
            raise K2Error(f"unrecognized arguments: {' '.join(words)}. Try `%k2 help`.")
        prompt = cell.strip()
        if not prompt:
            raise K2Error("The %%k2 cell is empty: write the task below the %%k2 line.")
        try:
            result = runner.run(prompt, shell=self.shell, **given)
        except ValueError as exc:
            raise K2Error(str(exc)) from None
        # Bound the way IPython binds `_` and `Out`: hidden from %who and namespace diffs.
        self.shell.push({"_k2": result}, interactive=False)
        if given.get("out"):
            self.shell.user_ns[given["out"]] = result
        self._finish(result, quiet=bool(given.get("quiet")))
        return None

    def _finish(self, result: Run, quiet: bool) -> None:
        views = bool(self.session.views)
        if result.expert_counts and not quiet and any(
                sum(map(sum, u.generated)) for u in result.expert_counts):
            _show_experts(result)
        # The run's record, in the cell's output metadata, lets a fresh kernel replay this cell
        # from the saved notebook alone (k2nb.runs.store).
        limit = self.settings({}).record_bytes
        record = record_metadata(result, limit) if limit > 0 else {}
        if not views:
            if result.answer:
                display(Markdown(result.answer), metadata=record)
            if result.replay is not None:
                print(result.replay)  # views show the same as notices
        if record and (views or not result.answer):
            # Nothing to see: JupyterLab renders an empty text, and the record rides in metadata.
            record["k2nb"]["block"] = "record"
            display({RECORD_MIME: {"run_id": result.run_id}, "text/plain": ""}, raw=True,
                    metadata=record)
        if result.stop_reason == "error":
            raise K2Error(f"{result.note} (partial run in `_k2`)")
        if result.stop_reason == "interrupted":
            raise K2Stopped(f"{result.note} The partial run is in `_k2`; the namespace is intact.")
        if result.note and not views:
            print(result.note)


def _show_experts(result: Run) -> None:
    """Which experts the local MoE used, for teaching; as PNG, whatever the plot backend."""
    from IPython.display import Image

    from ..backends.local.experts import expert_heatmap

    figure = expert_heatmap(result.expert_counts,
                            title=f"Experts chosen per layer · run {result.run_id}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    display(Image(buffer.getvalue()), metadata={"k2nb": {"block": "experts"}})
