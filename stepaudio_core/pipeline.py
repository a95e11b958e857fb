"""The facade: one handle over a model folder, loading each component on first use.

The CLI, the ComfyUI nodes and Python users all go through this class, so a feature behaves
the same wherever it is used. Components load on the CPU; right before one is used, the
``placer`` brings it to the compute device. By default that is a plain ``.to(device)``; the
ComfyUI adapter passes its model management instead, so ComfyUI decides what occupies VRAM
and "Unload models" frees ours.

Flow of the reference (tts.py): encode the recording (codes, prompt mel, CAM++ voice), build a
clone or edit prompt, sample audio tokens from the LM, decode them in the recording's voice.

Every public method checks its inputs first (``validate``), and every model call runs under a
guard that turns running out of memory into ``NotEnoughMemoryError`` once what the call
allocated is freed, so a server that hosts this handle stays usable after a failed run.
"""

from __future__ import annotations

import gc
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from . import validate
from .bundle import Bundle, find_bundle
from .device import resolve_device, resolve_dtype
from .edits import check_edit
from .errors import InputError, ModelFileError, StepAudioError
from .prompt import EncodedPrompt, GeneratedTokens

Placer = Callable[[str, nn.Module], None]
TokenCallback = Callable[[int, int], None]
T = TypeVar("T")
QUANTIZATIONS = ("none", "int8", "nf4")
COMPONENTS = ("tokenizer", "decoder", "lm")
PROMPT_CACHE_SIZE = 32
PROMPT_CACHE_BYTES = 512 * 2**20  # the recordings prompts keep can be long: bound the cache by size too
EDIT_WINDOW_SECONDS = 30.0
MAX_GENERATION_SECONDS = 120.0  # per generation: four times the model's 30 s window is already far past it


class NotEnoughMemoryError(InputError):
    """A run needed more memory than the device had. What it allocated is freed; the handle stays usable."""


