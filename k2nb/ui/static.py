"""Static renderings of a run: HTML with ``<details>`` panels plus a text/plain fallback.

These are what a notebook keeps: JupyterLab does not save widget state by default, so every live
block is replaced by one of these bundles when its content is complete. They use plain semantic
HTML (``details``, ``pre``, ``code``) so that they still read well where styles are stripped
(GitHub, nbviewer, nbconvert).
"""

from __future__ import annotations

import functools
import html
import importlib.util
import json
from typing import Any

from ..core.events import ContextCompacted
from .pricing import estimate_cost
from .timeline import CallEntry, StepEntry, Timeline

Bundle = dict[str, Any]

FOLD_LINES = 25  # longer observations show this many lines, the rest behind "show all"
FOLD_CHARS = 4000
# A call's text/plain shows the head of its code (the HTML has all of it): the text is a
# fallback few frontends read, and a long run's cell should not carry every call twice.
PLAIN_CODE_LINES = 10
PLAIN_CODE_CHARS = 400
# What the model read, when it is not simply the outputs shown beside it: a head, the whole
# of it being in the transcript.
READ_CHARS = 2000
# A call line (the call runs in a cell of its own): heads of its code and of what the model
# read, folded under the line; the cell and the transcript have them whole.
LINE_CODE_LINES = 12
LINE_CODE_CHARS = 1200
LINE_READ_CHARS = 600
CALL_ID_ATTRIBUTE = "data-k2nb-call-id"  # a click on it selects the call's cell (lab extension)

_STATUS_MARK = {
    "running": "⏳",
    "ok": "✓",
    "error": "✗",
    "timed out": "⏱",
    "interrupted": "■",
    "skipped": "–",
}

_STOP_TEXT = {
    "answered": "answered",
    "max_steps": "stopped at the step limit",
    "max_tokens": "stopped at the token limit",
    "interrupted": "interrupted",
    "error": "stopped by an error",
    "loop": "stopped: the model was repeating itself",
}

SPINNER_STYLE = (
    "<style>@keyframes k2nb-spin{to{transform:rotate(360deg)}}"
    ".k2nb-spin{display:inline-block;animation:k2nb-spin 1s linear infinite}</style>"
)


