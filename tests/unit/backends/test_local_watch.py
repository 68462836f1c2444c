"""The repetition guard and the step watch of the local backend, fed the way the backend feeds
them (token ids and the text they decode to), without a model."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from k2nb.backends.local.watch import RepetitionGuard, StepWatch
from k2nb.core.events import GenerationProgress

ROOT = Path(__file__).resolve().parents[3]


class WordTokens:
    """A stand-in for a BPE tokenizer: words, runs of whitespace and runs of punctuation are
    tokens (a real tokenizer merges ``-----`` or ``    `` the same way)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.texts: dict[int, str] = {}

    def encode(self, text: str) -> list[tuple[int, str]]:
        out = []
        for piece in re.findall(r"\s+|\w+|[^\w\s]+", text):
            token = self.ids.setdefault(piece, len(self.ids))
            self.texts[token] = piece
            out.append((token, piece))
        return out

    def decode(self, ids: list[int]) -> str:
        return "".join(self.texts[i] for i in ids)


def feed(text: str, guard: RepetitionGuard | None = None,
         tokens: WordTokens | None = None) -> str:
    """Feed ``text`` token by token, as generation does; what the guard said first, or ""."""
    tokens = tokens or WordTokens()
    guard = guard or RepetitionGuard(tokens.decode)
    for token, piece in tokens.encode(text):
        found = guard.feed([token], piece)
        if found:
            return found
    return ""


def test_one_token_over_and_over_is_a_loop_and_is_quoted() -> None:
    assert feed("The total is 1" + "0" * 63) == ""  # one token "000…": fine
    tokens = WordTokens()
    found = feed("Answer: " + "yes " * 80, tokens=tokens)
    assert found == "the same 2 tokens (`yes`) over and over"
    assert feed("x" + " 0" * 31) == ""  # 62 tokens of the cycle: not yet


def test_a_cycle_of_several_tokens_is_a_loop_only_when_it_fills_the_span() -> None:
    line = 'revenue = pd.DataFrame.from_timestamp(df.month, 12)\n'
    assert feed(line * 4) == ""  # four repeats: real code does that
    assert feed("x = (row) * " * 6) == ""  # 60 tokens
    assert feed("```python\n" + "x = (row) * " * 40) == (
        "the same 10 tokens (`(row) * x =`) over and over")


def test_the_same_line_six_times_is_a_loop_blank_lines_between_do_not_hide_it() -> None:
    assert feed("print(total)\n" * 5 + "done\n") == ""
    assert feed("```\n\n" * 6) == 'the line "```" 6 times in a row'
    # A long line repeating is a cycle of tokens long before its sixth time.
    found = feed("The number of rows is 10.\n" * 6)
    assert found == "the same 13 tokens (`The number of rows is 10.`) over and over"


def test_closing_brackets_at_falling_indentation_are_not_a_loop() -> None:
    nested = "".join(" " * (4 * depth) + "{\n" for depth in range(8))
    nested += "".join(" " * (4 * depth) + "}\n" for depth in reversed(range(8)))
    assert feed(nested) == ""


def test_a_long_run_of_whitespace_is_a_loop_even_across_pieces() -> None:
    guard = RepetitionGuard()
    assert guard.feed([1], "Answer:") == ""
    pieces = [" " * (1 + i * 7 % 5) + "\n" * (i % 3) for i in range(100)]  # 300 characters
    said = [guard.feed([1000 + i], piece) for i, piece in enumerate(pieces)]
    first = next(i for i, found in enumerate(said) if found)
    assert sum(map(len, pieces[:first])) < 200 <= sum(map(len, pieces[: first + 1]))
    assert said[first] == f"{sum(map(len, pieces[: first + 1]))} whitespace characters in a row"


@pytest.mark.parametrize("path", ["k2nb/agent/loop.py", "k2nb/options.py", "README.md",
                                  "k2nb/testing/tiny_moe.py", "k2nb/tools/observation.py"])
def test_real_code_and_prose_are_never_taken_for_a_loop(path: str) -> None:
    assert feed((ROOT / path).read_text(encoding="utf-8")) == ""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_comes_at_most_every_half_second_with_count_rate_and_budget() -> None:
    clock = Clock()
    watch = StepWatch(300, clock=clock)
    reports = []
    for tick in range(32):  # 2 s of ticks: 1 s encoding the prompt, then 32 tokens/s
        clock.now += 0.0625
        tokens = 0 if tick < 16 else (tick - 15) * 2
        report = watch.progress(tokens)
        if report is not None:
            reports.append((clock.now, report))
    assert len(reports) == 4
    assert all(isinstance(r, GenerationProgress) and r.budget == 300 for _, r in reports)
    assert all(b - a >= 0.5 - 1e-9 for (a, _), (b, _) in itertools.pairwise(reports))
    assert [r.tokens for _, r in reports[:2]] == [0, 0]  # still encoding: counted, no rate
    assert reports[-1][1].tokens == 32 and reports[-1][1].tokens_per_s == pytest.approx(32)


def test_the_time_limit_ends_the_step_even_before_the_first_token() -> None:
    clock = Clock()
    watch = StepWatch(300, seconds=2.0, clock=clock)
    clock.now += 1.9
    assert watch.check([], "") == ""
    clock.now += 0.2
    assert watch.check([], "") == "time" and watch.reason == "time"


def test_the_watch_reports_what_the_guard_saw() -> None:
    watch = StepWatch(300, guard=RepetitionGuard())
    for _ in range(5):
        assert watch.check([7], "again\n") == ""
    assert watch.check([7], "again\n") == "repetition"
    assert watch.detail == "the line `again` 6 times in a row"
