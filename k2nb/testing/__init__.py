"""Test helpers for k2nb and for users testing their notebooks offline.

``ScriptedServer`` is a strict Moonshot-like OpenAI-compatible server on loopback that plays a
script of :class:`Reply` and :class:`Fail` items.
"""

from .server import Call, Fail, Reply, ScriptedServer

__all__ = ["Call", "Fail", "Reply", "ScriptedServer"]
