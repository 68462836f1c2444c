"""``model.generate`` in a background thread, streamed back token by token, stoppable at once.

The agent loop runs on the kernel's main thread, where a kernel interrupt arrives as
KeyboardInterrupt. Generation therefore runs in a worker thread that hands token ids over a queue;
the consumer waits in short slices (so the interrupt is seen), and stopping sets an event that a
stopping criterion checks before every next token — generation ends after the current forward.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

_DONE = object()


class _QueueStreamer(BaseStreamer):
    """Receives generated ids from ``generate``; the first ``put`` is the prompt and is skipped."""

    def __init__(self, sink: queue.Queue):
        self.sink = sink
        self.seen_prompt = False

    def put(self, value: torch.Tensor) -> None:
        if not self.seen_prompt:
            self.seen_prompt = True
            return
        self.sink.put(value.reshape(-1).tolist())

    def end(self) -> None:
        pass


class _StopWhenSet(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


class Generation:
    """One ``generate`` call running in a daemon thread. Iterate :meth:`tokens`; :meth:`stop` ends it."""

    def __init__(
        self,
        model: Any,
        input_ids: torch.Tensor,
        *,
        cache: Any,
        max_new_tokens: int,
        temperature: float,
        end_ids: list[int],
        pad_id: int | None,
        top_p: float | None = None,
    ):
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.sequences: torch.Tensor | None = None
        self.cache = cache
        self.first_token_at: float | None = None
        self.started_at = 0.0
        self.finished_at = 0.0
        sampling: dict[str, Any] = {"do_sample": temperature > 0}
        if temperature > 0:
            sampling["temperature"] = temperature
            sampling["top_p"] = top_p if top_p is not None else 1.0
        else:  # greedy: silence sampling settings a checkpoint's generation_config may carry
            sampling.update(temperature=None, top_p=None, top_k=None)
        self._kwargs = dict(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            eos_token_id=end_ids,
            pad_token_id=pad_id if pad_id is not None else end_ids[0],
            streamer=_QueueStreamer(self._queue),
            stopping_criteria=StoppingCriteriaList([_StopWhenSet(self._stop)]),
            return_dict_in_generate=True,
            **sampling,
        )
        if cache is not None:
            self._kwargs["cache"] = cache
        self._model = model
        self._thread = threading.Thread(target=self._run, name="k2nb-local-generate", daemon=True)

    def start(self) -> Generation:
        self.started_at = time.perf_counter()
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            out = self._model.generate(**self._kwargs)
            self.sequences = out.sequences
            returned = getattr(out, "cache", None)
            if returned is None:
                returned = getattr(out, "past_key_values", None)
            if returned is not None:
                self.cache = returned
        except BaseException as error:  # handed to the consumer thread
            self.error = error
        finally:
            self.finished_at = time.perf_counter()
            self._queue.put(_DONE)

    def tokens(self, poll_s: float = 0.05) -> Iterator[list[int]]:
        """Yield lists of new token ids as they are generated; raise the worker's error, if any.

        While no token arrives (the prompt is being encoded, a slow forward) an empty list comes
        every ``poll_s`` seconds, so that the consumer can report progress and keep its clock.
        """
        while True:
            try:
                item = self._queue.get(timeout=poll_s)
            except queue.Empty:
                yield []
                continue
            if item is _DONE:
                break
            if self.first_token_at is None:
                self.first_token_at = time.perf_counter()
            yield item
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker; True when it has finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


class IncrementalDecoder:
    """Token ids in, new text out, never splitting a multi-byte character or a merged word.

    Decodes a short window of ids again at each step and emits only what it adds, holding text
    back while it ends in an incomplete character (``\\ufffd``). Special tokens are kept: the
    format parser needs the markers.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def push(self, ids: list[int]) -> str:
        self.ids.extend(ids)
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self.ids)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        self._prefix = self._read = len(self.ids)
        return after[len(before) :]

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(
            ids, skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
