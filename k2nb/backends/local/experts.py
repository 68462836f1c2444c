"""Which experts the router chose: per-step counts per MoE layer, and a heat map of them.

A forward pre-hook on every experts module reads the ``top_k_index`` the router handed it — the
experts really used, after DeepSeek-V3's sigmoid scores, correction bias and group-limited top-k,
which ``output_router_logits`` does not show. The first forward of a step encodes the prompt; the
ones after it decode one generated token each, so the two are counted apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .quantize import Experts4bit, fused_expert_modules


@dataclass
class ExpertUsage:
    """Router choices of one model step; ``counts[layer][expert]`` = tokens routed there."""

    layers: list[str]  # module names, e.g. "model.layers.1.mlp.experts"
    prompt: list[list[int]]  # over the prompt tokens encoded in this step (after cache reuse)
    generated: list[list[int]]  # over the tokens the model generated in this step

    @property
    def num_experts(self) -> int:
        return len(self.generated[0]) if self.generated else 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expert_modules(model: nn.Module) -> list[tuple[str, nn.Module, int]]:
    """``(name, module, number of experts)`` of every routed-experts module, 4-bit or not."""
    found = []
    for name, module in model.named_modules():
        if isinstance(module, Experts4bit):
            found.append((name, module, module.num_experts))
    if not found:
        for name, module in fused_expert_modules(model):
            up = getattr(module, "gate_up_proj", None)
            found.append((name, module, (up if up is not None else module.up_proj).shape[0]))
    return found


class ExpertRecorder:
    """Counts router choices while attached; :meth:`start` / :meth:`finish` bracket one step."""

    def __init__(self, model: nn.Module):
        self.modules = expert_modules(model)
        self._counts: list[torch.Tensor | None] = []
        self._calls: list[int] = []
        self._handles = [
            module.register_forward_pre_hook(self._hook_for(i), with_kwargs=True)
            for i, (_, module, _) in enumerate(self.modules)
        ]
        self._active = False

    @property
    def active(self) -> bool:
        """Between :meth:`start` and :meth:`finish`."""
        return self._active

    def start(self) -> None:
        self._counts = [None] * len(self.modules)
        self._calls = [0] * len(self.modules)
        self._active = True

    def finish(self) -> ExpertUsage:
        self._active = False
        names = [name for name, _, _ in self.modules]
        return ExpertUsage(
            layers=names,
            prompt=[self._row(i, 0) for i in range(len(self.modules))],
            generated=[self._row(i, 1) for i in range(len(self.modules))],
        )

    def _row(self, layer: int, row: int) -> list[int]:
        counts = self._counts[layer]
        return counts[row].tolist() if counts is not None else [0] * self.modules[layer][2]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook_for(self, layer: int):
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            if not self._active:
                return
            index = args[1] if len(args) > 1 else kwargs.get("top_k_index")
            if index is None:
                return
            n = self.modules[layer][2]
            if self._counts[layer] is None:
                # Kept on the model's device: no host sync per decoded token.
                self._counts[layer] = torch.zeros(2, n, dtype=torch.long, device=index.device)
            chosen = index.reshape(-1)
            counts = torch.bincount(chosen[chosen < n].long(), minlength=n)
            self._counts[layer][0 if self._calls[layer] == 0 else 1] += counts
            self._calls[layer] += 1

        return hook


def expert_heatmap(
    usage: ExpertUsage | list[ExpertUsage],
    *,
    which: str = "generated",
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """A layers × experts heat map of router choices (one step, or the sum of several).

    ``which`` is ``"generated"`` (the tokens the model wrote) or ``"prompt"``. Returns the
    matplotlib Figure (which Jupyter displays); pass ``ax`` to draw into an existing one.
    """
    from matplotlib.figure import Figure

    steps = usage if isinstance(usage, list) else [usage]
    if not steps or not steps[0].layers:
        raise ValueError("no router choices recorded: is this model a mixture of experts?")
    grid = torch.tensor([getattr(s, which) for s in steps]).sum(0)
    if ax is None:
        fig = Figure(figsize=(min(2 + grid.shape[1] * 0.12, 12), 1 + grid.shape[0] * 0.35))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    image = ax.imshow(grid.numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_xlabel("expert")
    ax.set_ylabel("MoE layer")
    ax.set_yticks(range(grid.shape[0]), [_short(n) for n in steps[0].layers])
    if title is None:
        title = f"router choices, {which} tokens" + (
            f", {len(steps)} steps" if len(steps) > 1 else ""
        )
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="tokens")
    return fig


def _short(name: str) -> str:
    parts = name.split(".")
    numbers = [p for p in parts if p.isdigit()]
    return numbers[0] if numbers else name
