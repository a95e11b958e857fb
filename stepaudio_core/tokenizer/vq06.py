"""vq06, the "semantic" codes: CosyVoice's S3 tokenizer v1 at 25 Hz, through the ``s3tokenizer`` package.

The released ``speech_tokenizer_v1.onnx`` is read with the ``onnx`` package and converted to
torch weights by ``s3tokenizer.onnx2torch``; nothing runs through onnxruntime. s3tokenizer
picks the 25 Hz network (stride-2 first convolution) only for the exact model name
``speech_tokenizer_v1_25hz``, so the model is built under that name: any other name builds the
50 Hz network, which loads the same weights without complaint and yields twice the tokens.

As the reference, the 16 kHz waveform is cut into consecutive 30 s pieces (a last piece under
30 ms is dropped), and each piece gets its own 128-bin Whisper log-mel, so the piece's own
loudest bin sets the -8 floor.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import check_model_file, load_strict
from ..errors import InputError, ModelFileError, StepAudioError
from ..features import whisper_log_mel

VQ06_FILE = "speech_tokenizer_v1.onnx"
MODEL_NAME = "speech_tokenizer_v1_25hz"
PIECE_SAMPLES = 30 * 16000
MIN_PIECE_SAMPLES = 480
HEAD_DIM = 64  # Whisper-family attention: 1280 wide / 20 heads in the release


def import_s3tokenizer():
    """Import s3tokenizer without requiring torchaudio.

    s3tokenizer 0.3.0 imports torchaudio at the top of its ``utils.py`` for ``load_audio`` only,
    which this pack never calls. Where torchaudio is not installed, an empty module stands in
    for the duration of the import and is removed right after.
    """
    if importlib.util.find_spec("s3tokenizer") is None:
        raise StepAudioError(
            "the vq06 tokenizer needs the 's3tokenizer' package. Install it without the dependencies it "
            "does not need (torchaudio, pre-commit): pip install einops tqdm onnx && pip install --no-deps s3tokenizer"
        )
    if "s3tokenizer" in sys.modules or importlib.util.find_spec("torchaudio") is not None:
        import s3tokenizer

        return s3tokenizer
    stand_in = types.ModuleType("torchaudio")
    sys.modules["torchaudio"] = stand_in
    try:
        import s3tokenizer
    finally:
        if sys.modules.get("torchaudio") is stand_in:
            del sys.modules["torchaudio"]
    return s3tokenizer


def read_s3_onnx(path: str | Path) -> dict[str, torch.Tensor]:
    """The torch state dict of an S3 tokenizer ONNX file (s3tokenizer's own name mapping)."""
    path = check_model_file(path, "vq06 tokenizer (speech_tokenizer_v1.onnx)")
    s3 = import_s3tokenizer()
    try:
        return s3.onnx2torch(str(path), None, False)
    except Exception as e:  # onnx raises protobuf DecodeError, s3tokenizer asserts on unknown nodes
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(
            f"{path} is not a usable S3 tokenizer ONNX file ({reason}). Download speech_tokenizer_v1.onnx "
            "of Step-Audio-Tokenizer again."
        ) from None


def _model_config(state: dict[str, torch.Tensor], path: Path):
    s3 = import_s3tokenizer()
    try:
        n_state, n_mels = state["encoder.conv1.weight"].shape[:2]
        n_ctx = state["encoder.positional_embedding"].shape[0]
        n_codes = state["quantizer._codebook.embed"].shape[0]
    except KeyError as e:
        raise ModelFileError(
            f"{path} lacks the S3 tokenizer tensor {e}. Download speech_tokenizer_v1.onnx again."
        ) from None
    n_layer = len({k.split(".")[2] for k in state if k.startswith("encoder.blocks.")})
    return s3.model.ModelConfig(
        n_mels=n_mels,
        n_audio_ctx=n_ctx,
        n_audio_state=n_state,
        n_audio_head=max(n_state // HEAD_DIM, 1),
        n_audio_layer=n_layer,
        n_codebook_size=n_codes,
    )


class VQ06Tokenizer(nn.Module):
    """16 kHz waveform -> vq06 codes (25 per second)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @classmethod
    def from_onnx(cls, path: str | Path) -> VQ06Tokenizer:
        path = Path(path)
        state = read_s3_onnx(path)
        model = import_s3tokenizer().S3Tokenizer(MODEL_NAME, _model_config(state, path))
        load_strict(model, state, path, "vq06 tokenizer")
        return cls(model).eval()

    @property
    def n_mels(self) -> int:
        return self.model.config.n_mels

    @torch.inference_mode()
    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(N,) float 16 kHz -> (T,) int64 codes on the CPU; a 30 s piece of M samples gives ceil(M // 160 / 4)."""
        if wav.dim() != 1:
            raise InputError(f"vq06 takes a mono 16 kHz waveform of shape (samples,), got {tuple(wav.shape)}")
        device = self.model.quantizer.codebook.device
        wav = wav.to(device, torch.float32)
        codes = [torch.zeros(0, dtype=torch.long)]
        for piece in wav.split(PIECE_SAMPLES):
            if piece.shape[0] < MIN_PIECE_SAMPLES:
                continue
            mel = whisper_log_mel(piece, n_mels=self.n_mels)
            tokens, lengths = self.model.quantize(mel[None], torch.tensor([mel.shape[1]], device=device))
            codes.append(tokens[0, : int(lengths[0])].cpu())
        return torch.cat(codes)
