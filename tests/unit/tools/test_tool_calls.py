"""Tool calls as the model sends them: several per message, broken JSON, unknown tools, user tools."""

from __future__ import annotations

from typing import Literal

import pydantic
import pytest

import k2nb
from k2nb.testing import Call, Reply
from k2nb.tools.schema import function_schema, inline_refs


def tool_messages(body):
    return [m for m in body["messages"] if m["role"] == "tool"]


def test_three_calls_in_one_message_run_in_order(shell, k2env):
    k2env.add(
        Reply(reasoning="Three steps at once.", tool_calls=[
            Call("code_interpreter", {"code": "order = ['first']"}),
            Call("code_interpreter", {"code": "order.append('second')"}),
            Call("code_interpreter", {"code": "order.append('third')\nprint(order)"}),
        ]),
        Reply(reasoning="Done.", content="All three ran."),
    )
    run = k2nb.run("Do three things.", shell=shell)
    assert run.ok and run.answer == "All three ran."
    assert shell.user_ns["order"] == ["first", "second", "third"]
    tools = tool_messages(k2env.requests[1])
    assert [t["tool_call_id"] for t in tools] == [
        "functions.code_interpreter:0", "functions.code_interpreter:1",
        "functions.code_interpreter:2"]
    assert tools[2]["content"] == "['first', 'second', 'third']"
    assert [c.execution_count for c in run.tool_calls] == sorted(
        c.execution_count for c in run.tool_calls)
    assert k2env.errors == []


def test_malformed_json_is_repaired_when_safe(shell, k2env):
    broken = '{"code": "fixed = 41 + 1\\nprint(fixed)"'  # missing closing brace
    k2env.add(Reply(reasoning="r", tool_calls=[Call("code_interpreter", broken)]),
              Reply(reasoning="r2", content="ok"))
    run = k2nb.run("go", shell=shell)
    assert shell.user_ns["fixed"] == 42
    assert tool_messages(k2env.requests[1])[0]["content"] == "42"
    assert run.ok


def test_unrepairable_json_is_explained_to_the_model(shell, k2env):
    k2env.add(Reply(reasoning="r", tool_calls=[Call("code_interpreter", "print(1)")]),
              Reply(reasoning="r2", content="I will retry differently."))
    run = k2nb.run("go", shell=shell)
    text = tool_messages(k2env.requests[1])[0]["content"]
    assert "were not valid JSON" in text and '{"code": "..."}' in text
    assert run.ok and run.tool_calls[0].is_error


def test_missing_and_extra_fields_are_named(shell, k2env):
    k2env.add(Reply(reasoning="r", tool_calls=[Call("code_interpreter", {"source": "1"})]),
              Reply(reasoning="r2", content="ok"))
    k2nb.run("go", shell=shell)
    text = tool_messages(k2env.requests[1])[0]["content"]
    assert "`code` is required but missing" in text
    assert "`source` is not a parameter of this tool" in text


def test_unknown_tool(shell, k2env):
    k2env.add(Reply(reasoning="r", tool_calls=[Call("web_browse", {"url": "x"})]),
              Reply(reasoning="r2", content="ok"))
    run = k2nb.run("go", shell=shell)
    text = tool_messages(k2env.requests[1])[0]["content"]
    assert text.startswith("There is no tool named `web_browse`.")
    assert "`code_interpreter`" in text and run.ok


class Point(pydantic.BaseModel):
    x: float
    y: float


