"""Prompt styles for small local models, which follow examples better than instructions.

The agent's system prompt is written for Kimi K2: a page on how to work, then the user's
variables. A 135M model (SmolLM2) given that page plus the fenced-code instructions tends to
answer with an empty code block; shown worked exchanges first — a question about a DataFrame, a
short ``print`` block, its output, a one-sentence answer — it copies their shape. The styles:

- ``standard``: the messages as the loop sends them.
- ``example``: the same, with the worked exchanges between the system prompt and the
  conversation.
- ``brief``: a few lines of system prompt (the user's own instructions kept), the worked
  exchanges, and the list of the user's variables moved from the system prompt to just before
  the question, where the exchanges put theirs.

The exchanges use a table of their own (``items``), never the user's. ``bench/nokey_smollm2.py``
measures the styles on ten data questions.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ...core.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
)

PROMPT_STYLES = ("standard", "example", "brief")
CODE_TOOL = "code_interpreter"

BRIEF_SYSTEM = (
    "You are a helpful data assistant in a Jupyter notebook. You answer questions about the "
    "user's variables by running short Python code that prints the result; then you answer in "
    "one sentence."
)

# The sections of the agent's system prompt that the brief style keeps (k2nb.agent.prompt
# writes them; a test checks that they are found in its output).
VARIABLES = "Variables already defined in the user's namespace:"
INSTRUCTIONS = "Additional instructions from the user:"
_SECTION = r"^{}\n.*?(?=\n\n|\Z)"

_ITEMS = ("- items: pandas DataFrame 8×4 (columns: product, category, price, stock)")

#: (question, code, output, answer)
_EXCHANGES = (
    ("Load data/items.csv into a DataFrame called items.",
     'import pandas as pd\nitems = pd.read_csv("data/items.csv")\nprint(items.shape)',
     "(8, 4)", "items now holds data/items.csv: 8 rows and 4 columns."),
    ("What is the average price?",
     'print(items["price"].mean())', "4.75", "The average price is 4.75."),
    ("Which category has the most stock in total?",
     'print(items.groupby("category")["stock"].sum().idxmax())', "tools",
     "The category with the most stock in total is tools."),
    ("Make a DataFrame called cheap with the items whose price is below 3.",
     'cheap = items[items["price"] < 3]\nprint(len(cheap))', "2",
     "cheap holds the 2 items whose price is below 3."),
)


def section(system_prompt: str, heading: str) -> str:
    """One section of the agent's system prompt (heading and lines), or ""."""
    found = re.search(_SECTION.format(re.escape(heading)), system_prompt,
                      re.MULTILINE | re.DOTALL)
    return found.group(0) if found else ""


def worked_exchanges(variables_first: bool) -> list[Message]:
    """The worked exchanges as a conversation (the first one loads ``items``)."""
    messages: list[Message] = []
    for number, (question, code, output, answer) in enumerate(_EXCHANGES):
        if variables_first and number:
            question = f"{VARIABLES}\n{_ITEMS}\n\n{question}"
        elif number:
            question = f"The DataFrame items is defined. {question}"
        call = ToolCall(f"call_example_{number}", CODE_TOOL, json.dumps({"code": code}))
        messages += [UserMessage(question), AssistantMessage(tool_calls=[call]),
                     ToolMessage(call.id, CODE_TOOL, output), AssistantMessage(answer)]
    return messages


def styled(messages: list[Message], tools: list[dict[str, Any]], style: str) -> list[Message]:
    """``messages`` in prompt style ``style`` (unchanged without the code tool: no example fits
    a request that cannot run code, such as a summary request)."""
    names = {t.get("function", {}).get("name") for t in tools}
    if style == "standard" or CODE_TOOL not in names:
        return messages
    system = messages[0] if messages and isinstance(messages[0], SystemMessage) else None
    rest = list(messages[1:] if system is not None else messages)
    if style == "brief":
        text = system.content if system is not None else ""
        system = SystemMessage(f"{BRIEF_SYSTEM}\n\n{section(text, INSTRUCTIONS)}".strip())
        variables = section(text, VARIABLES)
        asked = max((i for i, m in enumerate(rest) if isinstance(m, UserMessage)), default=None)
        if variables and asked is not None:
            rest[asked] = UserMessage(f"{variables}\n\n{rest[asked].content}")
    return ([system] if system is not None else []) + worked_exchanges(style == "brief") + rest
