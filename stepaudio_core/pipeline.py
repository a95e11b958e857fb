"""The facade: one handle over a model folder, and the use cases every front end shares.

The CLI, the ComfyUI nodes and Python users all go through this class, so a feature behaves
the same wherever it is used. Each public method checks its inputs first, against the named
limits in ``validate``; below this layer, code trusts its arguments.

Flow of the reference (tts.py): encode the recording (codes, prompt mel, CAM++ voice), build a
clone or edit prompt, sample audio tokens from the LM, decode them in the recording's voice.
The networks themselves, their loading and the out-of-memory guard live in ``components``;
encoded prompts are kept in a ``PromptCache``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from . import budgets, limits, validate
from .bundle import find_bundle
from .components import Components, Placer
from .device import resolve_device, resolve_dtype
from .dialogue.cache import LineCache
from .edits import check_edit
from .errors import InputError, NotEnoughMemoryError
from .longedit import LongEditTokens, decode_long, edit_long, iterate_long, transcribed
from .prompt import EncodedPrompt, GeneratedTokens
from .prompt_cache import PromptCache, content_key

TokenCallback = Callable[[int, int], None]


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
        device_ = resolve_device(device)
        self.components = Components(find_bundle(models_dir), device_, resolve_dtype(dtype, device_), quantization, placer)
        self.prompts = PromptCache()
        self.line_cache = LineCache()  # rendered dialogue lines (stepaudio_core.dialogue), reused within a session

    def __repr__(self) -> str:
        c = self.components
        return f"StepAudioEditX({str(c.bundle.root)!r}, device={c.device.type}, dtype={c.dtype}, quantization={c.quantization})"

    @property
    def sample_rate(self) -> int:
        return 24000

    def loaded(self) -> dict[str, torch.nn.Module]:
        """The networks loaded so far, by name."""
        return self.components.loaded()

    def unload(self) -> None:
        """Drop every loaded network, cached prompt and rendered dialogue line; the next use loads them again."""
        self.components.unload()
        self.prompts.clear()
        self.line_cache.clear()

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
        key = content_key(wav, sample_rate, text) if cache else None
        cached = self.prompts.get(key) if cache else None
        if cached is not None:
            return cached
        from .lm.prompts import clone_speaker_id

        speaker_id = clone_speaker_id(text, wav if wav.dim() == 2 else wav[None])
        mono = prompt_audio(wav)
        validate.warn_transcript_mismatch(text, mono.shape[-1] / sample_rate)
        window = mono[: int(limits.WINDOW_SECONDS * sample_rate)]

        def run():
            codes = self.components.tokenizer.encode(window, sample_rate)
            if codes.groups == 0:
                raise InputError(
                    f"input 'audio' holds too little sound to encode ({window.shape[-1] / sample_rate:.2f} s after "
                    "trimming silence); give at least half a second of speech"
                )
            mel, speaker = self.components.decoder.prompt_features(window, sample_rate)
            return codes, mel, speaker

        codes, mel, speaker = self.components.guarded("encoding the recording", run)
        prompt = EncodedPrompt(codes.mixed(), mel.cpu(), speaker.cpu(), text, mono, int(sample_rate), speaker_id)
        if cache:
            self.prompts.put(key, prompt)
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

    def clone(
        self,
        prompt: EncodedPrompt,
        text: str,
        *,
        language: str | None = None,
        seed: int = 0,
        temperature: float = limits.DEFAULT_TEMPERATURE,
        max_seconds: float | None = None,
        on_token: TokenCallback | None = None,
        on_piece: Callable[[int, int], None] | None = None,
    ) -> GeneratedTokens:
        """Speak ``text`` in the voice of ``prompt``; long text is generated piece by piece.

        ``on_piece(i, n)`` is called before piece i (from 0) of n is generated.
        """
        from .lm.prompts import clone_prompt_ids
        from .longform import split_text

        if not prompt.text:
            raise InputError(
                lambda v: f"cloning needs the transcript of the reference recording; {v.phrase('give transcript')}"
            )
        text = validate.text_input(text, "text", fix="type what the cloned voice should say")
        seed = validate.check_seed(seed)
        temperature = validate.check_temperature(temperature)
        max_seconds = validate.check_max_seconds(max_seconds)
        validate.warn_clone_window(prompt.seconds)
        tok = self.components.text_tokenizer
        out = []
        pieces = split_text(text)
        for i, piece in enumerate(pieces):
            if on_piece is not None:
                on_piece(i, len(pieces))
            ids = clone_prompt_ids(tok, prompt.speaker_id, prompt.text, prompt.tokens, piece, language)
            out.append(self.components.generate(ids, budgets.clone_seconds(piece, max_seconds), seed + i, temperature, on_token))
        return GeneratedTokens(tuple(out), prompt, text.strip())

    def edit(
        self,
        prompt: EncodedPrompt,
        edit_type: str,
        option: str | None = None,
        *,
        new_text: str | None = None,
        seed: int = 0,
        temperature: float = limits.DEFAULT_TEMPERATURE,
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
        seed = validate.check_seed(seed)
        temperature = validate.check_temperature(temperature)
        max_piece_seconds = validate.check_piece_seconds(max_piece_seconds)
        max_seconds = validate.check_edit_max_seconds(max_seconds)
        prompt = transcribed(prompt, transcriber, max_piece_seconds)
        if prompt.seconds > max_piece_seconds:
            check_edit(edit_type, option)  # the transcript is checked per piece: a transcriber may supply it
            return edit_long(
                self, prompt, edit_type, option, new_text=validate.text_input(new_text, "new_text") or None, seed=seed,
                max_piece_seconds=max_piece_seconds, max_seconds=max_seconds, on_token=on_token, on_piece=on_piece,
                words=words, transcriber=transcriber,
            )
        kind, option, new_text = validate.check_edit_request(edit_type, option, prompt.text, new_text)
        return self._edit(prompt, kind, option, new_text, seed, temperature, on_token, max_seconds)

    def _edit(self, prompt: EncodedPrompt, kind, option, new_text: str, seed: int, temperature: float, on_token,
              max_seconds: float | None = None):
        from .lm.prompts import edit_prompt_ids

        tok = self.components.text_tokenizer
        ids = edit_prompt_ids(tok, kind, option, prompt.text, prompt.tokens, new_text or None)
        seconds = min(budgets.edit_seconds(prompt.seconds), max_seconds or limits.WINDOW_SECONDS)
        codes = self.components.generate(ids, seconds, seed, temperature, on_token)
        return GeneratedTokens((codes,), prompt, new_text if kind.needs_new_text else prompt.text)

    # ------------------------------------------------------------------ decode

    def decode(
        self,
        tokens: GeneratedTokens,
        *,
        prompt: EncodedPrompt | None = None,
        seed: int = 0,
        flow_steps: int = limits.DEFAULT_FLOW_STEPS,
    ) -> torch.Tensor:
        """Tokens -> float32 mono waveform (N,) at 24 kHz, in the voice of ``prompt`` (default: their own)."""
        from .longform import crossfade_join

        if isinstance(tokens, LongEditTokens):
            return decode_long(self, tokens, voice=prompt, seed=seed, flow_steps=flow_steps)
        prompt = prompt or tokens.prompt
        if prompt is None:
            raise InputError("decoding needs the prompt the tokens were generated for (its voice and mel)")
        flow_steps = validate.check_flow_steps(flow_steps)
        seed = validate.check_seed(seed)

        def run():
            decoder = self.components.decoder
            return [
                decoder(piece, prompt.tokens, prompt.mel, prompt.speaker, seed=seed, n_timesteps=flow_steps)
                for piece in tokens.pieces
            ]

        return crossfade_join(self.components.guarded("decoding audio", run), self.sample_rate)

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
        flow_steps: int = limits.DEFAULT_FLOW_STEPS,
        on_token: TokenCallback | None = None,
        on_pass: Callable[[int], None] | None = None,
        on_result: Callable[[int, torch.Tensor], None] | None = None,
        max_seconds: float | None = None,
        max_piece_seconds: float | None = None,
        on_piece: Callable[[int, int], None] | None = None,
        words=None,
        transcriber=None,
    ) -> list[tuple[GeneratedTokens, torch.Tensor]]:
        """``n_iter`` edit passes, each on the previous result; returns (tokens, waveform) of every pass.

        mode "audio" is the reference's loop, "tokens" a faster one that is not (``iterate``).
        ``on_pass(i)`` is called as pass i (from 0) starts, ``on_result(i, wav)`` as soon as its
        waveform exists, so a caller can keep finished passes when a later one fails. A recording
        longer than ``max_piece_seconds`` runs every pass piece by piece (``longedit``); each pass
        still returns the whole recording.
        """
        n_iter = validate.check_passes(n_iter)
        flow_steps = validate.check_flow_steps(flow_steps)
        if mode not in ("audio", "tokens"):
            raise InputError(f"iteration mode (input 'mode') must be 'audio' or 'tokens', not {mode!r}")
        prompt = transcribed(prompt, transcriber, validate.check_piece_seconds(max_piece_seconds))
        if prompt.seconds > validate.check_piece_seconds(max_piece_seconds):
            check_edit(edit_type, option)  # max_seconds and the texts are checked by each piece's edit
            return iterate_long(
                self, prompt, edit_type, option, new_text=validate.text_input(new_text, "new_text") or None, n_iter=n_iter,
                seed=validate.check_seed(seed), max_piece_seconds=validate.check_piece_seconds(max_piece_seconds),
                mode=mode, flow_steps=flow_steps, max_seconds=max_seconds, on_token=on_token, on_pass=on_pass,
                on_piece=on_piece, words=words, transcriber=transcriber, on_result=on_result,
            )
        from .iterate import iterate_short

        return iterate_short(
            self, prompt, edit_type, option, new_text=new_text, n_iter=n_iter, seed=seed, mode=mode, flow_steps=flow_steps,
            max_seconds=max_seconds, max_piece_seconds=max_piece_seconds, on_token=on_token, on_pass=on_pass,
            on_result=on_result,
        )
