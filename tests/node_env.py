"""The pack loaded through the ComfyUI stand-in with one model handle, and its nodes called as ComfyUI calls them.

Shared by the tests of bad inputs, generation guards, memory and concurrency: each test module
loads the tiny bundle's weights once; clips are short and generations small (max_seconds 0.2:
two token groups).
"""

from __future__ import annotations

import importlib
import sys

import soundfile as sf
import torch
from hypothesis import HealthCheck, settings

from tests import comfy_stub
from tests.conftest import FIXTURES, PACK, load_pack

TRANSCRIPT = "Please call Stella."
STUBS = {"comfy", "comfy_api", "folder_paths"}
FUZZ = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


class Env:
    """The loaded pack, one model handle, and the nodes called the way ComfyUI calls them."""

    def __init__(self, pack, bundle):
        self.pack, self.nodes, self.bundle = pack, pack.nodes, bundle
        self.Error = pack.nodes.errors.StepAudioNodeError
        self.model = self.load(bundle)
        data, sr = sf.read(FIXTURES / "audio" / "en2_24k.wav", dtype="float32")
        self.speech, self.sr = torch.from_numpy(data), sr
        self.reference = self.audio(1.0)

    def module(self, name: str):
        """A module of the core as the pack imported it (its error classes are the ones the nodes catch)."""
        return importlib.import_module(f"{PACK}.stepaudio_core.{name}")

    def load(self, folder, device="cpu", dtype="fp32"):
        return self.nodes.loader.StepAudioModelLoader.execute(str(folder), device, dtype, "none", False)[0]

    def audio(self, seconds: float, rate: int = 24000, channels: int = 1, batch: int = 1) -> dict:
        """The fixture's speech: ``seconds`` long (looped), resampled, on every channel and batch item."""
        n = int(seconds * self.sr)
        wav = self.speech.repeat(n // len(self.speech) + 1)[:n]
        if rate != self.sr:
            wav = self.module("audio").resample(wav, self.sr, rate)
        gains = torch.linspace(1.0, 0.5, channels)[:, None]
        return {"waveform": (gains * wav)[None].repeat(batch, 1, 1), "sample_rate": rate}

    def encode(self, audio: dict, transcript: str = TRANSCRIPT):
        return self.nodes.encode.StepAudioEncode.execute(self.model, audio, transcript)[0]

    def clone(self, prompt, text="Hello there.", language="none", seed=0, temperature=0.7, max_seconds=0.2):
        clone = self.nodes.clone.StepAudioClone
        return clone.execute(self.model, prompt, text, language, seed, temperature, max_seconds)[0]

    def edit(self, prompt, edit_type, option="none", new_text="", seed=0):
        return self.nodes.edit.StepAudioEdit.execute(self.model, prompt, edit_type, option, new_text, seed)[0]

    def decode(self, tokens, flow_steps=1):
        return self.nodes.decode.StepAudioDecode.execute(self.model, tokens, seed=0, flow_steps=flow_steps)[0]

    def clone_audio(self, audio: dict, transcript: str = TRANSCRIPT, **kwargs) -> dict:
        return self.decode(self.clone(self.encode(audio, transcript), **kwargs))

    def valid_run(self) -> dict:
        """The run every case is followed by: encode (cached), clone two groups, decode."""
        out = self.clone_audio(self.reference)
        assert_audio(out)
        return out


def assert_audio(out: dict, batch: int = 1) -> None:
    wav = out["waveform"]
    assert out["sample_rate"] == 24000
    assert wav.dim() == 3 and wav.shape[:2] == (batch, 1) and wav.shape[-1] > 0
    assert torch.isfinite(wav).all()


def env_for(tmp_path_factory, tiny_bundle):
    """The pack loaded through the stand-in with one handle (a generator: the stand-in is removed after)."""
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in STUBS}
    comfy_stub.install(str(tmp_path_factory.mktemp("models")))
    pack = load_pack()
    importlib.import_module(PACK + ".nodes")
    # One thread: on a shared 2-core runner, two threads wait on each other in every tiny op.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield Env(pack, tiny_bundle)
    finally:
        torch.set_num_threads(threads)
        for k in [k for k in sys.modules if k.split(".")[0] in STUBS | {PACK}]:
            del sys.modules[k]
        sys.modules.update(saved)
