"""The facade: one handle over a model folder, loading each component on first use.

The CLI, the ComfyUI nodes and Python users all go through this class, so a feature behaves
the same wherever it is used. Components load on the CPU; right before one is used, the
``placer`` brings it to the compute device. By default that is a plain ``.to(device)``; the
ComfyUI adapter passes its model management instead, so ComfyUI decides what occupies VRAM
and "Unload models" frees ours.

Flow of the reference (tts.py): encode the recording (codes, prompt mel, CAM++ voice), build a
clone or edit prompt, sample audio tokens from the LM, decode them in the recording's voice.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from .bundle import Bundle, find_bundle
from .device import resolve_device, resolve_dtype
from .edits import check_edit
from .errors import InputError
from .prompt import EncodedPrompt, GeneratedTokens

Placer = Callable[[str, nn.Module], None]
TokenCallback = Callable[[int, int], None]
QUANTIZATIONS = ("none", "int8", "nf4")
PROMPT_CACHE_SIZE = 32


def _content_key(wav: torch.Tensor, sample_rate: int, text: str) -> str:
    h = hashlib.sha256()
    h.update(str((tuple(wav.shape), str(wav.dtype), int(sample_rate))).encode())
    h.update(wav.detach().cpu().contiguous().numpy().tobytes())
    h.update(text.encode("utf-8"))
    return h.hexdigest()


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
        """Load ``name`` on the CPU on first use (once, even with concurrent callers) and place it."""
        with self._lock:
            if name not in self._components:
                self._components[name] = self._load(name)
            module = self._components[name]
        if not (name == "lm" and self.quantization != "none"):  # bitsandbytes layers cannot move
            self.placer(name, module)
        return module

    def _load(self, name: str) -> nn.Module:
        if name == "decoder":
            from .decoder.token2wav import Decoder

            # fp32, as the reference runs its decoder: a bf16 flow is a speed option, not the default.
            return Decoder.from_folder(self.bundle.require_decoder())
        if name == "tokenizer":
            from .tokenizer.audio_tokenizer import AudioTokenizer

            return AudioTokenizer.from_folder(self.bundle.tokenizer_dir)
        if name == "lm":
            from .lm.load import load_step1

            if self.quantization != "none":
                return load_step1(self.bundle.lm_dir, device=self.device, dtype=self.dtype, quantize=self.quantization)
            return load_step1(self.bundle.lm_dir, device="cpu", dtype=self.dtype)
        raise KeyError(name)

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

    @property
    def decoder(self):
        return self.component("decoder")

    # ------------------------------------------------------------------ encode

    def encode(self, wav: torch.Tensor, sample_rate: int, text: str = "") -> EncodedPrompt:
        """A recording (channels, samples) or (samples,) at any rate, with its transcript -> prompt.

        Served from a bounded cache keyed by the content of (waveform, rate, transcript), so a
        reference voice used by many clones and edits is encoded once.
        """
        from .audio import prompt_audio

        if not isinstance(wav, torch.Tensor) or wav.dim() not in (1, 2):
            raise InputError("audio must be a waveform of shape (channels, samples) or (samples,)")
        wav = wav.detach().float().cpu()
        text = (text or "").strip()
        key = _content_key(wav, sample_rate, text)
        with self._lock:
            if key in self._prompts:
                self._prompts.move_to_end(key)
                return self._prompts[key]
        from .lm.prompts import clone_speaker_id

        speaker_id = clone_speaker_id(text, wav if wav.dim() == 2 else wav[None])
        mono = prompt_audio(wav)
        codes = self.component("tokenizer").encode(mono, sample_rate)
        if codes.groups == 0:
            raise InputError(
                f"the recording is too short or silent to encode ({mono.shape[-1] / sample_rate:.2f} s); give at "
                "least half a second of speech"
            )
        mel, speaker = self.decoder.prompt_features(mono, sample_rate)
        prompt = EncodedPrompt(codes.mixed(), mel.cpu(), speaker.cpu(), text, mono, int(sample_rate), speaker_id)
        with self._lock:
            self._prompts[key] = prompt
            while len(self._prompts) > PROMPT_CACHE_SIZE:
                self._prompts.popitem(last=False)
        return prompt

    def encode_batch(self, waveform: torch.Tensor, sample_rate: int, text: str = "") -> tuple[EncodedPrompt, ...]:
        """A ComfyUI-style batch (B, channels, samples) -> one prompt per clip."""
        if waveform.dim() != 3:
            raise InputError(f"audio must be a batch of shape (B, channels, samples); got {tuple(waveform.shape)}")
        return tuple(self.encode(w, sample_rate, text) for w in waveform)

    # ------------------------------------------------------------------ generate

    def _generate(self, prompt_ids: list[int], seconds: float, seed: int, temperature: float, on_token) -> tuple[int, ...]:
        from .lm.generate import Sampling, generate_audio_codes, max_new_tokens_for

        if not 0 < temperature <= 5:
            raise InputError(f"temperature must be in (0, 5]; got {temperature}")
        lm = self.component("lm")
        generator = torch.Generator(device=lm.device).manual_seed(int(seed))
        codes = generate_audio_codes(
            lm, prompt_ids, max_new_tokens_for(seconds), Sampling(temperature=temperature), generator, on_token
        )
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
        pieces = split_text(text or "")
        if not pieces:
            raise InputError("the text to speak is empty; type what the cloned voice should say")
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
    ) -> GeneratedTokens:
        """One edit pass of the recording in ``prompt``; the result keeps its voice."""
        from .lm.prompts import edit_prompt_ids

        kind, option = check_edit(edit_type, option)
        if kind.needs_audio_text and not prompt.text:
            raise InputError(
                f"a {edit_type} edit needs the transcript of the recording; write it in the Encode transcript"
            )
        new_text = (new_text or "").strip()
        if kind.needs_new_text and not new_text:
            raise InputError("a paralinguistic edit needs the new text, with tags such as [Laughter] where the sounds go")
        ids = edit_prompt_ids(self.text_tokenizer, edit_type, option, prompt.text, prompt.tokens, new_text or None)
        # Edits keep roughly the input's length; a slower speed can double it.
        seconds = min(90.0, 2.5 * prompt.seconds + 5.0)
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
        from .longform import crossfade_join

        prompt = prompt or tokens.prompt
        if prompt is None:
            raise InputError("decoding needs the prompt the tokens were generated for (its voice and mel)")
        if not 1 <= flow_steps <= 100:
            raise InputError(f"flow_steps must be between 1 and 100; got {flow_steps}")
        decoder = self.decoder
        clips = [
            decoder(piece, prompt.tokens, prompt.mel, prompt.speaker, seed=seed, n_timesteps=flow_steps)
            for piece in tokens.pieces
        ]
        return crossfade_join(clips, self.sample_rate)

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
    ) -> list[tuple[GeneratedTokens, torch.Tensor]]:
        """``n_iter`` edit passes, each on the previous result; returns (tokens, waveform) of every pass.

        mode "audio" is the reference's loop: each result is decoded, written as 16-bit audio and
        encoded again. mode "tokens" feeds a pass's tokens straight into the next pass's LM prompt
        and decodes every pass in the original recording's voice: faster, and not what the
        reference does.
        """
        if not 1 <= n_iter <= 20:
            raise InputError(f"the number of edit passes must be between 1 and 20; got {n_iter}")
        if mode not in ("audio", "tokens"):
            raise InputError(f"iteration mode must be 'audio' or 'tokens', not {mode!r}")
        results = []
        current = prompt
        for i in range(n_iter):
            if on_pass is not None:
                on_pass(i)
            tokens = self.edit(current, edit_type, option, new_text=new_text, seed=seed + i, on_token=on_token)
            if mode == "tokens":
                # The LM edits the previous pass's tokens, but the decoder is conditioned on the
                # original recording, whose tokens and mel belong together.
                tokens = replace(tokens, prompt=prompt)
            wav = self.decode(tokens, seed=seed, flow_steps=flow_steps)
            results.append((tokens, wav))
            if i + 1 < n_iter:
                if mode == "audio":
                    current = self.encode(_pcm16_round_trip(wav)[None], self.sample_rate, tokens.text)
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
