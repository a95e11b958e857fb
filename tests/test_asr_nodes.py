"""ASR Loader, Transcribe, Encode's automatic transcript and the CLI's --transcribe, through the ComfyUI stand-in."""

import shutil

import pytest
import soundfile as sf
import torch

from stepaudio_core.cli import main
from tests.asr_fixtures import needs_transformers, short_whisper  # noqa: F401 - a fixture
from tests.conftest import FIXTURES

pytestmark = [pytest.mark.asr, needs_transformers]
REF = FIXTURES / "audio" / "en2_24k.wav"


@pytest.fixture
def asr_in_models(pack, short_whisper, tmp_path):
    """The tiny Whisper where users put theirs: models/step_audio_editx/asr/<name>/."""
    pack.nodes.loader.register_model_folder()  # as ComfyUI's on_load does
    target = tmp_path / "models" / "step_audio_editx" / "asr" / "whisper-tiny-test"
    shutil.copytree(short_whisper, target)
    return target


def _clip(seconds: float = 1.5):
    data, sr = sf.read(REF, dtype="float32")
    mono = torch.from_numpy(data[: int(seconds * sr)])
    return {"waveform": torch.stack([mono, 0.5 * mono])[None], "sample_rate": sr}


def _asr(pack):
    return pack.nodes.asr.StepAudioASRLoader.execute("whisper-tiny-test", "cpu", "auto", False)[0]


def test_loader_lists_asr_folders_and_extra_paths(pack, asr_in_models, tmp_path):
    import folder_paths

    extra = tmp_path / "elsewhere"
    (extra / "asr" / "my-whisper").mkdir(parents=True)
    folder_paths.add_model_folder_path("step_audio_editx", str(extra))  # what extra_model_paths.yaml does
    combo = pack.nodes.asr.StepAudioASRLoader.define_schema().inputs[0]
    assert (
        combo.options[:2] == ["whisper-large-v3-turbo", "whisper-large-v3"]
        and combo.default == "whisper-large-v3-turbo"
    )
    assert {"whisper-tiny-test", "my-whisper"} <= set(combo.options)
    assert pack.nodes.asr.asr_folder("my-whisper") == extra / "asr" / "my-whisper"


def test_missing_model_without_download_is_a_clear_node_error(pack, comfy, monkeypatch):
    import huggingface_hub

    pack.nodes.loader.register_model_folder()

    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail("download is off"))
    with pytest.raises(
        Exception, match=r"StepAudio ASR Loader: ASR model folder .*whisper-large-v3-turbo does not exist"
    ):
        pack.nodes.asr.StepAudioASRLoader.execute("whisper-large-v3-turbo", "cpu", "auto", False)


def test_transcribe_node_gives_text_timings_and_the_transcript_type(pack, asr_in_models):
    audio = _clip()
    audio["waveform"] = torch.cat([audio["waveform"], audio["waveform"]])  # a batch of two
    out = pack.nodes.asr.StepAudioTranscribe.execute(_asr(pack), audio, "auto", 1, True)
    text, transcripts, timings = out[0], out[1], out[2]
    assert len(transcripts) == 2 and all(type(t).__qualname__ == "Transcript" for t in transcripts)
    assert text == "\n".join(t.text for t in transcripts) and transcripts[0].text
    assert transcripts[0] == transcripts[1]  # deterministic
    assert transcripts[0].words and all(0 <= w.start <= w.end <= 1.5 for w in transcripts[0].words)
    assert timings.startswith(transcripts[0].timings_text()) and out.ui == {"text": [text]}


def test_asr_is_a_comfyui_managed_model(pack, asr_in_models):
    import comfy.model_management as mm

    asr = _asr(pack)
    assert asr is _asr(pack)  # one handle per configuration
    first = pack.nodes.asr.StepAudioTranscribe.execute(asr, _clip(), "en", 1, False)[0]
    assert asr.placer.loaded_bytes() > 0
    mm.unload_all_models()
    assert asr.placer.loaded_bytes() == 0
    assert pack.nodes.asr.StepAudioTranscribe.execute(asr, _clip(), "en", 1, False)[0] == first
    assert asr.placer.loaded_bytes() > 0


def test_encode_fills_only_an_empty_transcript_and_shows_it(pack, asr_in_models, tiny_bundle, monkeypatch):
    model = pack.nodes.loader.StepAudioModelLoader.execute(str(tiny_bundle), "cpu", "fp32")[0]
    asr = _asr(pack)
    encode = pack.nodes.encode.StepAudioEncode.execute
    expected = asr.transcribe(_clip()["waveform"][0], 24000, word_timings=False).text
    out = encode(model, _clip(), "", True, asr)
    assert out[1] == expected and out[0][0].text == expected and out.ui == {"text": [expected]}
    # off by default: an empty transcript stays empty
    assert encode(model, _clip(), "", False, asr)[1] == ""
    # a typed transcript is never replaced, and the ASR is not even run
    monkeypatch.setattr(type(asr), "transcribe", lambda *a, **k: pytest.fail("typed transcript overwritten"))
    typed = encode(model, _clip(), "Please call Stella.", True, asr)
    assert typed[1] == "Please call Stella." and typed[0][0].text == "Please call Stella."
    with pytest.raises(Exception, match="StepAudio Encode: auto_transcribe is on .* no ASR is connected"):
        encode(model, _clip(), "  ", True, None)


def test_cli_transcribes_a_missing_prompt_text_and_prints_it(tiny_bundle, short_whisper, tmp_path, capsys):
    wav = tmp_path / "ref.wav"
    data, sr = sf.read(REF)
    sf.write(wav, data[: int(1.5 * sr)], sr)
    rc = main(
        [
            "clone",
            "--models",
            str(tiny_bundle),
            "--prompt-audio",
            str(wav),
            "--transcribe",
            "--asr-model",
            str(short_whisper),
            "--text",
            "Hello there.",
            "--max-seconds",
            "1",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "c.wav"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and (tmp_path / "c.wav").is_file()
    line = next(li for li in out.splitlines() if li.startswith("transcript: "))
    assert len(line) > len("transcript: ")
    rc = main(
        [
            "clone",
            "--models",
            str(tiny_bundle),
            "--prompt-audio",
            str(wav),
            "--text",
            "Hi.",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "d.wav"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--prompt-text is empty" in err and "--transcribe" in err and err.count("\n") == 1