def format_duration(seconds: float) -> str:
    """12 s, 2 min 05 s, 1 h 02 min."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_cost(dollars: float) -> str:
    if dollars >= 1:
        return f"${dollars:,.2f}"
    if dollars >= 0.01:
        return f"${dollars:.3f}"
    return f"${dollars:.4f}"


def markdown_html(text: str) -> str:
    """Markdown to HTML, raw HTML escaped, line breaks kept (thinking is written line by line).

    Without mistune (it comes with nbconvert) the text is shown as written, in a ``<pre>``.
    """
    if importlib.util.find_spec("mistune") is None:
        return f'<pre style="white-space:pre-wrap">{html.escape(text)}</pre>'
    return _markdown_renderer()(text)


@functools.lru_cache(maxsize=1)
def _markdown_renderer() -> Any:
    import mistune

    return mistune.create_markdown(escape=True, hard_wrap=True,
                                   plugins=["strikethrough", "table"])


def highlighted_code(code: str) -> str:
    """Python code as HTML with inline colours (they survive where stylesheets do not)."""
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer
    except ImportError:
        return f"<pre>{html.escape(code)}</pre>"
    return highlight(code, PythonLexer(), HtmlFormatter(noclasses=True, nobackground=True))


def folded_pre(text: str) -> str:
    """``<pre>`` of ``text``; past FOLD_LINES lines the rest sits behind "show all"."""
    lines = text.splitlines(keepends=True)
    head = "".join(lines[:FOLD_LINES])
    if len(head) > FOLD_CHARS:
        head = head[:FOLD_CHARS]
    rest = text[len(head) :]
    out = f'<pre style="white-space:pre-wrap;margin:0">{html.escape(head)}</pre>'
    if rest:
        more = len(rest.splitlines()) or 1
        out += (
            f"<details><summary>show all ({more:,} more lines)</summary>"
            f'<pre style="white-space:pre-wrap;margin:0">{html.escape(rest)}</pre></details>'
        )
    return out


def head(text: str, lines: int, chars: int) -> str:
    """The first ``lines`` lines of ``text``, at most ``chars`` characters of them."""
    end = -1
    for _ in range(lines):
        end = text.find("\n", end + 1)
        if end < 0:
            end = len(text)
            break
    shown = text[: min(end, chars)]
    return shown.rstrip("\n") if len(shown) < len(text) else shown


def left_out(text: str, shown: str) -> str:
    """What a head leaves out, in words: "12 more lines" or "3,200 more characters"."""
    rest = text[len(shown):]
    if rest.startswith("\n"):
        return _plural(len(rest.splitlines()) - 1, "more line")
    return _plural(len(rest), "more character")


def folded_text(text: str, indent: str) -> str:
    """Plain-text counterpart of :func:`folded_pre`."""
    lines = text.splitlines()
    shown = lines[:FOLD_LINES]
    body = "\n".join(indent + line for line in shown)
    if len(lines) > FOLD_LINES:
        body += f"\n{indent}… {len(lines) - FOLD_LINES:,} more lines"
    return body


# --------------------------------------------------------------------------- header


def header_summary(timeline: Timeline, now: float, *, activity: str = "") -> list[str]:
    """The pieces of the header line: model, step, tokens, elapsed, cost, activity."""
    parts = [f"K2 · {timeline.model or 'model'}"]
    if timeline.finished:
        count = len(timeline.steps)
        parts.append(f"{count} step{'s' if count != 1 else ''}")
    elif timeline.steps:
        parts.append(f"step {timeline.steps[-1].step} of {timeline.max_steps}")
    parts.append(
        f"{timeline.usage.prompt_tokens:,} in / {timeline.output_tokens_so_far():,} out tokens"
    )
    context = context_text(timeline)
    if context:
        parts.append(context)
    parts.append(format_duration(timeline.elapsed(now)))
    cost = estimate_cost(timeline.model, timeline.usage)
    if cost is not None and timeline.usage.total_tokens:
        parts.append(f"≈ {format_cost(cost)}")
    if activity:
        parts.append(activity)
    return parts


def short_tokens(count: int) -> str:
    """143k, 262k, 1.2M, 850."""
    if count >= 999_500:
        return f"{count / 1e6:.1f}M"
    if count >= 1000:
        return f"{round(count / 1000)}k"
    return str(count)


def context_text(timeline: Timeline) -> str:
    """``ctx 143k / 262k``: the context the server last reported against the window; empty
    until a step reported its prompt tokens."""
    if timeline.context_used is None:
        return ""
    used = f"ctx {short_tokens(timeline.context_used)}"
    return f"{used} / {short_tokens(timeline.context_window)}" if timeline.context_window else used


def activity(timeline: Timeline) -> str:
    """What the run is doing now, in a few words."""
    if timeline.finished:
        return _STOP_TEXT.get(timeline.stop_reason or "", timeline.stop_reason or "")
    step = timeline.current
    if step is None:
        return "starting"
    running = [c for c in step.calls if c.status == "running"]
    if running:
        return f"running {running[-1].call.name}"
    if step.composing:
        doing = f"writing a {step.composing} call"
    elif step.content and not step.usage:
        doing = "writing"
    elif step.reasoning and not step.thinking_done:
        doing = "thinking"
    elif step.progress is not None and step.usage is None:
        doing = "generating"
    else:
        return "waiting for the model"
    progress = step.progress
    if progress is None or step.usage is not None:
        return doing
    count = f"{progress.tokens:,} / {progress.budget:,}" if progress.budget else f"{progress.tokens:,}"
    return f"{doing} · {count} tokens · {progress.tokens_per_s:,.0f} tok/s"


def header_bundle(timeline: Timeline, now: float) -> Bundle:
    """The run's header line; with a spinner while the run is live."""
    parts = header_summary(timeline, now, activity=activity(timeline))
    text = " · ".join(parts)
    escaped = " · ".join(html.escape(p) for p in parts)
    if timeline.finished:
        body = f"<div><b>{escaped}</b></div>"
    else:
        body = f'{SPINNER_STYLE}<div><span class="k2nb-spin">◐</span> <b>{escaped}</b></div>'
    return {"text/html": body, "text/plain": text}


