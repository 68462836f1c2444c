"""Prompt styles for small local models: what each sends, built from the agent's real system
prompt (so a change of its wording that the brief style would miss fails here)."""

from __future__ import annotations

import itertools

from k2nb.agent.prompt import BASE, system_prompt
from k2nb.backends.local.formats import FencedCodeFormat
from k2nb.backends.local.prompts import BRIEF_SYSTEM, styled
from k2nb.core.messages import AssistantMessage, SystemMessage, UserMessage
from k2nb.testing.tiny_moe import CODE_TOOL

VARIABLES = "- sales: pandas DataFrame 12×4 (columns: month, region, units, revenue)"
SYSTEM = system_prompt(VARIABLES, "Answer in French.")
QUESTION = "Which month has the highest revenue?"


def test_standard_sends_the_messages_as_they_are() -> None:
    messages = [SystemMessage(SYSTEM), UserMessage(QUESTION)]
    assert styled(messages, [CODE_TOOL], "standard") == messages


def test_without_the_code_tool_no_style_applies() -> None:
    messages = [SystemMessage(SYSTEM), UserMessage("Summarise the steps so far.")]
    assert styled(messages, [], "brief") == messages  # e.g. the compaction request


def test_example_puts_worked_exchanges_between_the_system_prompt_and_the_question() -> None:
    styled_messages = styled([SystemMessage(SYSTEM), UserMessage(QUESTION)], [CODE_TOOL],
                             "example")
    assert styled_messages[0] == SystemMessage(SYSTEM)
    assert styled_messages[-1] == UserMessage(QUESTION)
    calls = [m for m in styled_messages if isinstance(m, AssistantMessage) and m.tool_calls]
    assert len(calls) >= 3 and all("items" in c.tool_calls[0].arguments for c in calls)
    assert not any("sales" in getattr(m, "content", "") for m in styled_messages[1:-1])


def test_brief_keeps_the_users_variables_and_instructions_and_drops_the_k2_page() -> None:
    earlier = [UserMessage("How many rows?"), AssistantMessage("12 rows.")]
    styled_messages = styled([SystemMessage(SYSTEM), *earlier, UserMessage(QUESTION)],
                             [CODE_TOOL], "brief")
    system = styled_messages[0]
    assert system.content.startswith(BRIEF_SYSTEM)
    assert "Answer in French." in system.content
    assert BASE.splitlines()[0] not in system.content and VARIABLES not in system.content
    # The variables come right before the question, as in the worked exchanges.
    assert styled_messages[-1] == UserMessage(
        f"Variables already defined in the user's namespace:\n{VARIABLES}\n\n{QUESTION}")
    assert styled_messages[-3:-1] == earlier  # earlier turns unchanged


def test_styled_conversations_render_in_the_fenced_format_with_alternating_roles() -> None:
    fenced = FencedCodeFormat()
    for style in ("example", "brief"):
        rendered = fenced.template_messages(
            styled([SystemMessage(SYSTEM), UserMessage(QUESTION)], [CODE_TOOL], style))
        roles = [m["role"] for m in rendered]
        assert roles[0] == "system" and roles[-1] == "user"
        assert all(a != b for a, b in itertools.pairwise(roles[1:]))
        assert any(m["content"].startswith("```python\nprint(items") for m in rendered)
