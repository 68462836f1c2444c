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

from .pricing import estimate_cost
from .timeline import CallEntry, Timeline, StepEntry

Bundle = dict[str, Any]

FOLD_LINES = 25  # longer observations show this many lines, the rest behind "show all"
FOLD_CHARS = 4000

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
    parts.append(format_duration(timeline.elapsed(now)))
    cost = estimate_cost(timeline.model, timeline.usage)
    if cost is not None and timeline.usage.total_tokens:
        parts.append(f"≈ {format_cost(cost)}")
    if activity:
        parts.append(activity)
    return parts


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
        return f"writing a {step.composing} call"
    if step.content and not step.usage:
        return "writing"
    if step.reasoning and not step.thinking_done:
        return "thinking"
    return "waiting for the model"


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


def call_bundle(call: CallEntry) -> Bundle:
    """A tool call: name, status, code or arguments, and what the model read back."""
    title = call_title(call)
    if call.code is not None:
        shown = highlighted_code(call.code)
        plain_body = "\n".join("    " + line for line in call.code.split("\n"))
    else:
        args = _arguments_text(call)
        shown = f"<pre>{html.escape(args)}</pre>"
        plain_body = "\n".join("    " + line for line in args.split("\n"))
    parts = [f"<div><b>{html.escape(title)}</b></div>", shown]
    plain = [title, plain_body]
    if call.status != "running" and call.observation:
        lines = len(call.observation.splitlines()) or 1
        if call.code is not None:
            # the real outputs are in the notebook already; this is what the model was given
            parts.append(
                f"<details><summary>what the model read ({lines:,} line{'s' if lines != 1 else ''})"
                "</summary>"
                f"{folded_pre(call.observation)}</details>"
            )
        else:
            parts.append(folded_pre(call.observation))
        plain.append("  → " + folded_text(call.observation, "    ").lstrip())
    body = '<div class="k2nb-call" style="margin:0.3em 0">' + "".join(parts) + "</div>"
    return {"text/html": body, "text/plain": "\n".join(plain)}


# --------------------------------------------------------------------------- notices, outcome


def notice_bundle(text: str, level: str) -> Bundle:
    mark = {"warning": "⚠", "error": "✗"}.get(level, "ℹ")
    return {
        "text/html": f"<div><small>{mark} {html.escape(text)}</small></div>",
        "text/plain": f"{mark} {text}",
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


def run_bundles(timeline: Timeline, now: float) -> list[Bundle]:
    """The whole run as a list of static bundles, in the order the live view shows them.

    (Tool outputs are not included: in a notebook they are real outputs of their own.)
    """
    bundles = [header_bundle(timeline, now)]
    for step in timeline.steps:
        if step.reasoning:
            bundles.append(thinking_bundle(step, now))
        if step.content and step.content_text.strip() != timeline.answer.strip():
            bundles.append(content_bundle(step.content_text))
        bundles.extend(call_bundle(call) for call in step.calls)
    if timeline.answer:
        bundles.append(content_bundle(timeline.answer))
    outcome = outcome_bundle(timeline)
    if outcome:
        bundles.append(outcome)
    return bundles
