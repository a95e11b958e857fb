"""Rendered dialogue lines kept for the session, so editing one line of a script re-renders only that line."""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch

LINE_CACHE_SIZE = 512
LINE_CACHE_BYTES = 256 * 2**20  # ~45 min of 24 kHz float32 audio: a long script twice over


class LineCache:
    """A bounded LRU map from a line's key (everything that decides its audio) to its waveform (CPU float32)."""

    def __init__(self, max_items: int = LINE_CACHE_SIZE, max_bytes: int = LINE_CACHE_BYTES):
        self.max_items, self.max_bytes = max_items, max_bytes
        self._items: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> torch.Tensor | None:
        with self._lock:
            wav = self._items.get(key)
            if wav is not None:
                self._items.move_to_end(key)
            return wav

    def put(self, key: str, wav: torch.Tensor) -> None:
        wav = wav.detach().to("cpu", torch.float32)
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key).nbytes
            self._items[key] = wav
            self._bytes += wav.nbytes
            while len(self._items) > 1 and (len(self._items) > self.max_items or self._bytes > self.max_bytes):
                self._bytes -= self._items.popitem(last=False)[1].nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