def test_user_tool_schema_validation_and_errors(shell, k2env):
    @k2nb.tool
    def distance(a: Point, b: Point, unit: Literal["m", "km"] = "m") -> float:
        """Distance between two points.

        Args:
            a: the first point
            b: the second point
            unit: unit of the result
        """
        d = ((a.x - b.x) ** 2 + (a.y - b.y) ** 2) ** 0.5
        if unit == "km":
            raise ValueError("km not supported yet")
        return d

    try:
        k2env.add(
            Reply(reasoning="r", tool_calls=[
                Call("distance", {"a": {"x": 0, "y": 0}, "b": {"x": 3, "y": 4}}),
                Call("distance", {"a": {"x": 0, "y": 0}, "b": {"x": 3, "y": 4}, "unit": "km"}),
                Call("distance", {"a": {"x": 0}, "b": {"x": 3, "y": 4}, "unit": "mi"}),
            ]),
            Reply(reasoning="r2", content="5 m"),
        )
        run = k2nb.run("how far?", shell=shell)
        declared = {t["function"]["name"]: t["function"] for t in k2env.requests[0]["tools"]}
        schema = declared["distance"]["parameters"]
        assert "$ref" not in str(schema) and "$defs" not in schema
        assert schema["properties"]["a"]["properties"]["x"]["type"] == "number"
        assert schema["properties"]["unit"]["enum"] == ["m", "km"]
        assert schema["properties"]["a"]["description"] == "the first point"
        assert declared["distance"]["description"] == "Distance between two points."
        results = [t["content"] for t in tool_messages(k2env.requests[1])]
        assert results[0] == "5.0"
        assert results[1] == "Tool `distance` raised ValueError: km not supported yet"
        assert "`a.y` is required but missing" in results[2] and "`unit`" in results[2]
        assert run.ok and distance(Point(x=0, y=0), Point(x=0, y=2)) == 2.0
    finally:
        k2nb.Session.current().user_tools.remove("distance")


def test_inline_refs_rejects_recursion():
    schema = {"$defs": {"Node": {"type": "object", "properties": {
        "next": {"$ref": "#/$defs/Node"}}}}, "$ref": "#/$defs/Node"}
    with pytest.raises(ValueError, match="recursive type 'Node'"):
        inline_refs(schema)


def test_schema_from_plain_hints():
    def search(query: str, limit: int = 5, tags: list[str] | None = None) -> list:
        """Search things."""

    schema = function_schema(search)
    assert schema["required"] == ["query"]
    assert schema["properties"]["limit"] == {"type": "integer", "default": 5}
    assert schema["type"] == "object"


@pytest.mark.parametrize("code", ["", "  \n\t\n"])
def test_empty_code_is_an_error_and_runs_no_cell(shell, k2env, code):
    k2env.add(Reply(reasoning="r", tool_calls=[Call("code_interpreter", {"code": code})]),
              Reply(reasoning="r2", content="ok"))
    count = shell.execution_count
    run = k2nb.run("go", shell=shell)
    [call] = run.tool_calls
    assert call.is_error and call.status == "error"
    assert call.observation == "The code was empty; send the Python to run."
    assert tool_messages(k2env.requests[1])[0]["content"] == call.observation
    assert shell.execution_count == count  # no cell was run for it
    assert run.ok


def test_empty_code_sent_again_and_again_ends_the_run_with_a_note(shell, k2env):
    """A weak model that keeps sending empty code (SmolLM2 did, six times) is told at the
    third identical call and stopped at the fifth, like any repeated failing call."""
    k2env.add(*[Reply(reasoning="r", tool_calls=[Call("code_interpreter", {"code": ""})])] * 6)
    run = k2nb.run("Which month has the highest revenue?", shell=shell)
    assert run.stop_reason == "loop"
    assert run.note.startswith("Stopped: the model made the same `code_interpreter` call 5 "
                               "times in a row, so it was stuck in a loop.")
    observations = [c.observation for c in run.tool_calls]
    assert observations[:2] == ["The code was empty; send the Python to run."] * 2
    assert observations[2].startswith("The code was empty; send the Python to run.\n[Note from "
                                      "k2nb: this is the same `code_interpreter` call")
    assert observations[4] == "not run: the same call was repeated 5 times in a row"
    assert all(c.is_error for c in run.tool_calls) and len(k2env.requests) == 5
