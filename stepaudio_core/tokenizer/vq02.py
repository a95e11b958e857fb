"""vq02, the "linguistic" codes: Paraformer streaming encoder + nearest k-means centroid, 16.7 Hz.

Read from the released Step-Audio-Tokenizer folder: the FunASR model folder's ``config.yaml``
(plain YAML), ``am.mvn`` and the ``encoder.*`` tensors of ``model.pt`` (the ASR decoder and
predictor in the same file are never used), and ``linguistic_tokenizer.npy`` (1024 centroids).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from ..codes import VQ02_CODES
from ..errors import InputError, ModelFileError
from ..weights.checkpoint import check_model_file, load_strict, load_torch_state_dict
from .frontend import CHUNK_SAMPLES, Frontend, FrontendConfig, read_cmvn
from .paraformer import EncoderStream, ParaformerConfig, ParaformerEncoder

PARAFORMER_DIR = "dengcunqin/speech_paraformer-large_asr_nat-zh-cantonese-en-16k-vocab8501-online"
CODEBOOK_FILE = "linguistic_tokenizer.npy"


def read_paraformer_config(path: Path) -> tuple[ParaformerConfig, FrontendConfig]:
    """The encoder and front-end settings of a FunASR ``config.yaml``."""
    check_model_file(path, "Paraformer config")
    try:
        root = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ModelFileError(
            f"cannot read {path} ({str(e).splitlines()[0]}). Download the Paraformer folder again."
        ) from None
    if not isinstance(root, dict) or not isinstance(root.get("encoder_conf"), dict):
        raise ModelFileError(f"{path} has no 'encoder_conf' section. Download the Paraformer folder again.")
    enc, fe = root["encoder_conf"], root.get("frontend_conf") or {}
    if (
        root.get("encoder", "SANMEncoderChunkOpt") != "SANMEncoderChunkOpt"
        or enc.get("input_layer", "pe_online") != "pe_online"
    ):
        raise ModelFileError(
            f"{path} describes encoder {root.get('encoder')!r} with input layer {enc.get('input_layer')!r}; "
            "the tokenizer needs the streaming SANMEncoderChunkOpt ('pe_online') of the Step-Audio-Tokenizer release."
        )
    if enc.get("normalize_before", True) is not True or enc.get("selfattention_layer_type", "sanm") != "sanm":
        raise ModelFileError(f"{path}: only pre-norm SAN-M encoders are supported (Step-Audio-Tokenizer release)")
    try:
        front = FrontendConfig(
            fs=int(fe.get("fs", 16000)),
            window=str(fe.get("window", "hamming")),
            n_mels=int(fe.get("n_mels", 80)),
            frame_length=int(fe.get("frame_length", 25)),
            frame_shift=int(fe.get("frame_shift", 10)),
            lfr_m=int(fe.get("lfr_m", 7)),
            lfr_n=int(fe.get("lfr_n", 6)),
        )
        kwargs = {k: int(enc[k]) for k in ParaformerConfig.__dataclass_fields__ if k in enc and k != "input_size"}
        encoder = ParaformerConfig(input_size=front.output_size, **kwargs)
    except (TypeError, ValueError) as e:
        raise ModelFileError(
            f"{path} holds an unusable encoder or front-end setting ({e}). Download it again."
        ) from None
    if front.fs != 16000:
        raise ModelFileError(f"{path}: the front end runs at {front.fs} Hz; the Step-Audio tokenizer needs 16000 Hz")
    return encoder, front


class VQ02Tokenizer(nn.Module):
    """16 kHz waveform -> vq02 codes. Its state dict is exactly the ``encoder.*`` part of ``model.pt``."""

    def __init__(self, cfg: ParaformerConfig, frontend_cfg: FrontendConfig, cmvn: torch.Tensor, codebook: torch.Tensor):
        super().__init__()
        self.frontend = Frontend(frontend_cfg, cmvn)
        self.encoder = ParaformerEncoder(cfg)
        self.register_buffer("codebook", codebook.float(), persistent=False)

    @classmethod
    def from_folder(cls, folder: str | Path) -> VQ02Tokenizer:
        """Load from a Step-Audio-Tokenizer folder (the released layout)."""
        folder = Path(folder)
        model_dir = folder / PARAFORMER_DIR
        cfg, frontend_cfg = read_paraformer_config(model_dir / "config.yaml")
        cmvn = read_cmvn(check_model_file(model_dir / "am.mvn", "Paraformer CMVN (am.mvn)"), frontend_cfg.output_size)
        codebook = read_codebook(folder / CODEBOOK_FILE, cfg.output_size)
        model = cls(cfg, frontend_cfg, cmvn, codebook)
        path = model_dir / "model.pt"
        state = load_torch_state_dict(path, "Paraformer weights (model.pt)")
        load_strict(model, {k: v for k, v in state.items() if k.startswith("encoder.")}, path, "Paraformer encoder")
        return model.eval()

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """(N,) 16 kHz -> (T, 560) encoder input, exactly as the streaming front end emits it."""
        return self.frontend.offline(wav)

    def encode_batched(self, wav: torch.Tensor) -> torch.Tensor:
        """(N,) 16 kHz -> encoder output (T, 512): every 240 ms window at once, layer by layer."""
        feats = self.features(wav)
        return self.encoder(feats) if feats.shape[0] else feats.new_zeros(0, self.encoder.cfg.output_size)

    def encode_chunks(self, wav: torch.Tensor) -> torch.Tensor:
        """(N,) 16 kHz -> encoder output (T, 512) by the reference's loop over 240 ms chunks."""
        stream, state, outs = self.frontend.stream(), EncoderStream(), []
        n = wav.shape[0] // CHUNK_SAMPLES + 1
        for i in range(n):
            chunk, final = wav[i * CHUNK_SAMPLES : (i + 1) * CHUNK_SAMPLES], i == n - 1
            if final and chunk.shape[0] == 0:
                break
            feats = stream(chunk, final)
            if feats.shape[0] == 0:
                break  # only a final chunk can be too short to yield frames
            outs.append(self.encoder.forward_chunk(feats[None], state)[0])
        return torch.cat(outs) if outs else wav.new_zeros(0, self.encoder.cfg.output_size)

    def quantize(self, hidden: torch.Tensor) -> torch.Tensor:
        """Nearest centroid by Euclidean distance (the reference's ``torch.cdist`` + argmin; ties -> lowest index)."""
        if hidden.shape[0] == 0:
            return torch.zeros(0, dtype=torch.long)
        return torch.cdist(hidden.float(), self.codebook).argmin(dim=1).cpu()

    @torch.inference_mode()
    def forward(self, wav: torch.Tensor, batched: bool = True) -> torch.Tensor:
        """(N,) float 16 kHz waveform -> (T,) int64 codes on the CPU, T = ``frontend.frame_count(N)``."""
        if wav.dim() != 1:
            raise InputError(f"vq02 takes a mono 16 kHz waveform of shape (samples,), got {tuple(wav.shape)}")
        wav = wav.to(self.codebook.device, torch.float32)
        return self.quantize(self.encode_batched(wav) if batched else self.encode_chunks(wav))


def read_codebook(path: Path, dim: int) -> torch.Tensor:
    """``linguistic_tokenizer.npy``: (1024, dim) float32 k-means centroids."""
    check_model_file(path, "vq02 codebook (linguistic_tokenizer.npy)")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{path} is not a readable .npy array ({e}). Download it again.") from None
    if array.shape != (VQ02_CODES, dim) or not np.issubdtype(array.dtype, np.floating):
        raise ModelFileError(
            f"{path} holds a {array.dtype} array of shape {array.shape}; the vq02 codebook must be "
            f"({VQ02_CODES}, {dim}) floats matching the Paraformer encoder. Download linguistic_tokenizer.npy again."
        )
    return torch.from_numpy(array.astype(np.float32))
