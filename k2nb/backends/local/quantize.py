"""Real 4-bit MoE experts, and the bytes that prove it (K2_PROTOCOL.md §5).

transformers 5 stores a MoE's experts as fused 3-D parameters (``gate_up_proj [E, 2I, H]``,
``down_proj [E, H, I]``); ``BitsAndBytesConfig(load_in_4bit=True)`` only replaces ``nn.Linear``, so
the experts — nearly all of the weights — silently stay in bf16. :func:`quantize_experts` replaces
each fused experts module by :class:`Experts4bit`, which keeps every expert's two matrices as
bitsandbytes 4-bit layers (NF4/FP4 codes plus block statistics) and computes only the experts the
router chose. :func:`parameter_bytes` measures what is really stored.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from typing import Any

import bitsandbytes as bnb
import torch
from torch import nn


def fused_expert_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``(name, module)`` of every experts module that keeps its weights as 3-D tensors."""
    for name, module in model.named_modules():
        up = getattr(module, "gate_up_proj", None)
        if up is None:
            up = getattr(module, "up_proj", None)
        down = getattr(module, "down_proj", None)
        if (
            isinstance(up, nn.Parameter)
            and isinstance(down, nn.Parameter)
            and up.dim() == down.dim() == 3
        ):
            yield name, module


def _linear4bit(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    quant_type: str,
    compute_dtype: torch.dtype,
    compress_statistics: bool,
) -> nn.Module:
    """A bitsandbytes 4-bit layer holding ``weight`` ([out, in]), quantized on its device now."""
    out_features, in_features = weight.shape
    layer = bnb.nn.Linear4bit(
        in_features,
        out_features,
        bias=bias is not None,
        compute_dtype=compute_dtype,
        compress_statistics=compress_statistics,
        quant_type=quant_type,
        device="meta",
    )
    layer.weight = bnb.nn.Params4bit(
        weight.detach().contiguous(),
        requires_grad=False,
        compress_statistics=compress_statistics,
        quant_type=quant_type,
        module=layer,
    ).to(weight.device)
    if bias is not None:
        layer.bias = nn.Parameter(bias.detach().to(compute_dtype), requires_grad=False)
    if weight.device.type == "cpu" and (out_features % 32 or in_features % 64):
        # The fused AVX512-BF16 CPU kernel needs these multiples; the generic path does not.
        layer.support_avx512bf16_for_cpu = False
    return layer


class Experts4bit(nn.Module):
    """A fused experts module with every expert stored as two 4-bit bitsandbytes layers.

    Same call as the module it replaces: ``(hidden_states [T, H], top_k_index [T, k],
    top_k_weights [T, k]) -> [T, H]``. Gating, activation and any post-expert norm are the original
    module's own (kept, without its weights, as ``self.source``), so any architecture built on
    transformers' experts interface computes the same function, only with 4-bit weights.
    """

    def __init__(
        self,
        source: nn.Module,
        *,
        quant_type: str = "nf4",
        compute_dtype: torch.dtype = torch.bfloat16,
        compress_statistics: bool = True,
    ):
        super().__init__()
        self.has_gate = getattr(source, "has_gate", hasattr(source, "gate_up_proj"))
        self.has_bias = getattr(source, "has_bias", False)
        self.has_post_expert_norm = getattr(source, "has_post_expert_norm", False)
        transposed = getattr(source, "is_transposed", False)
        up_name = "gate_up_proj" if self.has_gate else "up_proj"
        up, down = getattr(source, up_name), source.down_proj
        if transposed:
            up, down = up.transpose(1, 2), down.transpose(1, 2)
        up_bias = getattr(source, f"{up_name}_bias", None) if self.has_bias else None
        down_bias = getattr(source, "down_proj_bias", None) if self.has_bias else None
        self.num_experts = up.shape[0]
        options = dict(
            quant_type=quant_type,
            compute_dtype=compute_dtype,
            compress_statistics=compress_statistics,
        )
        self.up = nn.ModuleList(
            _linear4bit(up[e], None if up_bias is None else up_bias[e], **options)
            for e in range(self.num_experts)
        )
        self.down = nn.ModuleList(
            _linear4bit(down[e], None if down_bias is None else down_bias[e], **options)
            for e in range(self.num_experts)
        )
        for name in (up_name, "down_proj", f"{up_name}_bias", "down_proj_bias"):
            if isinstance(getattr(source, name, None), nn.Parameter):
                delattr(source, name)
        self.source = source

    def forward(
        self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
    ) -> torch.Tensor:
        out = torch.zeros_like(hidden_states)
        for expert in top_k_index.unique().tolist():
            if expert >= self.num_experts:  # expert-parallel sentinel
                continue
            token, slot = torch.where(top_k_index == expert)
            h = self.up[expert](hidden_states[token])
            h = self.source._apply_gate(h) if self.has_gate else self.source.act_fn(h)
            h = self.down[expert](h)
            if self.has_post_expert_norm:
                h = self.source.post_expert_norm(h)
            out.index_add_(0, token, (h * top_k_weights[token, slot, None]).to(out.dtype))
        return out