def _is_oom(e: BaseException) -> bool:
    if isinstance(e, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    # MPS and the CPU allocator raise plain RuntimeErrors
    text = str(e)
    return isinstance(e, RuntimeError) and ("out of memory" in text or "not enough memory" in text)


def _content_key(wav: torch.Tensor, sample_rate: int, text: str) -> str:
    h = hashlib.sha256()
    h.update(str((tuple(wav.shape), str(wav.dtype), int(sample_rate))).encode())
    h.update(wav.detach().cpu().contiguous().numpy().tobytes())
    h.update(text.encode("utf-8"))
    return h.hexdigest()


def _nbytes(prompt: EncodedPrompt) -> int:
    return sum(t.numel() * t.element_size() for t in (prompt.audio, prompt.mel, prompt.speaker))


def _pcm16_round_trip(wav: torch.Tensor) -> torch.Tensor:
    """What writing a 16-bit WAV and reading it back does to a waveform (the reference's iteration path)."""
    return torch.clamp(torch.round(wav * 32767.0), -32768, 32767) / 32768.0


class StepAudioEditX:
    def __init__(
        self,
        models_dir: str | Path,
        *,
        device: str = "auto",
        dtype: str = "auto",
        quantization: str = "none",
        placer: Placer | None = None,
    ):
        self.bundle: Bundle = find_bundle(models_dir)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if quantization not in QUANTIZATIONS:
            raise InputError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, not {quantization!r}")
        if quantization != "none" and self.device.type != "cuda":
            raise InputError(f"{quantization} quantization runs on CUDA GPUs only (bitsandbytes); this handle uses {self.device.type}")
        self.quantization = quantization
        self.placer = placer or (lambda name, module: module.to(self.device))
        self._components: dict[str, nn.Module] = {}
        self._text_tokenizer = None
        self._prompts: OrderedDict[str, EncodedPrompt] = OrderedDict()
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"StepAudioEditX({str(self.bundle.root)!r}, device={self.device.type}, dtype={self.dtype}, quantization={self.quantization})"

    @property
    def sample_rate(self) -> int:
        return 24000

    # ------------------------------------------------------------------ components

    def loaded(self) -> dict[str, nn.Module]:
        """The components loaded so far, by name."""
        return dict(self._components)

    def component(self, name: str) -> nn.Module:
        """Load ``name`` on the CPU on first use (once, even with concurrent callers) and place it.

        A load that fails keeps nothing: the next call reads the files again, so fixing a broken
        file and running again is enough.
        """
        with self._lock:
            if name not in self._components:
                self._components[name] = self._load(name)
            module = self._components[name]
        if not (name == "lm" and self.quantization != "none"):  # bitsandbytes layers cannot move
            self.placer(name, module)
        return module

    def _load(self, name: str) -> nn.Module:
        if name not in COMPONENTS:
            raise KeyError(name)
        try:
            return self._build(name)
        except StepAudioError:
            raise
        except Exception as e:
            if _is_oom(e):
                raise
            # The loaders check the files they know can be wrong; anything else escaping them
            # comes from values no release has (a negative size, a string for a number).
            folders = {"decoder": self.bundle.decoder_dir, "tokenizer": self.bundle.tokenizer_dir}
            folder = folders.get(name, self.bundle.lm_dir)
            raise ModelFileError(
                f"the {name} could not be built from the files in {folder} ({type(e).__name__}: {e}). A "
                "configuration file there (config.json, cosyvoice.yaml or config.yaml) holds values this model "
                "cannot have; download the folder again. If it is the released one, please report this as a bug."
            ) from e

    def _build(self, name: str) -> nn.Module:
        if name == "decoder":
            from .decoder.token2wav import Decoder

            # fp32, as the reference runs its decoder: a bf16 flow is a speed option, not the default.
            return Decoder.from_folder(self.bundle.require_decoder())
        if name == "tokenizer":
            from .tokenizer.audio_tokenizer import AudioTokenizer

            return AudioTokenizer.from_folder(self.bundle.tokenizer_dir)
        from .lm.load import load_step1

        if self.quantization != "none":
            return load_step1(self.bundle.lm_dir, device=self.device, dtype=self.dtype, quantize=self.quantization)
        return load_step1(self.bundle.lm_dir, device="cpu", dtype=self.dtype)

    @property
    def text_tokenizer(self):
        with self._lock:
            if self._text_tokenizer is None:
                from .lm.text_tokenizer import TextTokenizer

                self._text_tokenizer = TextTokenizer(self.bundle.lm_dir / "tokenizer.model")
            return self._text_tokenizer

    def unload(self) -> None:
        """Drop every loaded component and cached prompt; the next use loads them again."""
        with self._lock:
            self._components.clear()
            self._prompts.clear()

    def _guarded(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``; if it runs out of memory, free what it held and raise NotEnoughMemoryError."""
        try:
            return fn()
        except (torch.cuda.OutOfMemoryError, MemoryError, RuntimeError) as e:
            if not _is_oom(e):
                raise
        # Only here, past the except block, is the error's traceback gone, and with it the frames
        # that still held the tensors of the failed call (activations, the LM's KV cache).
        self._release_memory()
        raise NotEnoughMemoryError(f"ran out of {self.device.type} memory while {what}. {self._memory_advice()}")

    def _release_memory(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        elif self.device.type == "mps":
            torch.mps.empty_cache()

    def _memory_advice(self) -> str:
        ways = ["use a shorter recording or text (or a lower max_seconds)"]
        if self.device.type != "cpu":
            if self.quantization == "none":
                ways.append("load the LM quantized (int8 or nf4)" if self.device.type == "cuda" else "use dtype fp16")
            ways.append("free other models (ComfyUI: Unload models)")
            ways.append("run on the CPU (device cpu)")
        else:
            ways.append("close other programs")
        return f"To need less memory: {'; '.join(ways)}. What this run allocated has been freed."

    @property
    def decoder(self):
        return self.component("decoder")

    # ------------------------------------------------------------------ encode

    def encode(self, wav: torch.Tensor, sample_rate: int, text: str = "", *, cache: bool = True) -> EncodedPrompt:
        """A recording (channels, samples) or (samples,) at any rate, with its transcript -> prompt.

        Served from a bounded cache keyed by the content of (waveform, rate, transcript), so a
        reference voice used by many clones and edits is encoded once. The model reads at most
        30 s: codes, mel and voice come from the first 30 s, while ``audio`` keeps the whole
        recording so that Clone (which uses the first 30 s) and Edit (which edits a longer one in
        pieces) can tell. ``cache=False`` neither reads nor fills the cache (the pieces of a long edit).
        """
        from .audio import prompt_audio

        wav, sample_rate = validate.prepare_audio(wav, sample_rate, "audio")
        text = validate.text_input(text, "transcript")
        key = _content_key(wav, sample_rate, text) if cache else None
        with self._lock:
            if key in self._prompts:
                self._prompts.move_to_end(key)
                return self._prompts[key]
        from .lm.prompts import clone_speaker_id

        speaker_id = clone_speaker_id(text, wav if wav.dim() == 2 else wav[None])
        mono = prompt_audio(wav)
        validate.warn_transcript_mismatch(text, mono.shape[-1] / sample_rate)
        window = mono[: int(validate.WINDOW_SECONDS * sample_rate)]

        def run():
            codes = self.component("tokenizer").encode(window, sample_rate)
            if codes.groups == 0:
                raise InputError(
                    f"input 'audio' holds too little sound to encode ({window.shape[-1] / sample_rate:.2f} s after "
                    "trimming silence); give at least half a second of speech"
                )
            mel, speaker = self.decoder.prompt_features(window, sample_rate)
            return codes, mel, speaker

        codes, mel, speaker = self._guarded("encoding the recording", run)
        prompt = EncodedPrompt(codes.mixed(), mel.cpu(), speaker.cpu(), text, mono, int(sample_rate), speaker_id)
        if not cache:
            return prompt
        with self._lock:
            self._prompts[key] = prompt
            while len(self._prompts) > 1 and (
                len(self._prompts) > PROMPT_CACHE_SIZE
                or sum(_nbytes(p) for p in self._prompts.values()) > PROMPT_CACHE_BYTES
            ):
                self._prompts.popitem(last=False)
        return prompt

    def encode_batch(self, waveform: torch.Tensor, sample_rate: int, text: str = "") -> tuple[EncodedPrompt, ...]:
        """A ComfyUI-style batch (B, channels, samples) -> one prompt per clip."""
        if not isinstance(waveform, torch.Tensor) or waveform.dim() != 3:
            shape = tuple(waveform.shape) if isinstance(waveform, torch.Tensor) else type(waveform).__name__
            raise InputError(f"input 'audio' must be a batch of shape (batch, channels, samples); got {shape}")
        if waveform.shape[0] == 0:
            raise InputError("input 'audio' holds no clips (batch size 0); connect a recording")
        prompts = []
        for i, w in enumerate(waveform):
            try:
                prompts.append(self.encode(w, sample_rate, text))
            except NotEnoughMemoryError:
                raise
            except InputError as e:
                if len(waveform) == 1:
                    raise
                raise InputError(f"clip {i + 1} of {len(waveform)} in the batch: {e}") from None
        return tuple(prompts)

    # ------------------------------------------------------------------ generate

    def _generate(self, prompt_ids: list[int], seconds: float, seed: int, temperature: float, on_token) -> tuple[int, ...]:
        from .lm.generate import Sampling, generate_audio_codes, max_new_tokens_for

        if not 0 < temperature <= 5:
            raise InputError(f"input 'temperature' must be in (0, 5]; got {temperature}")

        def run():
            lm = self.component("lm")
            generator = torch.Generator(device=lm.device).manual_seed(int(seed))
            return generate_audio_codes(
                lm, prompt_ids, max_new_tokens_for(seconds), Sampling(temperature=temperature), generator, on_token
            )

        codes = self._guarded(f"generating up to {seconds:.1f} s of audio", run)
        if not codes:
            raise InputError("the model produced no audio tokens; try another seed or check the inputs")
        return tuple(codes)

    def clone(
        self,
        prompt: EncodedPrompt,
        text: str,
        *,
        language: str | None = None,
        seed: int = 0,
        temperature: float = 0.7,
        max_seconds: float | None = None,
        on_token: TokenCallback | None = None,
    ) -> GeneratedTokens:
        """Speak ``text`` in the voice of ``prompt``; long text is generated piece by piece."""
        from .lm.prompts import clone_prompt_ids
        from .longform import split_text, spoken_units

        if not prompt.text:
            raise InputError("cloning needs the transcript of the reference recording; write it in the Encode transcript")
        text = validate.text_input(text, "text", fix="type what the cloned voice should say")
        seed = validate.check_seed(seed)
        if max_seconds is not None and not 0 < max_seconds <= MAX_GENERATION_SECONDS:
            raise InputError(
                f"input 'max_seconds' must be above 0 and at most {MAX_GENERATION_SECONDS:.0f} s (or unset, to derive "
                f"it from the text); got {max_seconds}"
            )
        validate.warn_clone_window(prompt.seconds)
        pieces = split_text(text)
        out = []
        for i, piece in enumerate(pieces):
            ids = clone_prompt_ids(self.text_tokenizer, prompt.speaker_id, prompt.text, prompt.tokens, piece, language)
            # A generous bound from the text's spoken length: it only stops a generation that never ends.
            seconds = max_seconds or min(90.0, 3.0 + spoken_units(piece) / 6.0)
            out.append(self._generate(ids, seconds, seed + i, temperature, on_token))
        return GeneratedTokens(tuple(out), prompt, text.strip())

    def edit(
        self,
        prompt: EncodedPrompt,
        edit_type: str,
        option: str | None = None,
        *,
        new_text: str | None = None,
        seed: int = 0,
        temperature: float = 0.7,
        on_token: TokenCallback | None = None,
        max_seconds: float | None = None,
        max_piece_seconds: float | None = None,
        on_piece: Callable[[int, int], None] | None = None,
        words=None,
        transcriber=None,
    ) -> GeneratedTokens:
        """One edit pass of the recording in ``prompt``; the result keeps its voice.

        A recording longer than ``max_piece_seconds`` is cut at pauses and edited piece by piece
        (``longedit``): ``on_piece(i, n)`` reports each piece, ``words`` (word timings) and
        ``transcriber`` (wav, rate -> Transcript) optionally place the transcript in the pieces.
        ``max_seconds`` caps the generated audio (per piece).
        """
        from .lm.prompts import edit_prompt_ids

        kind, option = check_edit(edit_type, option)
        seed = validate.check_seed(seed)
        max_piece_seconds = validate.check_piece_seconds(max_piece_seconds)
        if max_seconds is not None and not 0 < max_seconds <= EDIT_WINDOW_SECONDS:
            raise InputError(f"input 'max_seconds' must be above 0 and at most {EDIT_WINDOW_SECONDS:.0f} s; got {max_seconds}")
        if prompt.seconds > max_piece_seconds:
            from .longedit import edit_long

            return edit_long(
                self, prompt, edit_type, option, new_text=validate.text_input(new_text, "new_text") or None, seed=seed,
                max_piece_seconds=max_piece_seconds, max_seconds=max_seconds, on_token=on_token, on_piece=on_piece,
                words=words, transcriber=transcriber,
            )
        if kind.needs_audio_text and not prompt.text:
            raise InputError(
                f"the {edit_type} edit needs the transcript of the recording; write it in the Encode transcript"
            )
        new_text = validate.text_input(new_text, "new_text")
        if kind.needs_new_text and not new_text:
            raise InputError(
                "input 'new_text' is empty: a paralinguistic edit needs the new text, with tags such as [Laughter] "
                "where the sounds go"
            )
        if kind.needs_new_text:
            validate.warn_untagged_paralinguistic(new_text)
        ids = edit_prompt_ids(self.text_tokenizer, edit_type, option, prompt.text, prompt.tokens, new_text or None)
        # Edits keep roughly the input's length; a slower speed can double it.
        # The model edits at most 30 s, so an edit's output longer than that could not be edited
        # again; within that window, leave room for a slower speed edit.
        seconds = min(EDIT_WINDOW_SECONDS, 2.5 * prompt.seconds + 5.0, max_seconds or EDIT_WINDOW_SECONDS)
        codes = self._generate(ids, seconds, seed, temperature, on_token)
        return GeneratedTokens((codes,), prompt, new_text if kind.needs_new_text else prompt.text)

    # ------------------------------------------------------------------ decode

    def decode(
        self,
        tokens: GeneratedTokens,
        *,
        prompt: EncodedPrompt | None = None,
        seed: int = 0,
        flow_steps: int = 10,
    ) -> torch.Tensor:
        """Tokens -> float32 mono waveform (N,) at 24 kHz, in the voice of ``prompt`` (default: their own)."""
        from .longedit import LongEditTokens, decode_long
        from .longform import crossfade_join

        if isinstance(tokens, LongEditTokens):
            return decode_long(self, tokens, voice=prompt, seed=seed, flow_steps=flow_steps)
        prompt = prompt or tokens.prompt
        if prompt is None:
            raise InputError("decoding needs the prompt the tokens were generated for (its voice and mel)")
        if not 1 <= flow_steps <= 100:
            raise InputError(f"input 'flow_steps' must be between 1 and 100; got {flow_steps}")
        seed = validate.check_seed(seed)

        def run():
            decoder = self.decoder
            return [
                decoder(piece, prompt.tokens, prompt.mel, prompt.speaker, seed=seed, n_timesteps=flow_steps)
                for piece in tokens.pieces
            ]

        return crossfade_join(self._guarded("decoding audio", run), self.sample_rate)

    # ------------------------------------------------------------------ iterate

    def iterate_edit(
        self,
        prompt: EncodedPrompt,
        edit_type: str,
        option: str | None = None,
        *,
        new_text: str | None = None,
        n_iter: int = 1,
        seed: int = 0,
        mode: str = "audio",
        flow_steps: int = 10,
        on_token: TokenCallback | None = None,
        on_pass: Callable[[int], None] | None = None,
        max_seconds: float | None = None,
        max_piece_seconds: float | None = None,
        on_piece: Callable[[int, int], None] | None = None,
        words=None,
        transcriber=None,
    ) -> list[tuple[GeneratedTokens, torch.Tensor]]:
        """``n_iter`` edit passes, each on the previous result; returns (tokens, waveform) of every pass.

        mode "audio" is the reference's loop: each result is decoded, written as 16-bit audio and
        encoded again. mode "tokens" feeds a pass's tokens straight into the next pass's LM prompt
        and decodes every pass in the original recording's voice: faster, and not what the
        reference does. A recording longer than ``max_piece_seconds`` runs every pass piece by
        piece (``longedit.iterate_long``); each pass still returns the whole recording.
        """
        if not 1 <= n_iter <= 20:
            raise InputError(f"the number of edit passes (iterations) must be between 1 and 20; got {n_iter}")
        if mode not in ("audio", "tokens"):
            raise InputError(f"iteration mode (input 'mode') must be 'audio' or 'tokens', not {mode!r}")
        if prompt.seconds > validate.check_piece_seconds(max_piece_seconds):
            from .longedit import iterate_long

            kind, option = check_edit(edit_type, option)  # max_seconds is checked by each piece's edit
            return iterate_long(
                self, prompt, edit_type, option, new_text=validate.text_input(new_text, "new_text") or None, n_iter=n_iter,
                seed=validate.check_seed(seed), max_piece_seconds=validate.check_piece_seconds(max_piece_seconds),
                mode=mode, flow_steps=flow_steps, max_seconds=max_seconds, on_token=on_token, on_pass=on_pass,
                on_piece=on_piece, words=words, transcriber=transcriber,
            )
        results = []
        current = prompt
        for i in range(n_iter):
            if on_pass is not None:
                on_pass(i)
            tokens = self.edit(
                current, edit_type, option, new_text=new_text, seed=seed + i, on_token=on_token, max_seconds=max_seconds,
                max_piece_seconds=max_piece_seconds,
            )
            if mode == "tokens":
                # The LM edits the previous pass's tokens, but the decoder is conditioned on the
                # original recording, whose tokens and mel belong together.
                tokens = replace(tokens, prompt=prompt)
            wav = self.decode(tokens, seed=seed, flow_steps=flow_steps)
            results.append((tokens, wav))
            if i + 1 < n_iter:
                if mode == "audio":
                    try:
                        current = self.encode(_pcm16_round_trip(wav)[None], self.sample_rate, tokens.text)
                    except NotEnoughMemoryError:
                        raise
                    except InputError as e:
                        raise InputError(
                            f"edit pass {i + 1} produced audio that cannot be edited again ({e}); run fewer passes "
                            "or try another seed"
                        ) from None
                else:
                    current = replace(current, tokens=tokens.tokens, text=tokens.text)
        return results

    # ------------------------------------------------------------------ one-call jobs (the CLI)

    def clone_long(self, prompt: EncodedPrompt, text: str, *, seed: int = 0, flow_steps: int = 10, **kwargs) -> torch.Tensor:
        """Clone and decode in one call; long text comes back as one crossfaded waveform."""
        return self.decode(self.clone(prompt, text, seed=seed, **kwargs), seed=seed, flow_steps=flow_steps)

    def edit_iterations(
        self, wav: torch.Tensor, sample_rate: int, text: str, edit_type: str, option: str | None = None, **kwargs
    ) -> list[torch.Tensor]:
        """Encode a recording and edit it ``n_iter`` times; the waveform of every pass."""
        prompt = self.encode(wav, sample_rate, text)
        return [w for _, w in self.iterate_edit(prompt, edit_type, option, **kwargs)]