# --------------------------------------------------------------------------- steps


def thinking_title(step: StepEntry, now: float) -> str:
    seconds = format_duration(step.thinking_seconds(now))
    count = step.thinking_tokens()
    tokens = f"{count:,} token{'s' if count != 1 else ''}"
    if step.cut_short:
        return f"Step {step.step} · thinking stopped after {seconds} · {tokens}"
    if step.thinking_done:
        return f"Step {step.step} · thought for {seconds} · {tokens}"
    return f"Step {step.step} · thinking… {seconds} · {tokens}"


def thinking_bundle(step: StepEntry, now: float) -> Bundle:
    """A collapsed ``<details>`` panel holding the step's thinking as Markdown."""
    title = thinking_title(step, now)
    text = step.reasoning_text
    body = (
        f'<details class="k2nb-thinking"><summary>{html.escape(title)}</summary>'
        f'<div style="opacity:0.8">{markdown_html(text)}</div></details>'
    )
    plain = "▸ " + title + "\n" + "\n".join("  │ " + line for line in text.split("\n"))
    return {"text/html": body, "text/plain": plain}


def content_bundle(text: str) -> Bundle:
    """The model's visible text (or the final answer), left for the frontend to render."""
    return {"text/markdown": text, "text/plain": text}


# --------------------------------------------------------------------------- tool calls


def _arguments_text(call: CallEntry) -> str:
    try:
        return json.dumps(json.loads(call.call.arguments or "{}"), indent=2, ensure_ascii=False)
    except ValueError:
        return call.call.arguments


def call_title(call: CallEntry) -> str:
    parts = [f"{_STATUS_MARK.get(call.status, '•')} {call.call.name}", call.status]
    if call.execution_count is not None:
        parts.append(f"[{call.execution_count}]")
    if call.duration_s is not None:
        parts.append(format_duration(call.duration_s))
    return " · ".join(parts)


def outputs_text(outputs: list[dict[str, Any]]) -> str:
    """The text of a call's outputs as the notebook shows them (streams, text/plain, errors)."""
    parts = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(str(out.get("text", "")))
        elif kind in ("display_data", "execute_result"):
            parts.append(str(out.get("data", {}).get("text/plain", "")))
        elif kind == "error":
            parts.append(f"{out.get('ename', '')}: {out.get('evalue', '')}")
    return "".join(parts)


def read_differs(call: CallEntry) -> bool:
    """Whether what the model read says more than the outputs the user sees (a summary of a
    table, a cut, a trimmed traceback, an image described): only then is it worth showing
    beside them. Spacing does not count."""
    if not call.observation:
        return False
    return "".join(call.observation.split()) != "".join(outputs_text(call.outputs).split())


def capped_pre(text: str, lines: int, chars: int, rest: str) -> str:
    """``<pre>`` of the head of ``text``; ``rest`` says where the whole of it is."""
    shown = head(text, lines, chars)
    out = f'<pre style="white-space:pre-wrap;margin:0">{html.escape(shown)}</pre>'
    if len(shown) < len(text):
        out += f"<div><small>… {left_out(text, shown)}: {html.escape(rest)}</small></div>"
    return out


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'s' if count != 1 else ''}"


