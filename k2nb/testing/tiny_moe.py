"""Tiny DeepSeek-V3-layout MoE checkpoints built offline, for tests, benchmarks and demos.

:func:`build_tiny_moe` writes a folder that ``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` load like any hub checkpoint: random weights (every layer's
dimensions multiples of 64, so bitsandbytes' 4-bit CPU kernels accept them), a byte-level BPE
tokenizer trained on the spot with the K2 special tokens, and a K2 chat template that renders
tools. :func:`train_tool_caller` then trains such a model for a few seconds on K2-format
transcripts so that it really writes a given tool call for a given prompt.

Needs the ``local`` extra (torch, transformers, tokenizers).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.messages import AssistantMessage, Message, SystemMessage, ToolMessage, UserMessage
from ..backends.local.formats.k2 import (
    K2_CHAT_TEMPLATE,
    SPECIAL_TOKENS,
    K2Format,
    render_assistant_turn,
)

#: Model sizes. ``tiny`` builds in about a second; ``bench`` is ~94% experts, like real MoEs, so
#: its 4-bit/bf16 byte ratio is meaningful.
#: A minimal code_interpreter declaration, as tests and benchmarks send it to a local model.
CODE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "code_interpreter",
        "description": "Run Python in the user's kernel.",
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string"}},
            "required": ["code"],
        },
    },
}

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        moe_intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        n_routed_experts=16,
        num_experts_per_tok=4,
        n_group=4,
        topk_group=2,
        first_k_dense_replace=0,
    ),
    "small": dict(
        hidden_size=128,
        intermediate_size=256,
        moe_intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        n_routed_experts=16,
        num_experts_per_tok=4,
        n_group=4,
        topk_group=2,
        first_k_dense_replace=0,
    ),
    "bench": dict(
        hidden_size=256,
        intermediate_size=512,
        moe_intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        n_routed_experts=64,
        num_experts_per_tok=6,
        n_group=8,
        topk_group=4,
        first_k_dense_replace=1,
    ),
}

_CORPUS = """\
The data frame has three columns: region, month and sales. Growth slowed in the north.
import pandas as pd
df = pd.read_csv("sales.csv")
print(df.groupby("region")["sales"].sum())
x = 6 * 7
print(x)
Let me compute the answer with Python. The result is 42. I will plot the totals.
def mean(values):
    return sum(values) / len(values)
for i in range(10):
    print(i, i * i)
