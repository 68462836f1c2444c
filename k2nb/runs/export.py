"""``%k2 export``: a recorded run as a clean notebook (nbformat) or as Markdown.

The notebook holds the prompt, each step's thinking as a collapsible Markdown block, each
``code_interpreter`` call as a real code cell with its recorded outputs and execution count, other
tool calls with what they returned, and the answer. Provenance (model, run id, step, call id,
timestamps, token usage) is in ``metadata["k2nb"]`` of the notebook and of each cell. The
notebook is checked with ``nbformat.validate`` before it is written.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import nbformat
from nbformat import v4

from ..core.run import Run, Step, ToolCallResult

TEXTUAL = ("text/markdown", "text/plain")


def to_notebook(record: Run) -> nbformat.NotebookNode:
    """The run as a validated nbformat v4 notebook."""
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["k2nb"] = {
        "run_id": record.run_id, "model": record.model, "backend": record.backend,
        "prompt": record.prompt, "stop_reason": record.stop_reason,
        "usage": record.usage.to_dict(), "started_at": _iso(record.started_at),
        "finished_at": _iso(record.finished_at), "transcript": record.transcript_path,
        "replay_of": record.replay_of, "exported_at": _iso(time.time()),
        "trimmed": list(record.trimmed),
    }
    cells = [v4.new_markdown_cell(_title(record), metadata=_meta(record))]
    if record.history:
        cells.append(v4.new_markdown_cell(_history_markdown(record), metadata=_meta(record)))
    for step in record.steps:
        step_meta = _meta(record, step=step.index, usage=step.usage.to_dict(),
                          started_at=_iso(step.started_at), finished_at=_iso(step.finished_at))
        text = _thinking_markdown(step.index, step.reasoning) if step.reasoning else ""
        if step.content and step.tool_calls:
            text += ("\n\n" if text else "") + step.content
        if text:
            cells.append(v4.new_markdown_cell(text, metadata=step_meta))
        for call in step.tool_calls:
            cells.append(_call_cell(record, step, call))
    cells.append(v4.new_markdown_cell(_ending(record), metadata=_meta(record)))
    nb.cells = cells
    nbformat.validate(nb)
    return nb


def to_markdown(record: Run) -> str:
    """The run as one Markdown document (thinking in ``<details>``, code in fenced blocks)."""
    parts = [_title(record)]
    if record.history:
        parts.append(_history_markdown(record))
    for step in record.steps:
        if step.reasoning:
            parts.append(_thinking_markdown(step.index, step.reasoning))
        if step.content and step.tool_calls:
            parts.append(step.content)
        for call in step.tool_calls:
            if call.code is not None:
                parts.append(f"```python\n{call.code}\n```")
                rendered = _outputs_markdown(call.outputs)
                if rendered:
                    parts.append(rendered)
            else:
                parts.append(_other_call_markdown(call))
    parts.append(_ending(record))
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"


def export(record: Run, path: str, *, format: str | None = None) -> Path:
    """Write ``record`` to ``path`` as a notebook, or as Markdown (``format="markdown"`` or a
    ``.md`` path); returns the path."""
    target = Path(path)
    kind = format or ("markdown" if target.suffix.lower() in (".md", ".markdown") else "ipynb")
    if target.parent and not target.parent.exists():
        target.parent.mkdir(parents=True)
    if kind == "markdown":
        target.write_text(to_markdown(record), encoding="utf-8")
    else:
        nbformat.write(to_notebook(record), str(target))
    return target


# --- pieces -------------------------------------------------------------------------------------


def _title(record: Run) -> str:
    facts = [f"model `{record.model}`", f"run `{record.run_id}`"]
    if record.started_at:
        facts.append(time.strftime("%Y-%m-%d %H:%M", time.localtime(record.started_at)))
    facts.append(f"{len(record.steps)} steps")
    if record.usage.total_tokens:
        facts.append(f"{record.usage.total_tokens:,} tokens")
    prompt = "\n".join("> " + line for line in record.prompt.splitlines())
    return f"# k2nb run\n\n{' · '.join(facts)}\n\n**Prompt**\n\n{prompt}"


def _history_markdown(record: Run) -> str:
    """The earlier turns of the conversation the run continued, collapsed."""
    parts = [f"<details><summary>Earlier in this conversation · {len(record.history)} "
             "turn(s)</summary>\n"]
    for number, turn in enumerate(record.history, 1):
        cells = "".join(f"\n```python\n# In [{c.count}] (the user's own cell)\n{c.code}\n```\n"
                        for c in turn.user_cells)
        prompt = "\n".join("> " + line for line in turn.prompt.splitlines())
        calls = f" · {len(turn.calls)} tool call(s)" if turn.calls else ""
        parts.append(f"{cells}\n**Turn {number}**{calls}\n\n{prompt}\n\n"
                     f"{turn.answer or f'(no answer: {turn.stop_reason})'}\n")
    parts.append("</details>")
    return "\n".join(parts)


def _ending(record: Run) -> str:
    if record.answer:
        return f"## Answer\n\n{record.answer}"
    return f"## Run stopped ({record.stop_reason})\n\n{record.note}"


def _thinking_markdown(index: Any, reasoning: str) -> str:
    # A blank line after <summary> lets Markdown inside the block render (JupyterLab, GitHub).
    return (f"<details><summary>Thinking · step {index}</summary>\n\n{reasoning.strip()}\n\n"
            "</details>")


def _call_cell(record: Run, step: Step, call: ToolCallResult) -> nbformat.NotebookNode:
    meta = _meta(record, step=step.index, call_id=call.call.id, tool=call.call.name,
                 status=call.status, duration_s=call.duration_s,
                 finished_at=_iso(call.finished_at))
    if call.code is None:
        return v4.new_markdown_cell(_other_call_markdown(call), metadata=meta)
    cell = v4.new_code_cell(call.code, metadata=meta)
    cell.execution_count = call.execution_count
    cell.outputs = [_output(o, call.execution_count) for o in call.outputs]
    return cell


def _output(output: dict[str, Any], count: int | None) -> nbformat.NotebookNode:
    output = copy.deepcopy(output)
    if output.get("output_type") == "execute_result":
        output["execution_count"] = output.get("execution_count") or count
    if output.get("output_type") in ("display_data", "execute_result"):
        output.setdefault("metadata", {})
    return nbformat.from_dict(output)


def _other_call_markdown(call: ToolCallResult) -> str:
    return (f"**Tool call** `{call.call.name}` `{call.call.arguments}`\n\n"
            f"<details><summary>Result</summary>\n\n```\n{call.observation}\n```\n\n</details>")


def _outputs_markdown(outputs: list[dict[str, Any]]) -> str:
    parts = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(f"```\n{_join(out.get('text'))}\n```")
        elif kind == "error":
            parts.append(f"```\n{out.get('ename')}: {out.get('evalue')}\n```")
        elif kind in ("display_data", "execute_result"):
            data = out.get("data") or {}
            image = next((m for m in ("image/png", "image/jpeg") if m in data), None)
            if image:
                payload = _join(data[image]).replace("\n", "")
                parts.append(f"![output](data:{image};base64,{payload})")
            elif "text/markdown" in data:
                parts.append(_join(data["text/markdown"]))
            elif "text/plain" in data:
                parts.append(f"```\n{_join(data['text/plain'])}\n```")
            elif "text/html" in data:
                parts.append(_join(data["text/html"]))
    return "\n\n".join(parts)


def _meta(record: Run, **extra: Any) -> dict[str, Any]:
    meta = {"run_id": record.run_id, "model": record.model}
    meta.update({k: v for k, v in extra.items() if v is not None})
    return {"k2nb": meta}


def _iso(at: float | None) -> str | None:
    if not at:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(at))


def _join(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


__all__ = ["export", "to_markdown", "to_notebook"]
