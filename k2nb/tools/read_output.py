"""``read_output``: lets the model page through an output that was shortened for it."""

from __future__ import annotations

from typing import Any

import pydantic

from .observation import OutputStore
from ..core.tool import BaseTool, ToolOutcome
from .schema import model_parameters


class ReadOutputArguments(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    call_id: str = pydantic.Field(description="The id of the tool call whose output to read.")
    offset: int = pydantic.Field(0, ge=0, description="Character offset to start from.")
    length: int = pydantic.Field(4000, ge=1, le=20000, description="How many characters.")


class ReadOutput(BaseTool):
    name = "read_output"
    description = (
        "Read more of a tool call's output that was shortened for you (marked "
        "'[… N chars omitted …]'), by call id and character offset."
    )
    arguments = ReadOutputArguments

    def __init__(self, store: OutputStore):
        self.store = store
        self.parameters = model_parameters(ReadOutputArguments)

    def invoke(self, call_id: str, values: dict[str, Any]) -> ToolOutcome:
        return ToolOutcome(self.store.page(values["call_id"], values["offset"], values["length"]))