You are a helpful assistant that thinks step by step and uses tools when they help.
{"type": "function", "function": {"name": "code_interpreter", "description": "Run Python code",
 "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}}}
"""


@dataclass
class Example:
    """One training conversation: the context and the assistant turn the model must write."""

    messages: list[Message]
    reply: AssistantMessage
    tools: list[dict[str, Any]] = field(default_factory=list)


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 1024) -> Any:
    """A byte-level BPE tokenizer with the K2 special tokens and chat template (≈ 0.05 s)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[*SPECIAL_TOKENS, "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(list(corpus), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        chat_template=K2_CHAT_TEMPLATE,
    )


def build_tiny_moe(
    path: str | Path,
    *,
    preset: str = "tiny",
    seed: int = 0,
    corpus: Iterable[str] = (),
    vocab_size: int = 1024,
    dtype: str = "bfloat16",
) -> Path:
    """Write a random DeepSeek-V3-layout MoE and its K2 tokenizer to ``path``; return the path."""
    import torch
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM, GenerationConfig

    path = Path(path)
    tokenizer = train_tokenizer([_CORPUS, *corpus], vocab_size=vocab_size)
    vocab = -(-len(tokenizer) // 64) * 64  # embedding rows a multiple of 64
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = DeepseekV3Config(
        vocab_size=vocab,
        n_shared_experts=1,
        kv_lora_rank=64,
        q_lora_rank=None,
        qk_rope_head_dim=32,
        qk_nope_head_dim=32,
        v_head_dim=64,
        max_position_embeddings=16384,
        num_mtp_layers=0,
        bos_token_id=None,
        eos_token_id=end_of_turn,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        **PRESETS[preset],
    )
    torch.manual_seed(seed)
    model = DeepseekV3ForCausalLM(config).to(getattr(torch, dtype))
    model.generation_config = GenerationConfig(
        eos_token_id=end_of_turn, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def tool_call_reply(
    name: str,
    arguments: dict[str, Any],
    *,
    reasoning: str = "",
    content: str = "",
    call_id: str | None = None,
) -> AssistantMessage:
    """An assistant turn with one K2-native tool call (id ``functions.NAME:0`` by default)."""
    from ..core.messages import ToolCall

    call = ToolCall(call_id or f"functions.{name}:0", name, json.dumps(arguments))
    return AssistantMessage(content=content, reasoning=reasoning, tool_calls=[call])


def train_tool_caller(
    path: str | Path,
    examples: list[Example],
    *,
    seconds: float = 120.0,
    max_steps: int = 400,
    learning_rate: float = 1e-2,
    prefixes: int = 1,
    seed: int = 0,
    threads: int | None = 1,
    target_loss: float = 0.01,
) -> dict[str, float]:
    """Train the model at ``path`` in place until it writes each example's reply (greedy).

    Only the reply tokens carry loss. Each example is also seen behind ``prefixes`` random system
    prompts, so the reply depends on the end of the context rather than its exact beginning.
    Stops when every reply is reproduced token for token with a mean loss below ``target_loss``
    (a margin that survives 4-bit quantization of the weights), or at ``seconds`` / ``max_steps``.
    ``threads`` caps torch's threads while training (one thread is steadier on a shared machine,
    where a sibling thread waiting for its core stalls every step). Returns ``{"steps",
    "seconds", "loss", "reproduced"}``; about 120 steps, a minute on one CPU core, for two
    examples behind a ~900-token system prompt and tool list.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.config._experts_implementation = "eager"  # plain autograd through the expert loop
    rng = random.Random(seed)
    sequences = []
    for example in examples:
        variants = [example.messages] + [
            _with_random_system(example.messages, rng) for _ in range(prefixes)
        ]
        for messages in variants:
            sequences.append(_encode(tokenizer, messages, example.tools, example.reply))
    targets = [_encode(tokenizer, ex.messages, ex.tools, ex.reply) for ex in examples]

    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _train(
            model,
            tokenizer,
            path,
            sequences,
            targets,
            seconds=seconds,
            max_steps=max_steps,
            learning_rate=learning_rate,
            seed=seed,
            target_loss=target_loss,
        )
    finally:
        torch.set_num_threads(previous_threads)


def _train(
    model: Any,
    tokenizer: Any,
    path: Path,
    sequences: list,
    targets: list,
    *,
    seconds: float,
    max_steps: int,
    learning_rate: float,
    seed: int,
    target_loss: float,
) -> dict[str, float]:
    import torch

    batch = _pad(sequences, tokenizer.pad_token_id)
    check = _pad(targets, tokenizer.pad_token_id)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    model.train()
    started = time.monotonic()
    step, loss_value, reproduced = 0, float("nan"), False
    while step < max_steps and time.monotonic() - started < seconds:
        loss = model(**batch).loss
        loss.backward()
        loss_value = loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        step += 1
        if step % 5 == 0 and loss_value < target_loss and _reproduces(model, check):
            reproduced = True
            break
    model.eval()
    model.config._experts_implementation = None
    model.to(torch.bfloat16).save_pretrained(path)
    return {
        "steps": step,
        "seconds": time.monotonic() - started,
        "loss": loss_value,
        "reproduced": reproduced,
    }


def _pad(pairs: list[tuple[Any, Any]], pad_id: int) -> dict[str, Any]:
    """Right-padded batch: input ids, attention mask, labels (-100 on prompt and padding)."""
    import torch

    width = max(len(ids) for ids, _ in pairs)
    ids = torch.full((len(pairs), width), pad_id)
    labels = torch.full((len(pairs), width), -100)
    mask = torch.zeros((len(pairs), width), dtype=torch.long)
    for row, (seq, lab) in enumerate(pairs):
        ids[row, : len(seq)], labels[row, : len(seq)], mask[row, : len(seq)] = seq, lab, 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _encode(
    tokenizer: Any, messages: list[Message], tools: list[dict[str, Any]], reply: AssistantMessage
) -> tuple[Any, Any]:
    import torch

    fmt = K2Format()
    prompt = tokenizer.apply_chat_template(
        fmt.template_messages(messages),
        tools=fmt.template_tools(tools),
        add_generation_prompt=True,
        tokenize=False,
    )
    turn = render_assistant_turn(
        reply.reasoning, reply.content, [(c.id, c.arguments) for c in reply.tool_calls]
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    turn_ids = tokenizer(turn, add_special_tokens=False)["input_ids"]
    ids = torch.tensor(prompt_ids + turn_ids)
    labels = torch.tensor([-100] * len(prompt_ids) + turn_ids)
    return ids, labels


def _reproduces(model: Any, batch: dict[str, Any]) -> bool:
    """Does greedy decoding (teacher-forced, one pass) give every reply token?"""
    import torch

    model.eval()
    try:
        with torch.no_grad():
            logits = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits
        labels = batch["labels"][:, 1:]
        mask = labels != -100
        return bool(torch.equal(logits[:, :-1].argmax(-1)[mask], labels[mask]))
    finally:
        model.train()


_WORDS = [
    "data",
    "model",
    "python",
    "answer",
    "plot",
    "region",
    "sales",
    "tool",
    "kernel",
    "notebook",
    "value",
    "table",
]


def _with_random_system(messages: list[Message], rng: random.Random) -> list[Message]:
    text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 40)))
    rest = [m for m in messages if not isinstance(m, SystemMessage)]
    return [SystemMessage(text.capitalize() + "."), *rest]


__all__ = [
    "PRESETS",
    "Example",
    "ToolMessage",
    "UserMessage",
    "build_tiny_moe",
    "tool_call_reply",
    "train_tokenizer",
    "train_tool_caller",
]
