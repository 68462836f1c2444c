"""Shared helpers of the test_ui_* files: a recording comm and a fake clock for LiveView."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import comm
from comm.base_comm import BaseComm

from k2nb.ui import widgets as ui_widgets
from k2nb.ui.live import LiveView
from k2nb.ui.widgets import NEWEST_FIRST, segment_text


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Recorder:
    """Every comm message and every display the view sent, in order."""

    comms: list[tuple[str, str, dict]] = field(default_factory=list)
    displays: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[tuple[str, float]] = field(default_factory=list)  # (kind, clock time)
    clock: Any = None

    def publish(self, bundle: dict, display_id: str, update: bool, metadata: dict) -> None:
        self.displays.append(
            {"bundle": bundle, "display_id": display_id, "update": update, "metadata": metadata}
        )
        self.timeline.append(("display", self.clock() if self.clock else 0.0))

    def comm_messages(self) -> list[tuple[str, str, dict]]:
        return self.comms

    def comm_bytes(self) -> list[int]:
        return [len(json.dumps(data)) for _, _, data in self.comms]

    def outputs(self) -> list[dict]:
        """The cell's outputs as a frontend keeps them (updates applied in place)."""
        outputs: list[dict] = []
        for d in self.displays:
            if d["update"]:
                for out in outputs:
                    if out["display_id"] == d["display_id"]:
                        out["bundle"] = d["bundle"]
            else:
                outputs.append(dict(d))
        return outputs

    def widget_state(self) -> dict[str, dict]:
        models: dict[str, dict] = {}
        for kind, comm_id, data in self.comms:
            if kind == "comm_open":
                models[comm_id] = dict(data["state"])
            elif kind == "comm_msg":
                models[comm_id].update(data.get("state", {}))
            elif kind == "comm_close":
                models[comm_id]["_closed"] = True
        return models

    def open_models(self) -> list[str]:
        return [k for k, v in self.widget_state().items() if not v.get("_closed")]

    def panel_text(self) -> str:
        """The streamed text in the (last) thinking panel's widgets, as the browser has it."""
        state = self.widget_state()
        boxes = [s for s in state.values() if s.get("_model_name") == "VBoxModel"]
        assert boxes, "no streaming panel was ever opened"
        return "".join(segment_text(state[i]["value"]) for i in segment_order(boxes[0]))


def segment_order(box_state: dict) -> list[str]:
    """The model ids of a streaming box's segments, oldest first."""
    order = [c.replace("IPY_MODEL_", "") for c in box_state["children"]]
    return order[::-1] if NEWEST_FIRST in box_state.get("_dom_classes", ()) else order


def install(monkeypatch, clock: Any = None) -> Recorder:
    """Route widget comms into a Recorder (and start without the shared layout/style)."""
    recorder = Recorder(clock=clock)

    class RecordingComm(BaseComm):
        def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
            recorder.comms.append((msg_type, self.comm_id, data or {}))
            recorder.timeline.append(("comm", clock() if clock else 0.0))

    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: RecordingComm(*a, **k))
    monkeypatch.setattr(ui_widgets, "_shared", {})
    return recorder


def make_live(monkeypatch, **kwargs: Any) -> tuple[LiveView, Recorder, FakeClock]:
    clock = FakeClock()
    recorder = install(monkeypatch, clock)
    view = LiveView(30, clock=clock, publish=recorder.publish, **kwargs)
    return view, recorder, clock


def thinking_plain(bundle: dict) -> str:
    """The thinking text held by a static thinking bundle's text/plain."""
    lines = bundle["text/plain"].split("\n")[1:]
    return "\n".join(line[len("  │ ") :] for line in lines)
