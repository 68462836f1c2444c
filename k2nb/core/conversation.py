"""The notebook as a conversation: the turns a kernel's ``%%k2`` cells have had, in execution order.

A finished run becomes a :class:`Turn`: its prompt, its answer, a digest of its tool calls (code
and the head of what each returned — not the full outputs, not the thinking, which K2 does not
need once a turn has ended) and the code of the cells the user ran themselves before it. The
next run is given the earlier turns as history (:mod:`k2nb.agent.context` renders them). A
:class:`Conversation` is plain data with a stable JSON form, so a transcript records exactly
what history a run was given.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


#: Characters of each earlier call's observation carried into later turns.
OBSERVATION_HEAD = 600
#: Characters of each earlier call's code (or arguments) carried into later turns.
CODE_HEAD = 2_000


@dataclass
class UserCell:
    """A cell the user ran themselves between two turns (``In[count]``), already capped and
    redacted."""

    count: int
    code: str

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "code": self.code}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserCell:
        return cls(int(data.get("count") or 0), data.get("code") or "")


@dataclass
class CallDigest:
    """One tool call of a finished turn, as later turns see it."""

    name: str
    text: str  # the code of a code_interpreter call, else the JSON arguments (capped)
    observation: str  # the head of what the model read back
    status: str = "ok"
    execution_count: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "text": self.text, "observation": self.observation,
                "status": self.status, "execution_count": self.execution_count}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallDigest:
        return cls(data.get("name") or "", data.get("text") or "", data.get("observation") or "",
                   data.get("status") or "ok", data.get("execution_count"))


@dataclass
class Turn:
    """A finished ``%%k2`` run as the rest of the conversation sees it."""

    run_id: str
    prompt: str
    answer: str
    stop_reason: str = "answered"
    note: str = ""
    calls: list[CallDigest] = field(default_factory=list)
    #: The cells the user ran themselves since the previous turn, before this one.
    user_cells: list[UserCell] = field(default_factory=list)
    #: ``In[n]`` of the cell that ran the turn, and of the agent's own cells in it.
    execution_count: int | None = None
    agent_counts: list[int] = field(default_factory=list)
    #: The frontend's id of the cell (JupyterLab sends it): running that cell again redoes
    #: this turn instead of adding a second copy.
    cell_id: str | None = None

    @property
    def last_count(self) -> int | None:
        """The last ``In[n]`` the turn used (its own cell or its agent's last call)."""
        counts = [c for c in (self.execution_count, *self.agent_counts) if c is not None]
        return max(counts) if counts else None

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "prompt": self.prompt, "answer": self.answer,
                "stop_reason": self.stop_reason, "note": self.note,
                "calls": [c.to_dict() for c in self.calls],
                "user_cells": [c.to_dict() for c in self.user_cells],
                "execution_count": self.execution_count, "agent_counts": list(self.agent_counts),
                "cell_id": self.cell_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Turn:
        return cls(data.get("run_id") or "", data.get("prompt") or "", data.get("answer") or "",
                   data.get("stop_reason") or "answered", data.get("note") or "",
                   [CallDigest.from_dict(c) for c in data.get("calls") or []],
                   [UserCell.from_dict(c) for c in data.get("user_cells") or []],
                   data.get("execution_count"), list(data.get("agent_counts") or []),
                   data.get("cell_id"))


class Conversation:
    """The turns of one conversation, oldest first; ``k2nb.run`` and ``%%k2`` add to it.

    A kernel's session holds the conversation of its ``%%k2`` cells; a script can hold several
    and pass one with ``k2nb.run(prompt, conversation=...)``.
    """

    def __init__(self, turns: list[Turn] | None = None):
        self.turns: list[Turn] = list(turns or [])
        #: The kernel's history session the turns belong to: ``In[n]`` numbers restart with a
        #: new one (``%reset``), and so does the conversation.
        self.history_session: int | None = None

    def __len__(self) -> int:
        return len(self.turns)

    def __iter__(self) -> Iterator[Turn]:
        return iter(self.turns)

    def __repr__(self) -> str:
        return f"<k2nb Conversation: {len(self.turns)} turn(s)>"

    def history(self, max_turns: int, cell_id: str | None = None) -> list[Turn]:
        """The turns a new run is given: the last ``max_turns``, without the earlier turn of the
        same cell (``cell_id``), which the new run redoes."""
        turns = [t for t in self.turns if cell_id is None or t.cell_id != cell_id]
        return turns[-max_turns:] if max_turns > 0 else []

    def add(self, turn: Turn) -> None:
        """Append ``turn``; an earlier turn of the same cell is replaced (the cell was re-run)."""
        if turn.cell_id is not None:
            self.turns = [t for t in self.turns if t.cell_id != turn.cell_id]
        self.turns.append(turn)

    def clear(self) -> None:
        """Start over (``%k2 new``, ``%%k2 --new``): the next run carries no earlier turns, nor
        the user's cells run before it."""
        self.turns = []

    def follow(self, history_session: int | None) -> None:
        """Start over when the kernel's history session changed (``In`` numbers restarted)."""
        if self.history_session is not None and history_session != self.history_session:
            self.clear()
        self.history_session = history_session

    @property
    def last_count(self) -> int | None:
        """The last ``In[n]`` any turn used (the user's own cells come after it)."""
        counts = [t.last_count for t in self.turns if t.last_count is not None]
        return max(counts) if counts else None

    def agent_counts(self) -> set[int]:
        """Every ``In[n]`` that was a k2nb cell or an agent's call, not the user's own."""
        return {c for t in self.turns for c in (t.execution_count, *t.agent_counts)
                if c is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"turns": [t.to_dict() for t in self.turns]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conversation:
        return cls([Turn.from_dict(t) for t in data.get("turns") or []])


def head(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[… {len(text) - limit:,} more characters not kept in the conversation]"
