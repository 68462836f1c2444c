"""Split streamed text on fixed markers, holding back a tail that may be the start of a marker.

Special tokens usually arrive whole, but an incremental detokenizer may deliver ``<thi`` and
``nk>`` in two pieces (and plain-text markers such as ``<tool_call>`` often do), so a parser must
never act on a prefix it has not seen complete.
"""

from __future__ import annotations

from collections.abc import Iterable


class MarkerScanner:
    """Feed text, get ``(piece, is_marker)`` pairs in order; :meth:`flush` releases the held tail."""

    def __init__(self, markers: Iterable[str]):
        # Longest first, so that of two markers starting at one place the longer one wins.
        self.markers = sorted(set(markers), key=len, reverse=True)
        self._buffer = ""

    def feed(self, text: str) -> list[tuple[str, bool]]:
        self._buffer += text
        out: list[tuple[str, bool]] = []
        while True:
            hit = self._first_marker(self._buffer)
            if hit is None:
                break
            start, marker = hit
            if start:
                out.append((self._buffer[:start], False))
            out.append((marker, True))
            self._buffer = self._buffer[start + len(marker) :]
        keep = self._partial_tail(self._buffer)
        if len(self._buffer) > keep:
            out.append((self._buffer[: len(self._buffer) - keep], False))
            self._buffer = self._buffer[len(self._buffer) - keep :]
        return out

    def flush(self) -> list[tuple[str, bool]]:
        rest, self._buffer = self._buffer, ""
        return [(rest, False)] if rest else []

    def _first_marker(self, text: str) -> tuple[int, str] | None:
        best: tuple[int, str] | None = None
        for marker in self.markers:
            at = text.find(marker)
            if at >= 0 and (best is None or at < best[0]):
                best = (at, marker)
        return best

    def _partial_tail(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that is a proper prefix of some marker."""
        longest = 0
        for marker in self.markers:
            for size in range(min(len(marker) - 1, len(text)), longest, -1):
                if text.endswith(marker[:size]):
                    longest = size
                    break
        return longest
