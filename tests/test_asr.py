"""Speech recognition core on the golden's tiny random Whisper: reference parity, features, long audio, errors."""

import json
import shutil

import numpy as np
import pytest
import torch

from stepaudio_core.asr import align
from stepaudio_core.asr.folder import check_asr_folder
from stepaudio_core.asr.recognizer import SpeechRecognizer, cut_points
from stepaudio_core.audio import resample
from stepaudio_core.errors import InputError, ModelFileError
from tests.asr_fixtures import TINY_WHISPER, golden_audio, long40, needs_transformers, reference_outputs, short_whisper  # noqa: F401 - a fixture

pytestmark = pytest.mark.asr


@pytest.fixture(scope="module")
def tiny():
    return SpeechRecognizer(TINY_WHISPER, device="cpu")


def _record_generate(recognizer, monkeypatch) -> list[dict]:
    """Wrap the model's generate to keep what it receives, as the golden's recorder did."""
    model = recognizer.parts()[0]
    seen, original = [], model.generate

    def generate(**kwargs):
        seen.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(model, "generate", generate)
    return seen


@needs_transformers
def test_default_decoding_is_the_reference_pipeline_call(tiny, monkeypatch):
    """pipe(en1_16k): 5-beam search, same ids and text; the features that reach generate are the golden's."""
    io, ref = golden_audio(), reference_outputs()["en1.beam5"]
    seen = _record_generate(tiny, monkeypatch)
    transcript = tiny.transcribe(io["en1.audio_16k"], 16000, word_timings=False)
    assert transcript.text == ref["text"].strip()
    assert seen[0]["num_beams"] == 5 and "language" not in seen[0]
    assert tiny.generate_ids(io["en1.audio_16k"]) == ref["ids"]
    feats = seen[0]["input_features"]
    # frames past the clip are the extractor's padding value; the head is stored
    head, pad = io["en1.input_features_head"], io["en1.input_features_pad_value"]
    expected = torch.cat([head, pad.expand(128, 3000 - head.shape[1])], dim=1)
    assert feats.shape == (1, 128, 3000)
    torch.testing.assert_close(feats[0], expected, rtol=0, atol=0)  # same extractor, same input: bit-identical
    assert int(seen[0]["attention_mask"].sum()) == 386


@needs_transformers
def test_greedy_decoding_matches_the_reference_greedy_call(tiny):
    io, ref = golden_audio(), reference_outputs()["en2.greedy"]
    assert tiny.generate_ids(io["en2.audio_16k"], num_beams=1) == ref["ids"]
    again = tiny.transcribe(io["en2.audio_16k"], 16000, num_beams=1, word_timings=False)
    assert again.text == ref["text"].strip()  # deterministic: the second run gives the same text


@needs_transformers
def test_any_rate_and_channels_reach_the_model_as_16khz_mono(short_whisper, monkeypatch):
    recognizer = SpeechRecognizer(short_whisper, device="cpu")
    io = golden_audio()
    at24 = resample(io["en1.audio_16k"], 16000, 24000)
    stereo = torch.stack([at24, at24])  # mono by channel mean: the same signal
    got = []
    original = recognizer.features
    monkeypatch.setattr(recognizer, "features", lambda audio: got.append(audio) or original(audio))
    recognizer.transcribe(stereo, 24000, num_beams=1, word_timings=False)
    expected = resample(at24, 24000, 16000).numpy()
    assert got[0].shape == expected.shape
    np.testing.assert_array_equal(got[0], expected)


@needs_transformers
def test_long_audio_is_transcribed_whole_with_increasing_word_timings(short_whisper):
    recognizer = SpeechRecognizer(short_whisper, device="cpu")
    wav = long40(golden_audio())
    transcript = recognizer.transcribe(wav, 16000, num_beams=1)
    points = cut_points(wav)
    assert len(points) == 3 and points[1] <= 30 * 16000
    starts = [w.start for w in transcript.words]
    assert transcript.words and all(w.start <= w.end for w in transcript.words)
    assert starts == sorted(starts) and all(
        a.end <= b.start + 1e-9 for a, b in zip(transcript.words, transcript.words[1:])
    )
    assert transcript.words[-1].end <= 40.0
    assert any(w.start >= points[1] / 16000 for w in transcript.words), "the second piece's words come after the cut"
    assert transcript.timings_text().count("\n") == len(transcript.words) - 1


def test_long_recordings_are_cut_in_pauses_within_30s():
    sr = 16000
    rng = torch.Generator().manual_seed(0)
    wav = torch.randn(75 * sr, generator=rng) * 0.1
    wav[int(26.0 * sr) : int(26.5 * sr)] = 0  # a pause in the first window's last 10 s
    points = cut_points(wav)
    assert points[0] == 0 and points[-1] == len(wav)
    assert all(b - a <= 30 * sr for a, b in zip(points, points[1:]))
    assert 26.0 * sr <= points[1] <= 26.5 * sr


def test_dtw_follows_the_cheap_diagonal_and_words_split_by_script():
    cost = np.ones((3, 6))
    for i, j in [(0, 0), (0, 1), (1, 2), (1, 3), (2, 4), (2, 5)]:
        cost[i, j] = 0
    rows, cols = align.dtw(cost)
    assert rows.tolist() == [0, 0, 1, 1, 2, 2] and cols.tolist() == [0, 1, 2, 3, 4, 5]
    assert align.split_words([" Hello", ",", " wor", "ld"], "en") == [(0, 2), (2, 4)]
    assert align.split_words(["", "你", "好", ""], "zh") == [(0, 2), (2, 4)]


def _broken(tmp_path, edit) -> str:
    folder = tmp_path / "whisper"
    shutil.copytree(TINY_WHISPER, folder)
    edit(folder)
    with pytest.raises(ModelFileError) as e:
        check_asr_folder(folder)
        SpeechRecognizer(folder, device="cpu").parts()
    return str(e.value)


def test_missing_or_broken_folders_name_the_file(tmp_path):
    assert "does not exist" in _broken(tmp_path / "a", lambda f: shutil.rmtree(f))
    assert "config.json" in _broken(tmp_path / "b", lambda f: (f / "config.json").unlink())
    assert "preprocessor_config.json" in _broken(tmp_path / "c", lambda f: (f / "preprocessor_config.json").unlink())
    assert "generation_config.json" in _broken(tmp_path / "d", lambda f: (f / "generation_config.json").write_text("{"))
    assert "model.safetensors" in _broken(tmp_path / "e", lambda f: (f / "model.safetensors").unlink())
    lfs = "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n"
    assert "model.safetensors" in _broken(tmp_path / "f", lambda f: (f / "model.safetensors").write_text(lfs))
    not_whisper = lambda f: (f / "config.json").write_text(json.dumps({"model_type": "llama"}))  # noqa: E731
    assert "not Whisper" in _broken(tmp_path / "g", not_whisper)


@needs_transformers
def test_truncated_weights_are_a_model_file_error(tmp_path):
    message = _broken(tmp_path, lambda f: (f / "model.safetensors").write_bytes(b"\x10\x00" * 10))
    assert str(tmp_path / "whisper") in message and "download it again" in message


def test_bad_options_are_input_errors(tmp_path):
    recognizer = SpeechRecognizer(TINY_WHISPER, device="cpu")
    with pytest.raises(InputError, match="language"):
        recognizer.transcribe(torch.zeros(1600), 16000, language="xx")
    with pytest.raises(InputError, match="num_beams"):
        recognizer.transcribe(torch.zeros(1600), 16000, num_beams=0)
    with pytest.raises(InputError, match="empty"):
        recognizer.transcribe(torch.zeros(0), 16000)
