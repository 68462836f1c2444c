"""4-bit really means 4-bit: the MoE experts are quantized too, measured in bytes on the device.

K2_PROTOCOL.md §5: bitsandbytes only replaces nn.Linear, so a MoE loaded with
``BitsAndBytesConfig(load_in_4bit=True)`` keeps its fused 3-D experts in bf16.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

torch = pytest.importorskip(
    "torch", reason="the local extra (torch, transformers, bitsandbytes) is not installed"
)
bnb = pytest.importorskip("bitsandbytes", reason="the local extra is not installed")

from k2nb.backends.local.loading import load_local_model
from k2nb.backends.local.quantize import (
    Experts4bit,
    checkpoint_bytes,
    parameter_bytes,
    quantize_experts,
)


def test_moe_in_4bit_is_at_most_030_of_bf16(bench_moe: Path) -> None:
    bf16 = checkpoint_bytes(bench_moe)
    model, _, report = load_local_model(str(bench_moe), quantization="nf4", progress=False)
    assert report.experts_quantized == 3  # layer 0 is dense, as in DeepSeek-V3
    assert report.total_bytes == sum(parameter_bytes(model).values())
    assert report.total_bytes <= 0.30 * bf16, report.summary()
    # What is left in bf16 is embeddings, norms and head, not experts.
    assert report.parameter_bytes.get("bfloat16", 0) < 0.05 * bf16


def test_plain_bitsandbytes_leaves_the_experts_in_bf16(bench_moe: Path) -> None:
    """The trap this backend exists to avoid, kept as a test so a fixed upstream is noticed."""
    _, _, report = load_local_model(
        str(bench_moe), quantization="nf4", quantize_experts=False, progress=False
    )
    assert report.total_bytes > 0.9 * checkpoint_bytes(bench_moe)


def test_4bit_experts_compute_what_their_dequantized_weights_compute(tiny_moe: Path) -> None:
    from transformers import AutoModelForCausalLM

    path = tiny_moe
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    source = model.model.layers[0].mlp.experts
    reference = copy.deepcopy(source)
    quantized = Experts4bit(
        source, quant_type="nf4", compute_dtype=torch.float32, compress_statistics=True
    )
    assert not any(p.dim() == 3 for p in quantized.parameters())  # no fused bf16 copy left behind
    with torch.no_grad():  # give the reference exactly the weights the 4-bit layers hold
        for e in range(quantized.num_experts):
            for layer, fused in (
                (quantized.up[e], reference.gate_up_proj),
                (quantized.down[e], reference.down_proj),
            ):
                fused[e] = bnb.functional.dequantize_4bit(
                    layer.weight.data, layer.weight.quant_state
                )
    hidden = torch.randn(7, model.config.hidden_size)
    index = torch.randint(0, quantized.num_experts, (7, 4))
    weights = torch.rand(7, 4)
    with torch.no_grad():
        got = quantized(hidden, index, weights)
        want = reference(hidden, index, weights)
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4)


def test_fp4_and_fp32_compute_are_configurable(tiny_moe: Path) -> None:
    path = tiny_moe
    model, _, _ = load_local_model(
        str(path), quantization="fp4", compute_dtype="float32", progress=False
    )
    layer = next(m for m in model.modules() if isinstance(m, Experts4bit)).up[0]
    assert layer.weight.quant_type == "fp4" and layer.compute_dtype == torch.float32
    assert quantize_experts(model) == 0  # nothing fused is left to convert


@pytest.mark.gpu
def test_on_a_gpu_the_moe_loads_4bit_on_the_device_and_generates(bench_moe: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here; runs on a lent GPU machine")
    model, tokenizer, report = load_local_model(str(bench_moe), quantization="nf4", progress=False)
    assert report.devices == ["cuda:0"]
    assert report.total_bytes <= 0.30 * checkpoint_bytes(bench_moe), report.summary()
    ids = torch.tensor([[5, 6, 7, 8]], device="cuda")
    out = model.generate(ids, max_new_tokens=16, min_new_tokens=16, do_sample=False, pad_token_id=0)
    assert out.shape[1] == 20
