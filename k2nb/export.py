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

from .agent.messages import code_of

TEXTUAL = ("text/markdown", "text/plain")


def to_notebook(record: dict[str, Any]) -> nbformat.NotebookNode:
    """The run as a validated nbformat v4 notebook."""
    run_id = record.get("run_id", "")
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["k2nb"] = {
        "run_id": run_id, "model": record.get("model"), "backend": record.get("backend"),
        "prompt": record.get("prompt"), "stop_reason": record.get("stop_reason"),
        "usage": record.get("usage") or {}, "started_at": _iso(record.get("started_at")),
        "finished_at": _iso(record.get("finished_at")), "transcript": record.get("transcript"),
        "replay_of": record.get("replay_of"), "exported_at": _iso(time.time()),
        "trimmed": record.get("trimmed") or [],
    }
    cells = [v4.new_markdown_cell(_title(record), metadata=_meta(record))]
    for step in record.get("steps") or []:
        index = step.get("index")
        step_meta = _meta(record, step=index, usage=step.get("usage") or {},
                          started_at=_iso(step.get("started_at")),
                          finished_at=_iso(step.get("finished_at")))
        text = ""
        if step.get("reasoning"):
            text += _thinking_markdown(index, step["reasoning"])
        if step.get("content") and step.get("calls"):
            text += ("\n\n" if text else "") + step["content"]
        if text:
            cells.append(v4.new_markdown_cell(text, metadata=step_meta))
        for call in step.get("calls") or []:
            cells.append(_call_cell(record, index, call))
    answer = record.get("answer") or ""
    ending = f"## Answer\n\n{answer}" if answer else (
        f"## Run stopped ({record.get('stop_reason')})\n\n{record.get('note') or ''}")
    cells.append(v4.new_markdown_cell(ending, metadata=_meta(record)))
    nb.cells = cells
    nbformat.validate(nb)
    return nb


def to_markdown(record: dict[str, Any]) -> str:
    """The run as one Markdown document (thinking in ``<details>``, code in fenced blocks)."""
    parts = [_title(record)]
    for step in record.get("steps") or []:
        if step.get("reasoning"):
            parts.append(_thinking_markdown(step.get("index"), step["reasoning"]))
        if step.get("content") and step.get("calls"):
            parts.append(step["content"])
        for call in step.get("calls") or []:
            code = _code(call)
            if code is not None:
                parts.append(f"```python\n{code}\n```")
                rendered = _outputs_markdown(call.get("outputs") or [])
                if rendered:
                    parts.append(rendered)
            else:
                parts.append(_other_call_markdown(call))
    answer = record.get("answer") or ""
    parts.append(f"## Answer\n\n{answer}" if answer else
                 f"## Run stopped ({record.get('stop_reason')})\n\n{record.get('note') or ''}")
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"


def export(run: str, path: str, *, format: str | None = None, shell: Any = None) -> Path:
    """Write run ``run`` (id, transcript path or ``last``) to ``path``; returns the path."""
    from .stepper import resolve_run

    if shell is None:
        from .runner import _shell

        shell = _shell()
    found = resolve_run(shell, run)
    target = Path(path)
    kind = format or ("markdown" if target.suffix.lower() in (".md", ".markdown") else "ipynb")
    if target.parent and not target.parent.exists():
        target.parent.mkdir(parents=True)
    if kind == "markdown":
        target.write_text(to_markdown(found.record), encoding="utf-8")
    else:
        nbformat.write(to_notebook(found.record), str(target))
    return target


# --- pieces -------------------------------------------------------------------------------------


def _title(record: dict[str, Any]) -> str:
    usage = record.get("usage") or {}
    facts = [f"model `{record.get('model')}`", f"run `{record.get('run_id')}`"]
    if record.get("started_at"):
        facts.append(time.strftime("%Y-%m-%d %H:%M", time.localtime(record["started_at"])))
    facts.append(f"{len(record.get('steps') or [])} steps")
    if usage.get("total_tokens"):
        facts.append(f"{usage['total_tokens']:,} tokens")
    prompt = "\n".join("> " + line for line in (record.get("prompt") or "").splitlines())
    return f"# k2nb run\n\n{' · '.join(facts)}\n\n**Prompt**\n\n{prompt}"


def _thinking_markdown(index: Any, reasoning: str) -> str:
    # A blank line after <summary> lets Markdown inside the block render (JupyterLab, GitHub).
    return (f"<details><summary>Thinking · step {index}</summary>\n\n{reasoning.strip()}\n\n"
            "</details>")


def _call_cell(record: dict[str, Any], step: Any, call: dict[str, Any]) -> nbformat.NotebookNode:
    meta = _meta(record, step=step, call_id=call.get("id"), tool=call.get("name"),
                 status=call.get("status"), duration_s=call.get("duration_s"),
                 finished_at=_iso(call.get("finished_at")))
    code = _code(call)
    if code is None:
        return v4.new_markdown_cell(_other_call_markdown(call), metadata=meta)
    cell = v4.new_code_cell(code, metadata=meta)
    cell.execution_count = call.get("execution_count")
    cell.outputs = [_output(o, call.get("execution_count")) for o in call.get("outputs") or []]
    return cell


def _output(output: dict[str, Any], count: int | None) -> nbformat.NotebookNode:
    output = copy.deepcopy(output)
    if output.get("output_type") == "execute_result":
        output["execution_count"] = output.get("execution_count") or count
    if output.get("output_type") in ("display_data", "execute_result"):
        output.setdefault("metadata", {})
    return nbformat.from_dict(output)


def _code(call: dict[str, Any]) -> str | None:
    return code_of(call.get("name", ""), call.get("arguments"))


def _other_call_markdown(call: dict[str, Any]) -> str:
    observation = call.get("observation") or ""
    return (f"**Tool call** `{call.get('name')}` `{call.get('arguments')}`\n\n"
            f"<details><summary>Result</summary>\n\n```\n{observation}\n```\n\n</details>")


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


def _meta(record: dict[str, Any], **extra: Any) -> dict[str, Any]:
    meta = {"run_id": record.get("run_id"), "model": record.get("model")}
    meta.update({k: v for k, v in extra.items() if v is not None})
    return {"k2nb": meta}


def _iso(at: float | None) -> str | None:
    if not at:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(at))


def _join(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


__all__ = ["export", "to_markdown", "to_notebook"]
