"""Load a causal LM for the local backend: 4-bit through bitsandbytes, experts included.

Everything heavy is imported inside functions, so ``import k2nb`` stays light for API users and a
missing ``local`` extra becomes one actionable line instead of a traceback.
"""

from __future__ import annotations

import importlib.util
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.backend import BackendError

LOCAL_STACK = ("torch", "transformers", "accelerate", "bitsandbytes")
QUANTIZATIONS = ("nf4", "fp4", None)


def require_local_stack() -> None:
    """Raise a one-line :class:`BackendError` naming what to install when the extra is missing."""
    missing = [name for name in LOCAL_STACK if importlib.util.find_spec(name) is None]
    if missing:
        raise BackendError(
            f"The local backend needs {', '.join(missing)}: pip install 'k2nb[local]' "
            "(on a CPU-only machine install torch first from the CPU wheel index)."
        )


@dataclass
class LoadReport:
    """What loading produced, measured on the device: bytes of parameters by dtype."""

    parameter_bytes: dict[str, int]
    quantization: str | None
    experts_quantized: int  # fused experts modules converted to 4-bit
    devices: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total_bytes(self) -> int:
        return sum(self.parameter_bytes.values())

    def summary(self) -> str:
        parts = ", ".join(
            f"{k} {v / 2**20:.1f} MiB" for k, v in sorted(self.parameter_bytes.items())
        )
        return f"{self.total_bytes / 2**20:.1f} MiB of parameters ({parts}) on {', '.join(self.devices)}"


