"""Watching a local step as it generates: its progress, its time, and whether it is looping.

:class:`RepetitionGuard` recognises the loops a stuck model falls into (one token or a short
cycle of tokens over and over, the same line again and again, pages of whitespace), so that the
backend can end such a step instead of spending the rest of its token budget on it.
:class:`StepWatch` reports progress at a bounded rate and keeps the step's time limit. Neither
needs torch.
"""

from __future__ import annotations

import time
from typing import Any

from ...core.events import GenerationProgress


class StepWatch:
    """Keeps one step's clock: progress reports at a bounded rate, the step's time limit, and
    the :class:`RepetitionGuard`.

    :meth:`progress` is called on every token batch and idle tick and returns a
    :class:`GenerationProgress` at most every ``every_s`` seconds — the view counts tokens even
    while nothing can be shown (a prompt being encoded, a tool call's arguments). :meth:`check`
    says why the step should end now (``""``: go on) and remembers it in :attr:`reason`.
    """

    def __init__(self, budget: int, *, seconds: float | None = None,
                 guard: RepetitionGuard | None = None, every_s: float = 0.5,
                 clock: Any = time.monotonic):
        self.budget = budget
        self.seconds = seconds
        self.guard = guard
        self.every_s = every_s
        self.clock = clock
        self.started = clock()
        self.reason = ""  # "time" or "repetition" once the watch has ended the step
        self.detail = ""  # what repeated, for the notice
        self._reported = self.started
        self._first: tuple[float, int] | None = None  # when tokens first arrived, and how many

    def progress(self, tokens: int) -> GenerationProgress | None:
        now = self.clock()
        if tokens and self._first is None:
            self._first = (now, tokens)
        if now - self._reported < self.every_s:
            return None
        self._reported = now
        rate = 0.0
        if self._first is not None and now > self._first[0]:
            rate = (tokens - self._first[1]) / (now - self._first[0])
        return GenerationProgress(tokens, round(rate, 1), self.budget)

    def check(self, ids: list[int], text: str) -> str:
        if self.seconds is not None and self.clock() - self.started >= self.seconds:
            self.reason = "time"
        elif self.guard is not None:
            self.detail = self.guard.feed(ids, text)
            self.reason = "repetition" if self.detail else ""
        return self.reason


class RepetitionGuard:
    """Says when generated output has become a loop rather than progress.

    Fed each step's token ids and decoded text as they arrive; :meth:`feed` returns ``""`` while
    the output looks alive, else what repeats, for the user. It flags: the same token, or the
    same cycle of up to ``max_period`` tokens, filling the last ``min_span`` tokens (and at least
    four cycles); the same non-blank line ``same_lines`` times in a row (blank lines in between
    ignored, indentation counted, so a nest of closing brackets is not a loop); and
    ``whitespace_chars`` whitespace characters in a row. The thresholds leave room for real
    output: a 64-token cycle is longer than any separator row or literal a model writes on
    purpose.
    """

    def __init__(self, decode: Any = None, *, min_span: int = 64, max_period: int = 32,
                 same_lines: int = 6, whitespace_chars: int = 200):
        self.decode = decode  # token ids -> text, to quote the repeating cycle
        self.min_span = min_span
        self.max_period = max_period
        self.same_lines = same_lines
        self.whitespace_chars = whitespace_chars
        self._ids: list[int] = []
        self._line = ""
        self._last_line: str | None = None
        self._line_repeats = 0
        self._whitespace = 0

    def feed(self, ids: list[int], text: str) -> str:
        for token in ids:
            self._ids.append(token)
            found = self._token_cycle()
            if found:
                return found
        del self._ids[: -(self.min_span + 4 * self.max_period)]
        return self._text(text)

    def _token_cycle(self) -> str:
        ids = self._ids
        for period in range(1, self.max_period + 1):
            span = max(self.min_span, 4 * period)
            if len(ids) < span + period or ids[-1] != ids[-1 - period]:
                continue
            if ids[-span:] == ids[-span - period:-period]:
                cycle = ids[-period:]
                quoted = _quote(self.decode(cycle)) if self.decode else ""
                what = "the same token" if period == 1 else f"the same {period} tokens"
                return f"{what}{f' ({quoted})' if quoted else ''} over and over"
        return ""

    def _text(self, text: str) -> str:
        stripped = text.rstrip()
        if stripped:
            self._whitespace = len(text) - len(stripped)
        else:
            self._whitespace += len(text)
        if self._whitespace >= self.whitespace_chars:
            return f"{self._whitespace} whitespace characters in a row"
        self._line += text
        while "\n" in self._line:
            line, self._line = self._line.split("\n", 1)
            line = line.rstrip()
            if not line.strip():
                continue
            self._line_repeats = self._line_repeats + 1 if line == self._last_line else 1
            self._last_line = line
            if self._line_repeats >= self.same_lines:
                return f"the line {_quote(line)} {self._line_repeats} times in a row"
        return ""


def _quote(text: str, limit: int = 60) -> str:
    """``text`` as a short inline quote for a notice."""
    shown = text.strip() or repr(text)
    shown = shown if len(shown) <= limit else shown[: limit - 1] + "…"
    return f'"{shown}"' if "`" in shown else f"`{shown}`"
