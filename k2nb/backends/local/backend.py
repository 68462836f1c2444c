"""The local backend: the agent runs in the kernel on a 4-bit model through transformers.

``LocalBackend("/models/Moonlight-16B-A3B-Instruct")`` loads the model in 4-bit (experts too,
see :mod:`k2nb.backends.local.quantize`), renders each request with the tokenizer's chat template,
generates in a background thread and parses the raw text with the model's own tool-call format
(:mod:`k2nb.backends.local.formats`). Between steps it keeps the KV cache: the next prompt shares all tokens up to
the new observation with the last one, so only those new tokens are encoded; if the history was
edited (old tool outputs hidden), the cache is cut back to the first token that differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ...core.messages import AssistantMessage, SystemMessage, Usage
from ...core.backend import BackendError, ModelRequest, StepResult, StreamItem
from .loading import LoadReport, load_local_model, require_local_stack
from .prompts import PROMPT_STYLES, styled
from .watch import RepetitionGuard, StepWatch

#: Tokens per step on a CPU: at the 5-30 tokens/s a CPU gives, a few minutes at most.
CPU_STEP_TOKENS = 4_096
#: On an accelerator: room for long thinking, as on the API.
GPU_STEP_TOKENS = 16_384

_END_OF_TURN_TOKENS = (
    "<|im_end|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|eot_id|>",
    "<|end|>",
    "<|return|>",
    "<end_of_turn>",
)


@dataclass
class LocalStepStats:
    """What one step cost: how much of the prompt came from the cache, and decode speed."""

    prompt_tokens: int
    reused_tokens: int  # prompt tokens whose keys/values were already cached
    generated_tokens: int
    prefill_s: float  # from start to first generated token (encodes prompt_tokens - reused_tokens)
    decode_s: float

    @property
    def encoded_tokens(self) -> int:
        return self.prompt_tokens - self.reused_tokens

    @property
    def tokens_per_s(self) -> float:
        return (
            (self.generated_tokens - 1) / self.decode_s
            if self.decode_s > 0 and self.generated_tokens > 1
            else 0.0
        )


@dataclass
class _KVState:
    cache: Any = None
    ids: list[int] = field(default_factory=list)  # exactly the tokens whose keys/values are cached


class LocalBackend:
    """A :class:`~k2nb.core.backend.Backend` running a local causal LM in 4-bit.

    ``model`` is a folder (or a hub id where the hub is reachable). ``quantization`` ``"nf4"``
    (default), ``"fp4"`` or ``None`` (full ``compute_dtype``). ``tool_format`` ``"k2"``,
    ``"hermes"`` or ``"fenced"`` overrides what the tokenizer suggests. ``temperature`` overrides
    the request's (``0`` = greedy). After loading, :attr:`load_report` holds the measured bytes of
    parameters by dtype; after each step :attr:`expert_counts` gains that step's router choices
    (MoE models) and :attr:`step_stats` its cache reuse and speed.

    Bounds: ``step_tokens`` is the per-step budget to use when the user sets none (default:
    :func:`default_step_tokens` of the device and the model's window; the backend itself obeys
    each request's ``max_tokens``); ``step_seconds`` ends a step after that long; with
    ``stop_repetition`` a step that loops (:class:`~k2nb.backends.local.watch.RepetitionGuard`)
    ends early. Such a step, and one that wrote nothing, carries a
    :attr:`~k2nb.core.backend.StepResult.notice` that says why, followed by :attr:`advice`.
    ``prompt_style`` (``standard``, ``example``, ``brief``) adapts the prompt for small models
    (:mod:`k2nb.backends.local.prompts`).
    """

    name = "local"

    def __init__(
        self,
        model: str,
        *,
        quantization: str | None = "nf4",
        compute_dtype: str = "bfloat16",
        double_quant: bool = True,
        quantize_experts: bool = True,
        device_map: Any = "auto",
        tool_format: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        reuse_cache: bool = True,
        record_experts: bool = True,
        trust_remote_code: bool = False,
        gguf_file: str | None = None,
        progress: bool = True,
        step_tokens: int | None = None,
        step_seconds: float | None = None,
        stop_repetition: bool = True,
        prompt_style: str = "standard",
    ):
        require_local_stack()
        from .formats import detect_format, get_format

        self.model = model
        self.lm, self.tokenizer, self.load_report = load_local_model(
            model,
            quantization=quantization,
            compute_dtype=compute_dtype,
            double_quant=double_quant,
            quantize_experts=quantize_experts,
            device_map=device_map,
            trust_remote_code=trust_remote_code,
            gguf_file=gguf_file,
            progress=progress,
        )
        if not getattr(self.tokenizer, "chat_template", None):
            raise BackendError(
                f"{model} has no chat template: the local backend needs an instruct/chat model."
            )
        self.format = get_format(tool_format) if tool_format else detect_format(self.tokenizer)
        #: The model's own window (its config), which bounds the conversation.
        self.context_window: int | None = getattr(self.lm.config, "max_position_embeddings",
                                                  None)
        #: Tokens per step when the user sets none: what this model can write on this device in
        #: reasonable time (the API's 32k would take a CPU many minutes).
        self.step_tokens = step_tokens or default_step_tokens(self.device, self.context_window)
        #: Seconds after which a step is ended (None: no limit): bounds a slow device.
        self.step_seconds = step_seconds
        self.stop_repetition = stop_repetition
        if prompt_style not in PROMPT_STYLES:
            raise ValueError(f"prompt_style must be one of {', '.join(PROMPT_STYLES)}, "
                             f"got {prompt_style!r}")
        self.prompt_style = prompt_style
        #: Added to the notices of steps that ended without result (how to get a better model).
        self.advice = ""
        self.temperature = temperature
        self.top_p = top_p
        self.reuse_cache = reuse_cache
        self.end_ids = self._end_of_turn_ids()
        self.expert_counts: list[Any] = []  # ExpertUsage per step, MoE models only
        self.step_stats: list[LocalStepStats] = []
        self._kv = _KVState()
        self._recorder = None
        if record_experts:
            from .experts import ExpertRecorder

            recorder = ExpertRecorder(self.lm)
            self._recorder = recorder if recorder.modules else None
            if not recorder.modules:
                recorder.remove()
        self._active: Any = None

    # -- the Backend protocol -----------------------------------------------------------------
    def stream(self, request: ModelRequest) -> Iterator[StreamItem]:
        """Generate one step; yields reasoning/content/tool-call deltas and, every half second,
        a :class:`GenerationProgress`; then the StepResult."""
        self._wait_for_previous()
        prompt_ids, text = self.render(request)
        parser = self.format.parser(
            tool_names=[t.get("function", {}).get("name") for t in request.tools],
            starts_in_reasoning=text.rstrip().endswith("<think>"),
            call_offset=sum(len(m.tool_calls) for m in request.messages
                            if isinstance(m, AssistantMessage)),
        )
        room = self._context_room(len(prompt_ids))
        cache, reused = self._cache_for(prompt_ids)
        from .generation import IncrementalDecoder

        limit = min(request.max_tokens, room)
        generation = self._generation(prompt_ids, cache, limit, request.temperature)
        decoder = IncrementalDecoder(self.tokenizer)
        watch = StepWatch(limit, seconds=self.step_seconds, guard=RepetitionGuard(
            self._decode) if self.stop_repetition else None)
        generated: list[int] = []
        ended = False
        interrupted = True  # until the step ends normally: then wait for the worker
        if self._recorder is not None:
            self._recorder.start()
        self._active = generation.start()
        try:
            for ids in generation.tokens():
                generated.extend(ids)
                progress = watch.progress(len(generated))
                if progress is not None:
                    yield progress
                if ended:
                    continue
                content_ids = [i for i in ids if i not in self.end_ids]
                ended = len(content_ids) < len(ids)
                piece = decoder.push(content_ids) if content_ids else ""
                for delta in parser.feed(piece):
                    yield delta
                if not ended and watch.check(content_ids, piece):
                    generation.stop()  # looping, or out of time: the rest would be more of it
                    ended = True
                if parser.done and not ended:
                    generation.stop()  # an action ended the turn (e.g. a closed code block)
                    ended = True
            for delta in parser.feed(decoder.flush()):
                yield delta
            yield from parser.flush()
            message = parser.finish()
            # A step the watch ended inside a tool call was cut like one the budget ended.
            hit_limit = (bool(watch.reason) and bool(message.tool_calls)) or (
                not ended
                and not generation.stopped
                and len(generated) >= limit
            )
            # A budget cut is "length" even with a call seen, so the loop runs none of the step's
            # calls; a call left open otherwise is an UnclosedToolCall the toolbox refuses.
            finish_reason = ("length" if hit_limit
                             else "tool_calls" if message.tool_calls else "stop")
            usage = Usage(
                prompt_tokens=len(prompt_ids),
                completion_tokens=len(generated),
                total_tokens=len(prompt_ids) + len(generated),
                cached_tokens=reused,
            )
            interrupted = False
            yield StepResult(message=message, finish_reason=finish_reason, usage=usage,
                             experts=self._experts_of_step(),
                             notice=self._notice(watch, message, hit_limit))
        except BackendError:
            raise
        except Exception as error:  # a failure inside generate: tell the user, keep the kernel
            raise BackendError(
                f"Local generation failed: {type(error).__name__}: {error}"
            ) from error
        finally:
            # Interrupted (or closed early): don't wait out a long forward (encoding a long
            # prompt is one); the next step waits for the worker instead.
            self._finish(generation, prompt_ids, reused, len(generated),
                         wait_s=0.25 if interrupted else 30.0)

    def _generation(self, prompt_ids: list[int], cache: Any, limit: int,
                    temperature: float) -> Any:
        import torch

        from .generation import Generation

        return Generation(
            self.lm,
            torch.tensor([prompt_ids], device=self.lm.device),
            cache=cache,
            max_new_tokens=limit,
            temperature=temperature if self.temperature is None else self.temperature,
            end_ids=self.end_ids,
            pad_id=self.tokenizer.pad_token_id,
            top_p=self.top_p,
        )

    def _notice(self, watch: Any, message: AssistantMessage, hit_limit: bool) -> str:
        """Why the step ended without a proper result, for the user ("" when it did not, or
        when the token budget ended it: the loop says that one itself)."""
        if watch.reason == "time":
            why = (f"{self.model} had not finished this step after {watch.seconds:g} s (the "
                   f"time limit per step on {self.device_name}), so k2nb ended it there.")
        elif watch.reason == "repetition":
            why = (f"{self.model} was repeating itself ({watch.detail}), so k2nb ended the "
                   "step there.")
        elif not hit_limit and not message.content.strip() and not message.tool_calls:
            why = f"{self.model} ended its turn without writing anything."
        else:
            return ""
        return f"{why} {self.advice}".strip()

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False,
                                     clean_up_tokenization_spaces=False)

    @property
    def device(self) -> str:
        """Where the model runs: ``"cpu"``, ``"cuda"``, ``"mps"``, ..."""
        return self.lm.device.type

    @property
    def device_name(self) -> str:
        return "the CPU" if self.device == "cpu" else f"the GPU ({self.lm.device})"

    # -- prompts --------------------------------------------------------------------------------
    def render(self, request: ModelRequest) -> tuple[list[int], str]:
        """The prompt's token ids and text, through the tokenizer's chat template."""
        messages = styled(list(request.messages), request.tools, self.prompt_style)
        extra = self.format.system_addendum(request.tools)
        if extra:
            if messages and isinstance(messages[0], SystemMessage):
                messages[0] = SystemMessage(f"{messages[0].content}\n\n{extra}")
            else:
                messages.insert(0, SystemMessage(extra))
        try:
            text = self.tokenizer.apply_chat_template(
                self.format.template_messages(messages),
                tools=self.format.template_tools(request.tools),
                add_generation_prompt=True,
                tokenize=False,
            )
        except Exception as error:
            raise BackendError(
                f"The chat template of {self.model} rejected the conversation: {error}"
            ) from error
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids, text

    # -- KV cache -------------------------------------------------------------------------------
    def _cache_for(self, prompt_ids: list[int]) -> tuple[Any, int]:
        """The cache to continue from and how many prompt tokens it already covers."""
        kv = self._kv
        if not self.reuse_cache or kv.cache is None:
            self._kv = _KVState()
            return None, 0
        common = 0
        for a, b in zip(kv.ids, prompt_ids):
            if a != b:
                break
            common += 1
        common = min(common, len(prompt_ids) - 1)  # generate needs at least one new token
        drop = len(kv.ids) - common
        if common == 0 or (drop and not _croppable(kv.cache)):
            self._kv = _KVState()
            return None, 0
        if drop:
            kv.cache.crop(-drop)  # the history was edited here: forget everything after it
            kv.ids = kv.ids[:common]
        return kv.cache, common

    def _finish(
        self, generation: Any, prompt_ids: list[int], reused: int, n_generated: int,
        wait_s: float = 30.0,
    ) -> None:
        generation.stop()
        done = generation.join(timeout=wait_s)
        self._active = None if done else generation
        self._experts_of_step()  # a step that ended early still counts its router choices
        if (
            done
            and generation.error is None
            and generation.sequences is not None
            and generation.cache is not None
        ):
            cached = generation.cache.get_seq_length()
            sequence = generation.sequences[0].tolist()
            self._kv = (
                _KVState(generation.cache, sequence[:cached])
                if cached <= len(sequence)
                else _KVState()
            )
        else:
            self._kv = _KVState()
        first = generation.first_token_at or generation.finished_at
        self.step_stats.append(
            LocalStepStats(
                prompt_tokens=len(prompt_ids),
                reused_tokens=reused,
                generated_tokens=n_generated,
                prefill_s=max(first - generation.started_at, 0.0),
                decode_s=max(generation.finished_at - first, 0.0),
            )
        )

    def _experts_of_step(self) -> Any:
        """Finish counting this step's router choices (once; the generation has ended) and keep
        them in :attr:`expert_counts`; None for dense models or when already counted."""
        if self._recorder is None or not self._recorder.active:
            return None
        usage = self._recorder.finish()
        self.expert_counts.append(usage)
        return usage

    def reset_cache(self) -> None:
        """Forget the KV cache (the next step encodes its whole prompt)."""
        self._kv = _KVState()

    def _wait_for_previous(self) -> None:
        previous = self._active
        if previous is not None:
            previous.stop()
            if not previous.join(timeout=30.0):
                raise BackendError(
                    "The previous local generation is still running; interrupt again."
                )
            self._active = None

    # -- model facts ----------------------------------------------------------------------------
    def _end_of_turn_ids(self) -> list[int]:
        ids: list[int] = []
        configured = getattr(self.lm.generation_config, "eos_token_id", None)
        for value in configured if isinstance(configured, list) else [configured]:
            if isinstance(value, int):
                ids.append(value)
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        vocab = self.tokenizer.get_vocab()
        ids += [vocab[t] for t in _END_OF_TURN_TOKENS if t in vocab]
        if not ids:
            raise BackendError(
                f"{self.model} declares no end-of-turn token; cannot tell when a turn ends."
            )
        return list(dict.fromkeys(ids))

    def _context_room(self, prompt_tokens: int) -> int:
        limit = getattr(self.lm.config, "max_position_embeddings", None) or 1 << 30
        room = limit - prompt_tokens
        if room <= 0:
            raise BackendError(
                f"The prompt has {prompt_tokens} tokens but {self.model} handles {limit}: "
                "shorten the history (hide old tool outputs) or start a new run."
            )
        return room

    def close(self) -> None:
        """Stop any generation and drop the cache (the model stays loaded)."""
        if self._active is not None:
            self._active.stop()
            self._active.join(timeout=30.0)
            self._active = None
        self.reset_cache()


def default_step_tokens(device: str, context_window: int | None) -> int:
    """The per-step token budget of a model on ``device`` when the user sets none: a few
    thousand on a CPU, more on an accelerator, and never more than a quarter of the model's
    window (the rest is for the conversation)."""
    budget = CPU_STEP_TOKENS if device == "cpu" else GPU_STEP_TOKENS
    if context_window:
        budget = min(budget, max(256, context_window // 4))
    return budget


def _croppable(cache: Any) -> bool:
    """Only full-attention dynamic layers can be cut back; sliding-window and recurrent cannot."""
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer).__name__ == "DynamicLayer" for layer in layers)


__all__ = ["LoadReport", "LocalBackend", "LocalStepStats", "default_step_tokens"]
