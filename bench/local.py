"""Local backend benchmark: every number is a ratio against a baseline measured in the same run.

    .venv/bin/python bench/local.py             # CPU, a few minutes
    .venv/bin/python bench/local.py --quick     # smaller contexts, fewer tokens

Prints, for a random DeepSeek-V3-layout MoE (~40M parameters, 94% routed experts):
  1. parameter bytes after loading: 4-bit with 4-bit experts / bf16 checkpoint   (target <= 0.30)
     and plain bitsandbytes 4-bit (experts left in bf16) / bf16, the trap
  2. decode tokens/s: through k2nb's LocalBackend.stream / raw model.generate     (target >= 0.9)
     and 4-bit / bf16 raw generate
  3. step latency with KV-cache reuse vs re-encoding the whole prompt, at 2k and 8k tokens of
     context, a step being ~250 new prompt tokens + 32 generated: time to first token
     (target >= 5x at 8k) and the whole step
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from k2nb.core.messages import AssistantMessage, SystemMessage, ToolCall, ToolMessage, UserMessage
from k2nb.core.backend import ModelRequest
from k2nb.backends.local import LocalBackend
from k2nb.backends.local.loading import load_local_model
from k2nb.backends.local.quantize import checkpoint_bytes
from k2nb.testing.tiny_moe import CODE_TOOL, build_tiny_moe

TOOLS = [CODE_TOOL]


def line(label: str, value: str) -> None:
    print(f"  {label:<58} {value}", flush=True)


def bytes_section(path: Path) -> None:
    print("1. parameter bytes after loading (measured on the device)")
    bf16 = checkpoint_bytes(path)
    _, _, plain = load_local_model(
        str(path), quantization="nf4", quantize_experts=False, progress=False
    )
    _, _, full = load_local_model(str(path), quantization="nf4", progress=False)
    line("bf16 checkpoint", f"{bf16 / 2**20:8.1f} MiB")
    line(
        "bitsandbytes nf4, experts untouched (the trap)",
        f"{plain.total_bytes / 2**20:8.1f} MiB  ratio {plain.total_bytes / bf16:.3f}",
    )
    line(
        "k2nb nf4, experts 4-bit",
        f"{full.total_bytes / 2**20:8.1f} MiB  ratio {full.total_bytes / bf16:.3f}  (target <= 0.30)",
    )
    line(
        "  by dtype",
        ", ".join(f"{k} {v / 2**20:.2f} MiB" for k, v in sorted(full.parameter_bytes.items())),
    )


def timed_generate(model, ids: torch.Tensor, tokens: int) -> float:
    started = time.perf_counter()
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=tokens,
        min_new_tokens=tokens,
        do_sample=False,
        pad_token_id=0,
    )
    assert out.shape[1] - ids.shape[1] == tokens
    return tokens / (time.perf_counter() - started)


def decode_section(path: Path, tokens: int, repeats: int) -> None:
    print(f"2. decode speed, {tokens} tokens greedy, median of {repeats}")
    backend = LocalBackend(
        str(path), temperature=0, reuse_cache=False, record_experts=False, progress=False
    )
    backend.end_ids = [
        backend.lm.config.vocab_size - 1
    ]  # an id the tokenizer never produces: no early stop
    request = ModelRequest(
        [SystemMessage("You are helpful."), UserMessage("Write a long story.")],
        TOOLS,
        max_tokens=tokens,
        temperature=0,
    )
    ids = torch.tensor([backend.render(request)[0]])
    raw, ours = [], []
    timed_generate(backend.lm, ids, 4)  # warm-up (bitsandbytes repacks CPU weights on first use)
    for _ in range(repeats):
        raw.append(timed_generate(backend.lm, ids, tokens))
        started = time.perf_counter()
        items = list(backend.stream(request))
        assert items[-1].usage.completion_tokens == tokens
        ours.append(tokens / (time.perf_counter() - started))
    raw_s, ours_s = statistics.median(raw), statistics.median(ours)
    line("raw model.generate (4-bit)", f"{raw_s:8.1f} tok/s")
    line(
        "k2nb LocalBackend.stream (4-bit, thread + parser)",
        f"{ours_s:8.1f} tok/s  ratio {ours_s / raw_s:.2f}  (target >= 0.9)",
    )
    bf16, _, _ = load_local_model(str(path), quantization=None, progress=False)
    timed_generate(bf16, ids, 4)
    bf16_s = statistics.median(timed_generate(bf16, ids, tokens) for _ in range(repeats))
    line("raw model.generate (bf16)", f"{bf16_s:8.1f} tok/s  4-bit/bf16 ratio {raw_s / bf16_s:.2f}")


def long_history(context: int, tokenizer) -> tuple[list, list]:
    """A conversation of about ``context`` tokens, and the next step's extra messages."""
    filler = "The sales of region north grew by four percent in March while south fell. "
    per = len(tokenizer(filler, add_special_tokens=False)["input_ids"])
    observation = filler * max(1, (context - 200) // per)
    call = ToolCall("functions.code_interpreter:0", "code_interpreter", '{"code": "print(df)"}')
    history = [
        SystemMessage("You are helpful."),
        UserMessage("Summarise the data."),
        AssistantMessage("", "Look at the data.", [call]),
        ToolMessage(call.id, call.name, observation),
    ]
    call2 = ToolCall(
        "functions.code_interpreter:1", "code_interpreter", '{"code": "df.describe()"}'
    )
    more = [
        AssistantMessage("", "Now the summary.", [call2]),
        ToolMessage(call2.id, call2.name, filler * max(1, 200 // per)),
    ]
    return history, more


def cache_section(path: Path, contexts: list[int], repeats: int) -> None:
    print("3. one agent step (~250 new prompt tokens + 32 generated): KV reuse vs re-encoding")
    reuse = LocalBackend(str(path), temperature=0, record_experts=False, progress=False)
    fresh = LocalBackend(
        str(path), temperature=0, reuse_cache=False, record_experts=False, progress=False
    )
    for backend in (reuse, fresh):
        backend.end_ids = [backend.lm.config.vocab_size - 1]
    for context in contexts:
        history, more = long_history(context, reuse.tokenizer)
        step = {"reuse": [], "fresh": []}
        first_token = {"reuse": [], "fresh": []}
        for _ in range(repeats):
            for name, backend in (("reuse", reuse), ("fresh", fresh)):
                backend.reset_cache()
                list(backend.stream(ModelRequest(history, TOOLS, max_tokens=32, temperature=0)))
                started = time.perf_counter()
                list(
                    backend.stream(
                        ModelRequest(history + more, TOOLS, max_tokens=32, temperature=0)
                    )
                )
                step[name].append(time.perf_counter() - started)
                first_token[name].append(backend.step_stats[-1].prefill_s)
        stats = reuse.step_stats[-1]
        ttft = statistics.median(first_token["fresh"]) / statistics.median(first_token["reuse"])
        with_cache, without = statistics.median(step["reuse"]), statistics.median(step["fresh"])
        print(
            f"  context {stats.prompt_tokens} tokens ({stats.encoded_tokens} encoded with reuse):"
        )
        line(
            "    time to first token (prefill)",
            f"{statistics.median(first_token['reuse']):6.2f} s vs {statistics.median(first_token['fresh']):6.2f} s"
            f"  speed-up {ttft:.1f}x",
        )
        line(
            "    whole step (prefill + 32 tokens)",
            f"{with_cache:6.2f} s vs {without:6.2f} s  speed-up {without / with_cache:.1f}x",
        )
    print(
        "  (decode itself gets slower with context in transformers' MLA, which re-expands the whole\n"
        "   cached latent per token; that part is the same with or without reuse)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="contexts 1k/2k, 32 tokens, 1 repeat")
    parser.add_argument("--preset", default="bench", help="tiny_moe preset (default: bench)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared machine, OpenMP threads that wait "
        "for a descheduled sibling make per-token times erratic)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokens, repeats, contexts = (32, 1, [1000, 2000]) if args.quick else (64, 3, [2000, 8000])
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, device cpu, threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_moe(Path(tmp) / "moe", preset=args.preset)
        bytes_section(path)
        decode_section(path, tokens, repeats)
        cache_section(path, contexts, repeats)


if __name__ == "__main__":
    main()
