"""The LM's text tokenizer: the released ``tokenizer.model`` through ``sentencepiece``.

The reference encodes with transformers 4.53's LlamaTokenizerFast, whose ``encode`` is BOS (id 1)
followed by exactly what sentencepiece gives for the string (dummy-prefix "▁", split digits,
byte fallback, ``<audio_N>`` as user-defined pieces); docs lm.md 4.4 measured that on every
probe. transformers 5.x segments this file differently, so we never go through transformers.

One difference remains by design: transformers maps a literal control string typed into the
text (``<s>``, ``<|BOT|>``) to its special id, sentencepiece spells it out as text.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import sentencepiece as spm

from ..codes import AUDIO_ID_OFFSET, VQ02_CODES, VQ06_CODES
from ..errors import ModelFileError
from ..weights.checkpoint import check_model_file

BOS = 1  # <s>
EOT = 3  # <|EOT|>: ends a turn, and the LM's stop id
BOT = 4  # <|BOT|>: begins a turn


class TextTokenizer:
    def __init__(self, path: str | os.PathLike):
        path = check_model_file(path, "LM tokenizer (tokenizer.model)")
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.Load(str(path))
        except (OSError, RuntimeError) as e:
            raise ModelFileError(f"{path} is not a sentencepiece model ({e}). Download it again.") from None
        last_audio = AUDIO_ID_OFFSET + VQ02_CODES + VQ06_CODES - 1
        expected = {"<s>": BOS, "<|EOT|>": EOT, "<|BOT|>": BOT, "<audio_0>": AUDIO_ID_OFFSET,
                    f"<audio_{last_audio - AUDIO_ID_OFFSET}>": last_audio}
        wrong = [f"{piece} is id {self.sp.PieceToId(piece)}, not {i}" for piece, i in expected.items()
                 if self.sp.PieceToId(piece) != i]
        if wrong or self.sp.GetPieceSize() <= last_audio:
            raise ModelFileError(
                f"{path} is not the Step-Audio-EditX tokenizer ({'; '.join(wrong) or 'too few pieces'}). "
                "Use the tokenizer.model of the Step-Audio-EditX release."
            )

    def __len__(self) -> int:
        return self.sp.GetPieceSize()

    def encode(self, text: str, bos: bool = True) -> list[int]:
        """Ids of ``text``; with ``bos`` exactly the reference's ``tokenizer.encode(text)``."""
        return ([BOS] if bos else []) + self.sp.EncodeAsIds(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.DecodeIds([int(i) for i in ids])
