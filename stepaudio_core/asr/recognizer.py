"""``SpeechRecognizer``: any recording -> Transcript, with transformers' Whisper classes.

Decoding is the reference's call, ``pipeline("automatic-speech-recognition")(audio_16k)``,
done directly: the same feature extractor, and ``generate`` with the pipeline's default of
5-beam search (deterministic), no language forced, no timestamp tokens. On the golden's tiny
model this gives the pipeline's ids and text with transformers 4.53.3 and 5.x alike.

Recordings longer than Whisper's 30 s window are cut at the quietest moment of each window's
last 10 s and every piece is transcribed on its own, so each piece is exactly the reference's
short-form call and the word timings, offset by the piece's start, increase across pieces.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..audio import resample, to_mono
from ..device import resolve_device, resolve_dtype
from ..errors import InputError, ModelFileError, StepAudioError
from ..limits import ASR_LANGUAGES
from ..transcript import Transcript, WordTiming
from . import align
from .folder import check_asr_folder

SAMPLE_RATE = 16000
WINDOW_SECONDS = 30.0
CUT_SEARCH_SECONDS = 10.0  # a long recording is cut in the quietest 100 ms of each window's last 10 s
# "auto" lets Whisper detect the language; the rest are the languages Step-Audio-EditX clones and edits.
LANGUAGES = ASR_LANGUAGES
MAX_BEAMS = 10
INSTALL_HINT = "speech recognition needs the transformers package: pip install transformers"

Placer = Callable[[str, nn.Module], None]


def _transformers():
    try:
        import transformers
    except ImportError:
        raise StepAudioError(INSTALL_HINT) from None
    return transformers


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def cut_points(wav: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> list[int]:
    """Sample offsets [0, ..., len] that cut ``wav`` into pieces of at most 30 s, each cut in a quiet spot."""
    window, search, hop = int(WINDOW_SECONDS * sample_rate), int(CUT_SEARCH_SECONDS * sample_rate), sample_rate // 10
    points, n = [0], wav.shape[-1]
    while n - points[-1] > window:
        start = points[-1] + window - search
        region = wav[start : points[-1] + window]
        energy = region[: len(region) // hop * hop].reshape(-1, hop).square().mean(dim=1)
        quiet = int(torch.argmin(energy))  # the first of equally quiet spots: deterministic
        points.append(start + quiet * hop + hop // 2)
    points.append(n)
    return points


class SpeechRecognizer:
    """A Whisper folder, loaded on first use (on the CPU, then placed like the pack's other models)."""

    def __init__(self, folder: str | Path, *, device: str = "auto", dtype: str = "auto", placer: Placer | None = None):
        self.folder = check_asr_folder(folder)
        self.device = resolve_device(device)
        # fp32 on the CPU, where half precision is slow; bf16 on GPUs that have it (else fp32), or as asked.
        self.dtype = resolve_dtype(dtype, self.device)
        self.placer = placer or (lambda name, module: module.to(self.device))
        self._parts: tuple | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SpeechRecognizer({str(self.folder)!r}, device={self.device.type}, dtype={self.dtype})"

    def _load(self) -> tuple:
        transformers = _transformers()
        dtype_arg = "dtype" if _version(transformers.__version__) >= (4, 56) else "torch_dtype"
        try:
            model, info = transformers.WhisperForConditionalGeneration.from_pretrained(
                str(self.folder), output_loading_info=True, **{dtype_arg: self.dtype}
            )
            features = transformers.WhisperFeatureExtractor.from_pretrained(str(self.folder))
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(self.folder))
        except ImportError as e:
            # not the folder: transformers itself, or a package it imports on its own (e.g. a newer
            # 'kernels' beside an older transformers), failed to import
            raise InputError(
                f"transformers {transformers.__version__} could not load its Whisper classes ({e}); a package "
                "installed beside it does not match it. Update transformers (pip install -U transformers), or "
                "reinstall the package the message names."
            ) from None
        except Exception as e:  # transformers raises many types for broken files; all mean "this folder is bad"
            raise ModelFileError(
                f"the Whisper model in {self.folder} could not be loaded ({type(e).__name__}: {e}); download it again"
            ) from None
        missing = [k for k in info["missing_keys"] if k != "proj_out.weight"]  # proj_out is tied to embed_tokens
        if missing or info["unexpected_keys"] or info["mismatched_keys"]:
            bad = (missing + list(info["unexpected_keys"]) + [str(m) for m in info["mismatched_keys"]])[:3]
            raise ModelFileError(
                f"the weights in {self.folder} do not fit its config.json (first keys: {bad}); download the ASR model again"
            )
        # ComfyUI's ModelPatcher assigns ``module.device``, a read-only property of transformers models,
        # so the placer gets a plain container that holds the model.
        holder = nn.Module()
        holder.whisper = model.eval()
        return holder, features, tokenizer

    def parts(self) -> tuple:
        """(model, feature extractor, tokenizer), loading them once; the model is placed on every call."""
        with self._lock:
            if self._parts is None:
                self._parts = self._load()
        holder, features, tokenizer = self._parts
        self.placer("asr", holder)
        return holder.whisper, features, tokenizer

    def unload(self) -> None:
        with self._lock:
            self._parts = None

    # ------------------------------------------------------------------ transcription

    def transcribe(
        self,
        wav: torch.Tensor,
        sample_rate: int,
        *,
        language: str = "auto",
        num_beams: int = 5,
        word_timings: bool = True,
        on_piece: Callable[[int, int], None] | None = None,
    ) -> Transcript:
        """One recording ((samples,) or (channels, samples), any rate) -> its transcript."""
        if language not in LANGUAGES:
            raise InputError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")
        if not isinstance(num_beams, int) or not 1 <= num_beams <= MAX_BEAMS:
            raise InputError(f"num_beams must be a whole number from 1 to {MAX_BEAMS}, not {num_beams!r}")
        audio = resample(to_mono(wav).cpu(), sample_rate, SAMPLE_RATE)
        points = cut_points(audio)
        texts, words, languages = [], [], []
        for i, (a, b) in enumerate(zip(points[:-1], points[1:])):
            if on_piece is not None:
                on_piece(i, len(points) - 1)
            piece = self._piece(audio[a:b], language, num_beams, word_timings)
            texts.append(piece.text)
            languages.append(piece.language)
            words += [WordTiming(w.text, w.start + a / SAMPLE_RATE, w.end + a / SAMPLE_RATE) for w in piece.words]
        if on_piece is not None:
            on_piece(len(points) - 1, len(points) - 1)
        spoken = max(set(languages), key=languages.count) if any(languages) else None
        joiner = "" if spoken in align.UNSPACED else " "
        return Transcript(joiner.join(t for t in texts if t), tuple(words), spoken)

    def transcribe_batch(self, waveform: torch.Tensor, sample_rate: int, **kwargs) -> tuple[Transcript, ...]:
        """A ComfyUI-style batch (B, channels, samples) -> one transcript per clip."""
        if not isinstance(waveform, torch.Tensor) or waveform.dim() != 3 or waveform.shape[0] == 0:
            shape = tuple(waveform.shape) if isinstance(waveform, torch.Tensor) else type(waveform).__name__
            raise InputError(
                f"input 'audio' must be a batch of shape (batch, channels, samples) with a clip; got {shape}"
            )
        return tuple(self.transcribe(w, sample_rate, **kwargs) for w in waveform)

    def features(self, audio: np.ndarray):
        """The feature extractor's (input_features, attention_mask) for 16 kHz mono audio."""
        _, extractor, _ = self.parts()
        out = extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt", return_attention_mask=True)
        return out.input_features, out.attention_mask

    @torch.inference_mode()
    def generate_ids(self, audio: torch.Tensor, language: str = "auto", num_beams: int = 5) -> list[int]:
        """The ids ``generate`` returns for one 16 kHz piece (no decoder prompt), as the reference's pipeline call."""
        model, _, _ = self.parts()
        feats, mask = self.features(audio.float().numpy())
        param = next(model.parameters())
        kwargs = {"num_beams": num_beams}
        if language != "auto":
            kwargs.update(language=language, task="transcribe")
        ids = model.generate(
            input_features=feats.to(param.device, param.dtype), attention_mask=mask.to(param.device), **kwargs
        )
        return ids[0].tolist()

    @torch.inference_mode()
    def _piece(self, audio: torch.Tensor, language: str, num_beams: int, word_timings: bool) -> Transcript:
        model, _, tokenizer = self.parts()
        generation = model.generation_config
        ids = self.generate_ids(audio, language, num_beams)
        # Timestamp tokens follow <|notimestamps|>; they and the special tokens are not text.
        specials = set(tokenizer.all_special_ids)
        text_ids = [t for t in ids if t not in specials and t <= generation.no_timestamps_token_id]
        text = tokenizer.decode(text_ids, skip_special_tokens=True).strip()
        if not (word_timings and text_ids):
            # Without word timings the language is reported only when it was given: detecting it would cost
            # another encoder pass, which an automatic transcript (Encode, the CLI) does not need.
            return Transcript(text, (), None if language == "auto" else language)
        param = next(model.parameters())
        feats, _ = self.features(audio.float().numpy())
        states = model.get_encoder()(feats.to(param.device, param.dtype)).last_hidden_state
        lang_id = generation.lang_to_id[f"<|{language}|>"] if language != "auto" else None
        if lang_id is None:
            lang_id = self._detect_language(model, states)
        spoken = tokenizer.convert_ids_to_tokens(lang_id)[2:-2]
        words = ()
        if word_timings and text_ids:
            words = self._align(model, tokenizer, states, lang_id, text_ids, audio.shape[-1], spoken)
        return Transcript(text, words, spoken)

    @staticmethod
    def _detect_language(model, states: torch.Tensor) -> int:
        """The most likely language token after <|startoftranscript|>, as Whisper's ``detect_language`` picks it."""
        start = torch.tensor([[model.config.decoder_start_token_id]], device=states.device)
        hidden = model.model.decoder(input_ids=start, encoder_hidden_states=states, use_cache=False).last_hidden_state
        logits = model.proj_out(hidden)[0, -1]
        languages = torch.tensor(sorted(model.generation_config.lang_to_id.values()), device=logits.device)
        return int(languages[logits[languages].argmax()])

    def _align(self, model, tokenizer, states, lang_id: int, text_ids: list[int], samples: int, language: str):
        generation = model.generation_config
        heads = getattr(generation, "alignment_heads", None)
        if not heads:  # a checkpoint without alignment heads: use every cross-attention head of the upper half
            layers, n = model.config.decoder_layers, model.config.decoder_attention_heads
            heads = [[layer, h] for layer in range(layers // 2, layers) for h in range(n)]
        prompt = [model.config.decoder_start_token_id, lang_id, generation.task_to_id["transcribe"]]
        tokens = prompt + [generation.no_timestamps_token_id] + text_ids + [generation.eos_token_id]
        weights = align.cross_attention(model, states, tokens, heads)
        # Rows from <|notimestamps|> to the last text token: row i predicts text token i.
        weights = weights[:, len(prompt) : len(prompt) + len(text_ids) + 1]
        frames = min(samples // 320 + 1, weights.shape[-1])
        filter_width = getattr(model.config, "median_filter_width", 7)
        starts = align.token_starts(weights.cpu(), frames, filter_width)
        starts = np.minimum(np.maximum.accumulate(starts), samples / SAMPLE_RATE)
        pieces = self._pieces(tokenizer, text_ids)
        return tuple(
            WordTiming("".join(pieces[a:b]).strip(), float(starts[a]), float(starts[b]))
            for a, b in align.split_words(pieces, language)
        )

    @staticmethod
    def _pieces(tokenizer, ids: list[int]) -> list[str]:
        """The text each token completes; "" for tokens inside an unfinished multi-byte character."""
        pieces, run = [], []
        for i, t in enumerate(ids):
            run.append(t)
            s = tokenizer.decode(run, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            if s.endswith("\ufffd") and i + 1 < len(ids):
                pieces.append("")
            else:
                pieces.append(s)
                run = []
        return pieces