def call_bundle(call: CallEntry) -> Bundle:
    """A tool call: name, status, code or arguments, and what the model read back.

    A code call's outputs are the cell's own outputs right under this block, so what the model
    read is shown only where it differs from them, and capped (the transcript keeps it whole).
    """
    title = call_title(call)
    if call.code is not None:
        shown = highlighted_code(call.code)
        code_head = head(call.code, PLAIN_CODE_LINES, PLAIN_CODE_CHARS)
        plain_body = "\n".join("    " + line for line in code_head.split("\n"))
        if len(code_head) < len(call.code):
            plain_body += f"\n    … {left_out(call.code, code_head)}"
    else:
        args = _arguments_text(call)
        shown = f"<pre>{html.escape(args)}</pre>"
        plain_body = "\n".join("    " + line for line in args.split("\n"))
    parts = [f"<div><b>{html.escape(title)}</b></div>", shown]
    plain = [title, plain_body]
    if call.status != "running" and call.observation:
        if call.code is None:
            parts.append(folded_pre(call.observation))
            plain.append("  → " + folded_text(call.observation, "    ").lstrip())
        elif read_differs(call):
            lines = _plural(len(call.observation.splitlines()) or 1, "line")
            parts.append(
                f"<details><summary>what the model read ({lines})</summary>"
                + capped_pre(call.observation, FOLD_LINES, READ_CHARS, "the transcript has all")
                + "</details>")
            read_head = head(call.observation, 5, 300)
            plain.append("  model read: " + "\n    ".join(read_head.split("\n")))
    body = '<div class="k2nb-call" style="margin:0.3em 0">' + "".join(parts) + "</div>"
    return {"text/html": body, "text/plain": "\n".join(plain)}


def cell_call_id(run_id: str, step: int, call_id: str) -> str:
    """The id of a call's cell in the notebook (``metadata.k2nb.call_id``, and the call line's
    ``data-k2nb-call-id``): the model's id, which recurs from run to run (and within a run once
    older steps were compacted), made unique with the run and the step."""
    return f"{call_id}@{run_id}/{step}"


def cell_pointer(call: CallEntry) -> str:
    """Where the call's cell is: ``→ [12]``, ``→ [*]`` while it runs, ``→ [ ]`` when it never
    got a number (interrupted)."""
    if call.execution_count is not None:
        return f"→ [{call.execution_count}]"
    return "→ [*]" if call.status == "running" else "→ [ ]"


def _first_line(code: str, chars: int = 80) -> str:
    line = next((ln.strip() for ln in code.splitlines() if ln.strip()), "")
    return line if len(line) <= chars else line[: chars - 1] + "…"


def call_line_bundle(call: CallEntry, cell_id: str) -> Bundle:
    """A code call whose code and outputs are in a cell of their own (the lab extension made
    it): one line with its status, duration and cell number, which selects that cell when
    clicked; the heads of its code and of what the model read are folded under it, so the
    saved notebook still reads on its own (nbviewer, GitHub) without carrying the outputs twice.
    """
    code = call.code or ""
    parts = [f"{_STATUS_MARK.get(call.status, '•')} {call.call.name}", call.status]
    if call.duration_s is not None:
        parts.append(format_duration(call.duration_s))
    linked = call.status != "skipped"  # a skipped call's cell was removed
    if linked:
        parts.append(cell_pointer(call))
    first = _first_line(code)
    plain = " · ".join(parts + ([first] if first else []))
    line = html.escape(" · ".join(parts))
    if first:
        line += f' · <code style="opacity:0.75">{html.escape(first)}</code>'
    where = f"cell [{call.execution_count}]" if call.execution_count is not None else "its cell"
    if linked:
        line = (f'<div {CALL_ID_ATTRIBUTE}="{html.escape(cell_id)}" style="cursor:pointer" '
                f'title="Select this call\'s cell">{line}</div>')
    else:
        line = f"<div>{line}</div>"
    folds = [
        f'<details style="margin-left:1.5em"><summary><small>code · '
        f'{_plural(code.count(chr(10)) + 1, "line")}</small></summary>'
        + capped_pre(code, LINE_CODE_LINES, LINE_CODE_CHARS, f"the whole code is in {where}")
        + "</details>"
    ]
    if call.status != "running" and read_differs(call):
        lines = _plural(len(call.observation.splitlines()) or 1, "line")
        folds.append(
            f'<details style="margin-left:1.5em"><summary><small>what the model read · {lines}'
            "</small></summary>"
            + capped_pre(call.observation, LINE_CODE_LINES, LINE_READ_CHARS,
                         f"the outputs are in {where}, the rest in the transcript")
            + "</details>")
    body = ('<div class="k2nb-call k2nb-call-line" style="margin:0.15em 0">' + line
            + "".join(folds) + "</div>")
    return {"text/html": body, "text/plain": plain}


