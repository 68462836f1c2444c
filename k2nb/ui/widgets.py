"""The few widgets the live view streams into, built so that no update re-sends old text.

Every ``value=`` assignment is one comm message carrying the whole value, so a single growing
text widget is quadratic. :class:`StreamingText` is a column of HTML segments instead: an update
re-sends only the last, short segment; once that segment is long, a new one starts (at a line
break, so a line never straddles two segments). The Output widget is no alternative: while it
captures, JupyterLab sends the whole captured output list back to the kernel on every message.
"""

from __future__ import annotations

import html

from ipywidgets import HTML, Accordion, Layout, VBox, Widget
from ipywidgets.widgets.widget_string import HTMLStyle

SEGMENT_CHARS = 2048  # above this, a segment is sealed and a new one started
_HARD_LIMIT = 8  # a text with no line breaks is cut anyway past this many segment lengths

THINKING_CSS = "white-space:pre-wrap;font-size:0.9em;opacity:0.75;line-height:1.4"
CONTENT_CSS = "white-space:pre-wrap;line-height:1.4"

NEWEST_FIRST = "k2nb-newest-first"  # DOM class of a box whose children are newest first

_shared: dict[str, Widget] = {}


def _shared_widget(name: str, factory: type) -> Widget:
    # One Layout and one HTMLStyle for every widget we make: ipywidgets does not close a
    # widget's layout with it, so per-widget layouts would leak a comm each.
    widget = _shared.get(name)
    if widget is None or widget.comm is None:
        widget = _shared[name] = factory()
    return widget


def _shared_missing(names: tuple[str, ...] = ("layout", "html_style")) -> int:
    return sum(1 for name in names if _shared.get(name) is None or _shared[name].comm is None)


def opening_cost(widgets: int, bounded: bool = False) -> int:
    """Comm messages to open ``widgets`` new widgets and later close them (shared ones included)."""
    names = ("layout", "html_style", "panel_layout") if bounded else ("layout", "html_style")
    return _shared_missing(names) + 2 * widgets


def shared_layout() -> Layout:
    return _shared_widget("layout", _tight_layout)  # type: ignore[return-value]


def _tight_layout() -> Layout:
    return Layout(margin="0px")  # segments sit flush: the text reads as one


def panel_layout() -> Layout:
    """A bounded box that scrolls and stays pinned to its newest line while text arrives."""
    return _shared_widget("panel_layout", _panel_layout)  # type: ignore[return-value]


def _panel_layout() -> Layout:
    # column-reverse makes the browser anchor the scroll at the bottom without any script;
    # the children are given newest first to read top to bottom.
    return Layout(max_height="26em", overflow="auto", flex_flow="column-reverse", margin="0px")


def shared_html_style() -> HTMLStyle:
    return _shared_widget("html_style", HTMLStyle)  # type: ignore[return-value]


def segment_html(text: str, css: str) -> str:
    return f'<div class="k2nb-text" style="{css}">{html.escape(text)}</div>'


def segment_text(value: str) -> str:
    """The text held by a segment's HTML value (inverse of :func:`segment_html`)."""
    start = value.index(">") + 1
    return html.unescape(value[start : value.rindex("</div>")])