def _looks_like_path(model: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else is meant as a folder."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model


def resolve_model(model: str) -> str:
    """A local folder (expanded), or a hub id left as is; a clear error for a missing folder."""
    expanded = Path(model).expanduser()
    if expanded.is_dir():
        if not (expanded / "config.json").exists() and not any(expanded.glob("*.gguf")):
            raise BackendError(
                f"{expanded} has no config.json: point --model at a transformers model folder."
            )
        return str(expanded)
    if _looks_like_path(model):
        raise BackendError(
            f"No model folder at {expanded}: pass the folder that holds config.json and the weights "
            "(or a hub id such as moonshotai/Moonlight-16B-A3B-Instruct on a machine with internet)."
        )
    return model


def load_local_model(
    model: str,
    *,
    quantization: str | None = "nf4",
    compute_dtype: str = "bfloat16",
    double_quant: bool = True,
    quantize_experts: bool = True,
    device_map: Any = "auto",
    trust_remote_code: bool = False,
    gguf_file: str | None = None,
    progress: bool = True,
) -> tuple[Any, Any, LoadReport]:
    """``(model, tokenizer, report)`` for a folder or hub id, in 4-bit unless ``quantization=None``.

    ``quantization`` is bitsandbytes' 4-bit type (``"nf4"`` or ``"fp4"``); linear layers are
    quantized while loading, the fused MoE experts right after (bitsandbytes skips them).
    ``compute_dtype`` is what the 4-bit layers compute in, and the dtype of the rest.
    """
    import time

    require_local_stack()
    if quantization not in QUANTIZATIONS:
        raise BackendError(f"quantization must be 'nf4', 'fp4' or None, not {quantization!r}.")
    import torch

    from .quantize import parameter_bytes
    from .quantize import quantize_experts as convert_experts

    source = resolve_model(model)
    dtype = getattr(torch, compute_dtype, None)
    if not isinstance(dtype, torch.dtype):
        raise BackendError(
            f"compute_dtype {compute_dtype!r} is not a torch dtype (try 'bfloat16')."
        )
    started = time.monotonic()
    lm, tokenizer = _from_pretrained(model, source, dtype, quantization, double_quant,
                                     device_map, trust_remote_code, gguf_file)
    converted = 0
    if quantization and quantize_experts:
        converted = convert_experts(
            lm,
            quant_type=quantization,
            compute_dtype=dtype,
            compress_statistics=double_quant,
            progress=progress,
        )
    lm.eval()
    _prepare_cpu_layers(lm)
    devices = sorted({str(p.device) for p in lm.parameters()})
    report = LoadReport(
        parameter_bytes(lm), quantization, converted, devices, time.monotonic() - started
    )
    return lm, tokenizer, report


def _from_pretrained(model: str, source: str, dtype: Any, quantization: str | None,
                     double_quant: bool, device_map: Any, trust_remote_code: bool,
                     gguf_file: str | None) -> tuple[Any, Any]:
    """The transformers model (linear layers in 4-bit) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    kwargs: dict[str, Any] = dict(
        dtype=dtype, device_map=device_map, trust_remote_code=trust_remote_code
    )
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    if quantization:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quantization,
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=double_quant,
            llm_int8_skip_modules=_keep_unquantized(source, trust_remote_code, gguf_file),
        )
    scratch = None
    try:
        if gguf_file and quantization:
            # transformers will not quantize while reading GGUF: dequantize to a folder first.
            scratch = tempfile.TemporaryDirectory(prefix="k2nb-gguf-")
            source = str(gguf_to_folder(source, gguf_file, scratch.name))
            kwargs.pop("gguf_file")
        from_gguf = {"gguf_file": kwargs["gguf_file"]} if "gguf_file" in kwargs else {}
        tokenizer = AutoTokenizer.from_pretrained(
            source, trust_remote_code=trust_remote_code, **from_gguf
        )
        return AutoModelForCausalLM.from_pretrained(source, **kwargs), tokenizer
    except OSError as error:
        raise BackendError(
            f"Could not load {model!r}: {str(error).splitlines()[0]} "
            "(no hub access here? download the model elsewhere and pass its folder)."
        ) from error
    finally:
        if scratch is not None:
            scratch.cleanup()


def gguf_to_folder(folder: str, gguf_file: str, dest: str | Path) -> Path:
    """Dequantize a GGUF model into a transformers folder (bf16) that loads in ~0.1 s next time."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lm = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    lm.hf_quantizer = None  # the weights are plain tensors now; do not save them as "gguf"
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    lm.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return Path(dest)


def _keep_unquantized(
    source: str, trust_remote_code: bool, gguf_file: str | None
) -> list[str] | None:
    """Modules to leave in the compute dtype; ``None`` keeps bitsandbytes' default (the head).

    Multi-head latent attention (DeepSeek-V3, Kimi, Moonlight) caches a compressed latent and
    re-expands the *whole* cache through ``kv_b_proj`` at every generated token; in 4-bit that
    layer would be dequantized for thousands of rows per token. It is a fraction of a percent of
    the weights, so it stays unquantized (the list replaces the default, so it names the head too).
    """
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(
            source,
            trust_remote_code=trust_remote_code,
            **({"gguf_file": gguf_file} if gguf_file else {}),
        )
    except (OSError, ValueError):
        return None
    if getattr(config, "kv_lora_rank", None):
        return ["lm_head", "kv_b_proj"]
    return None


def _prepare_cpu_layers(lm: Any) -> None:
    """Make every 4-bit layer on the CPU ready before the first step.

    bitsandbytes' fused AVX512-BF16 CPU kernel needs in % 64 == 0 and out % 32 == 0 (other layers
    take the portable path), and it repacks each layer's weights on that layer's first forward —
    with a MoE, at the first use of each expert, which would make the first steps erratically slow.
    One tiny forward per layer does the repacking now.
    """
    import bitsandbytes as bnb
    import torch

    with torch.no_grad():
        for module in lm.modules():
            if not isinstance(module, bnb.nn.Linear4bit) or module.weight.device.type != "cpu":
                continue
            if module.out_features % 32 or module.in_features % 64:
                module.support_avx512bf16_for_cpu = False
            elif module.support_avx512bf16_for_cpu:
                dtype = module.compute_dtype or torch.bfloat16
                module(torch.zeros(1, module.in_features, dtype=dtype))