# --------------------------------------------------------------------------- notices, outcome


def notice_bundle(text: str, level: str) -> Bundle:
    mark = {"warning": "⚠", "error": "✗"}.get(level, "ℹ")
    return {
        "text/html": f"<div><small>{mark} {html.escape(text)}</small></div>",
        "text/plain": f"{mark} {text}",
    }


def compaction_text(event: ContextCompacted) -> str:
    """"context compacted at step 160: steps 1–150 summarised (212k → 31k tokens)"."""
    steps = (f"step {event.first}" if event.first == event.last
             else f"steps {event.first}–{event.last}")
    text = f"context compacted at step {event.step}: {steps} summarised"
    if event.tokens_before and event.tokens_after:
        text += (f" ({short_tokens(event.tokens_before)} → "
                 f"{short_tokens(event.tokens_after)} tokens)")
    return text


def compaction_bundle(event: ContextCompacted) -> Bundle:
    """A notice line for a compaction, with the summary the run goes on from folded under it."""
    text = compaction_text(event)
    return {
        "text/html": (f'<div class="k2nb-compaction"><details><summary><small>ℹ '
                      f"{html.escape(text)}</small></summary>"
                      f'<div style="opacity:0.8">{markdown_html(event.summary)}</div>'
                      "</details></div>"),
        "text/plain": f"ℹ {text}\n" + "\n".join("  │ " + ln for ln in event.summary.split("\n")),
    }


def outcome_bundle(timeline: Timeline) -> Bundle | None:
    """A line saying why the run stopped, when it did not simply answer."""
    if timeline.stop_reason in (None, "answered") and not timeline.note:
        return None
    reason = _STOP_TEXT.get(timeline.stop_reason or "", timeline.stop_reason or "ended")
    text = f"Run {reason} after {len(timeline.steps)} step(s)"
    if timeline.note:
        text += f": {timeline.note}"
    mark = "■" if timeline.stop_reason == "interrupted" else "⚠"
    return {
        "text/html": f"<div><b>{mark} {html.escape(text)}</b></div>",
        "text/plain": f"{mark} {text}",
    }


def run_bundles(timeline: Timeline, now: float, calls_in_cells: bool = False) -> list[Bundle]:
    """The whole run as a list of static bundles, in the order the live view shows them.

    (Tool outputs are not included: in a notebook they are real outputs of their own.) With
    ``calls_in_cells``, code calls are call lines (their cells hold code and outputs).
    """
    bundles = [header_bundle(timeline, now)]
    compactions: dict[int, list[ContextCompacted]] = {}
    for event in timeline.compactions:
        compactions.setdefault(event.step, []).append(event)
    for step in timeline.steps:
        bundles.extend(compaction_bundle(event) for event in compactions.pop(step.step, ()))
        if step.reasoning:
            bundles.append(thinking_bundle(step, now))
        if step.content and step.content_text.strip() != timeline.answer.strip():
            bundles.append(content_bundle(step.content_text))
        for call in step.calls:
            if calls_in_cells and call.code is not None:
                cell_id = cell_call_id(timeline.run_id, call.step, call.call.id)
                bundles.append(call_line_bundle(call, cell_id))
            else:
                bundles.append(call_bundle(call))
    for events in compactions.values():  # compacted before a step that never started
        bundles.extend(compaction_bundle(event) for event in events)
    if timeline.answer:
        bundles.append(content_bundle(timeline.answer))
    outcome = outcome_bundle(timeline)
    if outcome:
        bundles.append(outcome)
    return bundles