class StreamingText:
    """Text that grows by appends, shown as a column of HTML segments."""

    def __init__(
        self, text: str, css: str, segment_chars: int = SEGMENT_CHARS, bounded: bool = False
    ) -> None:
        self._css = css
        self._limit = segment_chars
        self._bounded = bounded
        missing = opening_cost(0, bounded)
        self._texts = [text]
        self._segments = [self._segment(text)]
        self.box = VBox(self._segments, layout=panel_layout() if bounded else shared_layout())
        if bounded:
            self.box.add_class(NEWEST_FIRST)
        self.opened = missing + 2  # comm_open messages sent by construction

    def _segment(self, text: str) -> HTML:
        return HTML(
            segment_html(text, self._css), layout=shared_layout(), style=shared_html_style()
        )

    @property
    def text(self) -> str:
        """Everything sent to the browser so far."""
        return "".join(self._texts)

    @property
    def widget_count(self) -> int:
        return len(self._segments) + 1

    def _cut(self, text: str) -> int | None:
        """Where a new segment starts in current + text, or None to keep one segment."""
        current = self._texts[-1]
        if len(current) <= max(self._limit, len(text)):
            # re-sending the current segment costs at most as much as the new text, or one
            # segment length: linear in the text overall
            return None
        cut = (current + text).rfind("\n") + 1
        if cut == 0:
            if len(current) + len(text) < _HARD_LIMIT * self._limit:
                return None
            cut = len(current)
        return cut

    def append_cost(self, text: str) -> int:
        """Comm messages :meth:`append` will take, counting the close of a new segment."""
        cut = self._cut(text)
        if cut is None:
            return 1
        return 3 + (cut != len(self._texts[-1]))

    def append(self, text: str) -> int:
        """Show ``text`` after what is there; returns the number of comm messages sent."""
        current = self._texts[-1]
        cut = self._cut(text)
        if cut is None:
            self._set_last(current + text)
            return 1
        combined = current + text
        sent = 0
        if cut != len(current):
            self._set_last(combined[:cut])
            sent += 1
        rest = combined[cut:]
        self._texts.append(rest)
        self._segments.append(self._segment(rest))
        order = reversed(self._segments) if self._bounded else self._segments
        self.box.children = tuple(order)
        return sent + 2

    def _set_last(self, text: str) -> None:
        self._texts[-1] = text
        self._segments[-1].value = segment_html(text, self._css)

    def close(self) -> int:
        """Close every widget; returns the number of comm messages sent."""
        for segment in self._segments:
            segment.close()
        self.box.close()
        return len(self._segments) + 1


class ThinkingPanel:
    """A collapsible panel (open while streaming) around a step's thinking."""

    def __init__(self, title: str, text: str, segment_chars: int = SEGMENT_CHARS) -> None:
        self.stream = StreamingText(text, THINKING_CSS, segment_chars, bounded=True)
        self.accordion = Accordion(
            children=[self.stream.box], titles=(title,), selected_index=0, layout=shared_layout()
        )
        self.title = title

    @property
    def root(self) -> Widget:
        return self.accordion

    @property
    def widget_count(self) -> int:
        return self.stream.widget_count + 1

    @property
    def opened(self) -> int:
        return self.stream.opened + 1

    def append_cost(self, text: str) -> int:
        return self.stream.append_cost(text)

    def append(self, text: str) -> int:
        return self.stream.append(text)

    def set_title(self, title: str) -> int:
        if title == self.title:
            return 0
        self.title = title
        self.accordion.titles = (title,)
        return 1

    def close(self) -> int:
        sent = self.stream.close()
        self.accordion.close()
        return sent + 1


class ContentStream:
    """The model's visible text while it streams."""

    def __init__(self, text: str, segment_chars: int = SEGMENT_CHARS) -> None:
        self.stream = StreamingText(text, CONTENT_CSS, segment_chars)

    @property
    def root(self) -> Widget:
        return self.stream.box

    @property
    def widget_count(self) -> int:
        return self.stream.widget_count

    @property
    def opened(self) -> int:
        return self.stream.opened

    def append_cost(self, text: str) -> int:
        return self.stream.append_cost(text)

    def append(self, text: str) -> int:
        return self.stream.append(text)

    def set_title(self, title: str) -> int:
        return 0

    def close(self) -> int:
        return self.stream.close()


def widget_view_bundle(widget: Widget, text: str) -> dict[str, object]:
    """The display bundle of a widget, with a short text/plain instead of the widget's repr."""
    return {
        "application/vnd.jupyter.widget-view+json": {
            "version_major": 2,
            "version_minor": 0,
            "model_id": widget.model_id,
        },
        "text/plain": text,
    }
