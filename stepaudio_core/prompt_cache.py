"""Encoded prompts kept by content, so a voice used by many clones and edits is encoded once.

The key covers the waveform's samples, shape and rate and the transcript, so two recordings
that differ anywhere never share an entry. Prompts keep their recording (for Edit and the
iteration round trip), which can be long: the cache is bounded by count and by bytes, and drops
the least recently used entry first.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import torch

from .prompt import EncodedPrompt

MAX_PROMPTS = 32
MAX_BYTES = 512 * 2**20


def content_key(wav: torch.Tensor, sample_rate: int, text: str) -> str:
    h = hashlib.sha256()
    h.update(str((tuple(wav.shape), str(wav.dtype), int(sample_rate))).encode())
    h.update(wav.detach().cpu().contiguous().numpy().tobytes())
    h.update(text.encode("utf-8"))
    return h.hexdigest()


def prompt_nbytes(prompt: EncodedPrompt) -> int:
    return sum(t.numel() * t.element_size() for t in (prompt.audio, prompt.mel, prompt.speaker))


class PromptCache:
    """A bounded, thread-safe, least-recently-used map from content keys to encoded prompts."""

    def __init__(self, max_prompts: int = MAX_PROMPTS, max_bytes: int = MAX_BYTES):
        self.max_prompts = max_prompts
        self.max_bytes = max_bytes
        self._prompts: OrderedDict[str, EncodedPrompt] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._prompts)

    @property
    def nbytes(self) -> int:
        """Bytes of tensor data the cached prompts hold."""
        with self._lock:
            return sum(prompt_nbytes(p) for p in self._prompts.values())

    def prompts(self) -> list[EncodedPrompt]:
        """The cached prompts, least recently used first."""
        with self._lock:
            return list(self._prompts.values())

    def get(self, key: str) -> EncodedPrompt | None:
        with self._lock:
            prompt = self._prompts.get(key)
            if prompt is not None:
                self._prompts.move_to_end(key)
            return prompt

    def put(self, key: str, prompt: EncodedPrompt) -> None:
        """Keep ``prompt``, then drop the oldest entries until both bounds hold (the newest always stays)."""
        with self._lock:
            self._prompts[key] = prompt
            total = sum(prompt_nbytes(p) for p in self._prompts.values())
            while len(self._prompts) > 1 and (len(self._prompts) > self.max_prompts or total > self.max_bytes):
                _, dropped = self._prompts.popitem(last=False)
                total -= prompt_nbytes(dropped)

    def clear(self) -> None:
        with self._lock:
            self._prompts.clear()
