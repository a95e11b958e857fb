"""The three networks of a model folder, loaded on first use, and the guard every model call runs under.

Components load on the CPU, once, even when several threads ask at the same time; right before
one is used, the ``placer`` brings it to the compute device. By default that is a plain
``.to(device)``; the ComfyUI adapter passes its model management instead, so ComfyUI decides
what occupies VRAM and "Unload models" frees ours.

``guarded`` runs a model call so that running out of memory becomes ``NotEnoughMemoryError``
once what the call allocated is freed: a server that hosts the handle stays usable after a
failed run.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import nn

from .bundle import AWQ_DIR, Bundle
from .errors import InputError, ModelFileError, NotEnoughMemoryError, StepAudioError
from .limits import QUANTIZATIONS

if TYPE_CHECKING:
    from .decoder.token2wav import Decoder
    from .lm.model import Step1ForCausalLM
    from .lm.text_tokenizer import TextTokenizer
    from .tokenizer.audio_tokenizer import AudioTokenizer

Placer = Callable[[str, nn.Module], None]
T = TypeVar("T")
COMPONENTS = ("tokenizer", "decoder", "lm")


def is_out_of_memory(e: BaseException) -> bool:
    if isinstance(e, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    # MPS and the CPU allocator raise plain RuntimeErrors
    text = str(e)
    return isinstance(e, RuntimeError) and ("out of memory" in text or "not enough memory" in text)


class Components:
    """The audio tokenizer, the decoder and the LM of one bundle, for one device, dtype and quantisation."""

    def __init__(
        self, bundle: Bundle, device: torch.device, dtype: torch.dtype, quantization: str, placer: Placer | None
    ):
        if quantization not in QUANTIZATIONS:
            raise InputError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, not {quantization!r}")
        if quantization != "none" and bundle.lm_name == AWQ_DIR:
            raise InputError(
                f"{AWQ_DIR} is already 4-bit quantized: set quantization to none for it (bitsandbytes {quantization} "
                "is for the full-precision Step-Audio-EditX folder)."
            )
        if quantization != "none" and device.type != "cuda":
            raise InputError(
                f"{quantization} quantization runs on CUDA GPUs only (bitsandbytes); this handle uses {device.type}"
            )
        self.bundle = bundle
        self.device = device
        self.dtype = dtype
        self.quantization = quantization
        self.placer = placer or (lambda name, module: module.to(self.device))
        self._modules: dict[str, nn.Module] = {}
        self._text_tokenizer: TextTokenizer | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ typed accessors

    @property
    def tokenizer(self) -> AudioTokenizer:
        return self._get("tokenizer")

    @property
    def decoder(self) -> Decoder:
        return self._get("decoder")

    @property
    def lm(self) -> Step1ForCausalLM:
        return self._get("lm")

    @property
    def text_tokenizer(self) -> TextTokenizer:
        with self._lock:
            if self._text_tokenizer is None:
                from .lm.text_tokenizer import TextTokenizer

                self._text_tokenizer = TextTokenizer(self.bundle.text_tokenizer_file)
            return self._text_tokenizer

    def loaded(self) -> dict[str, nn.Module]:
        """The networks loaded so far, by name."""
        with self._lock:
            return dict(self._modules)

    def unload(self) -> None:
        """Drop every loaded network; the next use loads it again."""
        with self._lock:
            self._modules.clear()

    # ------------------------------------------------------------------ loading

    def _get(self, name: str) -> nn.Module:
        """Load ``name`` on the CPU on first use (once, even with concurrent callers) and place it.

        A load that fails keeps nothing: the next call reads the files again, so fixing a broken
        file and running again is enough.
        """
        with self._lock:
            if name not in self._modules:
                self._modules[name] = self._load(name)
            module = self._modules[name]
        if not (name == "lm" and self.quantization != "none"):  # bitsandbytes layers cannot move
            self.placer(name, module)
        return module

    def _load(self, name: str) -> nn.Module:
        try:
            return self._build(name)
        except StepAudioError:
            raise
        except Exception as e:
            if is_out_of_memory(e):
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
        if name != "lm":
            raise KeyError(name)
        from .lm.load import load_step1

        if self.quantization != "none":
            return load_step1(self.bundle.lm_dir, device=self.device, dtype=self.dtype, quantize=self.quantization)
        # a pre-quantized (AWQ) folder stays packed only where it will run on CUDA
        return load_step1(self.bundle.lm_dir, device="cpu", dtype=self.dtype, keep_packed=self.device.type == "cuda")

    # ------------------------------------------------------------------ generating

    def generate(self, prompt_ids: list[int], seconds: float, seed: int, temperature: float, on_token) -> tuple[int, ...]:
        """Audio codes the LM continues ``prompt_ids`` with: at most ``seconds`` of audio, sampled from ``seed``."""
        from .lm.generate import Sampling, generate_audio_codes, max_new_tokens_for

        def run():
            lm = self.lm
            generator = torch.Generator(device=lm.device).manual_seed(int(seed))
            return generate_audio_codes(
                lm, prompt_ids, max_new_tokens_for(seconds), Sampling(temperature=temperature), generator, on_token
            )

        codes = self.guarded(f"generating up to {seconds:.1f} s of audio", run)
        if not codes:
            raise InputError("the model produced no audio tokens; try another seed or check the inputs")
        return tuple(codes)

    # ------------------------------------------------------------------ running out of memory

    def guarded(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``; if it runs out of memory, free what it held and raise NotEnoughMemoryError."""
        try:
            return fn()
        except (torch.cuda.OutOfMemoryError, MemoryError, RuntimeError) as e:
            if not is_out_of_memory(e):
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
            if self.quantization == "none" and self.bundle.lm_name != AWQ_DIR:
                cuda = f"load the LM quantized (int8 or nf4) or use the {AWQ_DIR} folder"
                ways.append(cuda if self.device.type == "cuda" else "use dtype fp16")
            ways.append("free other models (ComfyUI: Unload models)")
            ways.append("run on the CPU (device cpu)")
        else:
            ways.append("close other programs")
        return f"To need less memory: {'; '.join(ways)}. What this run allocated has been freed."