def quantize_experts(
    model: nn.Module,
    *,
    quant_type: str = "nf4",
    compute_dtype: torch.dtype = torch.bfloat16,
    compress_statistics: bool = True,
    progress: bool = False,
) -> int:
    """Replace every fused experts module of ``model`` by :class:`Experts4bit`, one at a time.

    Returns how many modules were replaced. Each module's bf16 weights are freed as soon as its
    4-bit copy exists, so the peak is the loaded model plus one layer's experts.
    """
    names = [name for name, _ in fused_expert_modules(model)]
    if progress and names:
        from tqdm.auto import tqdm

        names = tqdm(names, desc="4-bit experts", unit="layer", leave=False)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        source = getattr(parent, child)
        if any(p.device.type == "meta" for p in source.parameters()):
            raise RuntimeError(
                f"the experts of {name} were offloaded (not enough memory on the devices); "
                "free memory or pass a device_map that keeps every layer on a device"
            )
        setattr(
            parent,
            child,
            Experts4bit(
                source,
                quant_type=quant_type,
                compute_dtype=compute_dtype,
                compress_statistics=compress_statistics,
            ),
        )
        gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return len(names)


def parameter_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes of parameters and buffers by dtype, as stored after loading (tied tensors once).

    4-bit weights are stored packed two per byte, so they count under ``uint8``; their block
    statistics (absmax, and the nested statistics of double quantization) are counted too,
    under their own dtypes.
    """
    seen: set[tuple[int, int]] = set()
    sizes: Counter[str] = Counter()

    def add(tensor: torch.Tensor) -> None:
        key = (tensor.data_ptr(), tensor.numel())
        if tensor.device.type == "meta" or key in seen:
            return
        seen.add(key)
        sizes[str(tensor.dtype).removeprefix("torch.")] += tensor.numel() * tensor.element_size()

    for tensor in [*model.parameters(), *model.buffers()]:
        add(tensor)
        state = getattr(tensor, "quant_state", None)
        while state is not None:
            for stat in (state.absmax, getattr(state, "offset", None)):
                if isinstance(stat, torch.Tensor):
                    add(stat)
            state = getattr(state, "state2", None)
    return dict(sizes)


def checkpoint_bytes(path: Any, dtype: torch.dtype = torch.bfloat16) -> int:
    """Bytes the checkpoint's floating-point tensors take in ``dtype`` (the unquantized baseline)."""
    from pathlib import Path

    from safetensors import safe_open

    total = 0
    width = torch.empty((), dtype=dtype).element_size()
    for file in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(file), "pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                piece = f.get_slice(key)
                numel = 1
                for size in piece.get_shape():
                    numel *= size
                is_float = piece.get_dtype() in ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")
                total += numel * (width if is_float else int(piece.get_dtype()[1:]) // 8 or 1)
    return total
