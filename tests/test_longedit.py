"""Editing a recording of any length: transcript per piece, tags, joins, seeds, memory, the nodes and the CLI."""

import logging
import re

import pytest
import soundfile as sf
import torch

from stepaudio_core.errors import InputError
from stepaudio_core.longedit import (
    FADE_SECONDS,
    LongEditTokens,
    decode_clips,
    join_clips,
    piece_seed,
    plan,
    split_by_shares,
    text_tokens,
)
from stepaudio_core.pipeline import StepAudioEditX
from stepaudio_core.prompt import EncodedPrompt
from stepaudio_core.transcript import Transcript, WordTiming
from tests.long_recording import SAMPLE_RATE, build

PIECE_SECONDS = 1.0  # per-piece generation budget: a tiny random LM runs every generation to its budget


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _prompt(wav, text: str) -> EncodedPrompt:
    """A prompt holding only what planning reads: the recording and its transcript."""
    return EncodedPrompt((), torch.zeros(1, 1, 80), torch.zeros(1, 192), text, wav, SAMPLE_RATE)


@pytest.fixture(scope="module")
def recording():
    return build()


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return StepAudioEditX(tiny_bundle, device="cpu", dtype="fp32")


@pytest.fixture(scope="module")
def long_prompt(model, recording):
    return model.encode(recording.wav, SAMPLE_RATE, recording.transcript)


def _expected_texts(recording, layout):
    """The sentences of each piece, for pieces bounded by real pauses (a forced cut splits a sentence)."""
    out = []
    for piece in layout.pieces:
        out.append(" ".join(text for (s, e), text in zip(recording.sentences, _sentence_texts(recording))
                            if piece.start <= (s + e) // 2 < piece.end))
    return out


def _sentence_texts(recording):
    return list(recording.texts)


# ---------------------------------------------------------------------- text


def test_tokens_join_back_to_the_text():
    for text in ["Hello there, this is it.", "  lead space", "今天天气很好，我们去公园。好吗？", "a [Laughter] b. [Sigh]",
                 "mixed 中文 and English!", "[Breathing] starts", "odd [ bracket"]:
        assert "".join(text_tokens(text)) == text
    assert text_tokens("你好。再见") == ["你", "好。", "再", "见"]


def test_split_follows_shares_and_prefers_sentence_ends():
    text = "One two three four. Five six seven eight. Nine ten eleven twelve."
    parts = split_by_shares(text, [1.0, 1.0, 1.0])
    assert parts == ["One two three four.", "Five six seven eight.", "Nine ten eleven twelve."]
    parts = split_by_shares(text, [1.9, 1.0])  # the proportional cut lies inside the second sentence
    assert _norm(" ".join(parts)) == text and parts[0].endswith(".")


def test_cjk_counts_per_character():
    text = "今天天气很好我们去公园散步吧" + "Hello there my friend"
    parts = split_by_shares(text, [1.0, 1.0])
    # 14 CJK characters are 42 units, the English 18: half of 60 units falls inside the CJK run
    assert "".join(parts[0].split()) + "".join(parts[1].split()) == "".join(text.split())
    assert len(parts[0]) == 10 and parts[1].startswith("园散步吧")


def test_tags_stay_with_the_word_before_them():
    text = "Alpha beta gamma [Laughter] delta epsilon zeta eta theta."
    for shares in ([3.0, 5.0], [1.0, 1.0], [2.9, 5.0]):
        parts = split_by_shares(text, shares)
        holder = next(p for p in parts if "[Laughter]" in p)
        assert "gamma [Laughter]" in holder


def test_every_piece_gets_words_while_there_are_enough():
    parts = split_by_shares("one two three", [0.0, 5.0, 0.0])
    assert parts == ["one", "two", "three"]


# ---------------------------------------------------------------------- planning


def test_transcript_per_piece_matches_the_sentences(recording):
    p = plan(_prompt(recording.wav, recording.transcript), "emotion", None, 15.0)
    assert _norm(" ".join(p.texts)) == _norm(recording.transcript)
    layout = p.layout
    # a piece bounded by real pauses on both sides holds exactly its sentences (proportional split, snapped to
    # sentence ends); pieces next to a forced cut hold a split sentence, which is the documented limit
    for i, (text, expected) in enumerate(zip(p.texts, _expected_texts(recording, layout))):
        left_real = i == 0 or not layout.forced[i - 1]
        right_real = i == len(layout.pieces) - 1 or not layout.forced[i]
        if left_real and right_real:
            assert text == expected, f"piece {i}"
    assert all(p.editable)


def test_word_timings_place_the_transcript(recording):
    words = []
    texts = _sentence_texts(recording)
    for (s, e), sentence in zip(recording.sentences, texts):
        tokens = sentence.split()
        step = (e - s) / SAMPLE_RATE / len(tokens)
        words += [WordTiming(w, s / SAMPLE_RATE + k * step, s / SAMPLE_RATE + (k + 1) * step) for k, w in enumerate(tokens)]
    prompt = _prompt(recording.wav, "")
    p = plan(prompt, "emotion", None, 15.0, words=Transcript(" ".join(texts), tuple(words)))
    assert _norm(" ".join(p.texts)) == _norm(" ".join(texts))
    starts = [piece.start for piece in p.layout.pieces[1:]] + [len(recording.wav)]
    for piece, end, text in zip(p.layout.pieces, starts, p.texts):  # each word in the piece holding its middle
        assert text == " ".join(w.text for w in words if piece.start <= (w.start + w.end) / 2 * SAMPLE_RATE < end)
    # a typed transcript is split in the words' proportions
    typed = plan(_prompt(recording.wav, recording.transcript), "emotion", None, 15.0, words=words)
    assert _norm(" ".join(typed.texts)) == _norm(recording.transcript)


def test_empty_transcript_is_transcribed_per_piece(recording):
    calls = []

    def transcriber(wav, sr):
        calls.append(wav.shape[0] / sr)
        return Transcript(f"piece {len(calls)}")

    p = plan(_prompt(recording.wav, ""), "style", None, 15.0, transcriber=transcriber)
    assert p.texts == tuple(f"piece {i + 1}" for i in range(len(p.layout.pieces)))
    assert calls == [len(s) / SAMPLE_RATE for s in p.layout.pieces]
    assert plan(_prompt(recording.wav, ""), "denoise", None, 15.0, transcriber=transcriber).texts[0] == ""
    with pytest.raises(InputError, match="the emotion edit needs the transcript of the recording"):
        plan(_prompt(recording.wav, ""), "emotion", None, 15.0)


def test_paralinguistic_tags_land_in_the_right_piece(recording):
    texts = _sentence_texts(recording)
    layout = plan(_prompt(recording.wav, recording.transcript), "emotion", None, 15.0).layout

    def piece_of(sentence: int) -> int:
        s, e = recording.sentences[sentence]
        return next(i for i, p in enumerate(layout.pieces) if p.start <= (s + e) // 2 < p.end)

    after_stretch = next(j for j, (s, _) in enumerate(recording.sentences) if s > recording.stretch[1])
    chosen = {1: "[Laughter]", after_stretch: "[Sigh]", len(texts) - 1: "[Breathing]"}
    tagged = [t + (" " + chosen[j] if j in chosen else "") for j, t in enumerate(texts)]
    p = plan(_prompt(recording.wav, recording.transcript), "paralinguistic", " ".join(tagged), 15.0)
    for j, tag in chosen.items():
        holder = [i for i, t in enumerate(p.new_texts) if tag in t]
        assert holder == [piece_of(j)], f"{tag} after sentence {j}"
        assert f"{texts[j]} {tag}" in p.new_texts[holder[0]]
    assert _norm(re.sub(r"\s*\[\w+\]", "", " ".join(p.new_texts))) == _norm(recording.transcript)
    assert p.editable == tuple(i in {piece_of(j) for j in chosen} for i in range(len(layout.pieces)))


# ---------------------------------------------------------------------- joining


def test_join_lengths_and_seams():
    g = torch.Generator().manual_seed(0)
    clips = [torch.randn(4000, generator=g) * 0.3, 1e-3 * torch.randn(6000, generator=g),
             torch.randn(5000, generator=g) * 0.5, torch.zeros(0), torch.randn(300, generator=g)]
    wav, joints = join_clips(clips, 24000, 0.05)
    fade = int(0.05 * 24000)
    overlaps = [min(fade, a.shape[0] // 2, b.shape[0] // 2) for a, b in zip([c for c in clips if len(c)],
                                                                          [c for c in clips if len(c)][1:])]
    assert wav.shape[0] == sum(c.shape[0] for c in clips) - sum(overlaps)
    for (a, b), left, right in zip(joints, [clips[0], clips[1], clips[2]], [clips[1], clips[2], clips[4]]):
        n = b - a
        # equal-power crossfade: d/dt (x cos + y sin) <= |x'| + |y'| + (|x| + |y|) * (pi/2) / (n - 1)
        bound = (left.diff().abs().max() + right.diff().abs().max()
                 + (left.abs().max() + right.abs().max()) * torch.pi / 2 / (n - 1))
        assert wav[a - 1:b + 1].diff().abs().max() <= bound + 1e-6


# ---------------------------------------------------------------------- the whole pipeline on the tiny model


def test_edit_long_recording_end_to_end(model, long_prompt, recording):
    pieces_seen = []
    before = len(model.prompts)
    tokens = model.edit(long_prompt, "emotion", "happy", seed=7, max_seconds=PIECE_SECONDS,
                        on_piece=lambda i, n: pieces_seen.append((i, n)))
    assert isinstance(tokens, LongEditTokens)
    n = len(tokens.layout.pieces)
    assert 5 <= n <= 9 and pieces_seen == [(i, n) for i in range(n)]
    assert len(model.prompts) == before, "pieces must not fill the prompt cache"
    assert all(part is not None and part.prompt.seconds <= 15.0 for part in tokens.parts)
    assert _norm(" ".join(part.prompt.text for part in tokens.parts)) == _norm(recording.transcript)

    clips = decode_clips(model, tokens, seed=1, flow_steps=1)
    wav = model.decode(tokens, seed=1, flow_steps=1)
    joined, joints = join_clips(clips)
    assert torch.equal(wav, joined)
    # each piece decodes to 3 frames of 40 ms per group of five tokens, the pauses keep their length
    for part, clip in zip(tokens.parts, clips[::2]):
        assert clip.shape[0] == len(part.tokens) // 5 * 3 * 960
    pauses = sum(len(p) for p in tokens.layout.pauses)
    expected = sum(c.shape[0] for c in clips[::2]) + pauses
    # the only difference: the crossfades overlap neighbours, at most FADE_SECONDS per joint
    assert 0 <= expected - wav.shape[0] <= len(joints) * FADE_SECONDS * SAMPLE_RATE
    assert abs(tokens.seconds - expected / SAMPLE_RATE) < 1e-6
    nonempty = [c for c in clips if c.shape[0]]
    for (a, b), left, right in zip(joints, nonempty, nonempty[1:]):  # the bound of test_join_lengths_and_seams
        bound = (left.diff().abs().max() + right.diff().abs().max()
                 + (left.abs().max() + right.abs().max()) * torch.pi / 2 / (b - a - 1))
        assert wav[a - 1:b + 1].diff().abs().max() <= bound + 1e-6
    # same seed, same result; another seed, another result
    again = model.edit(long_prompt, "emotion", "happy", seed=7, max_seconds=PIECE_SECONDS)
    assert [p.tokens for p in again.parts] == [p.tokens for p in tokens.parts]
    assert torch.equal(model.decode(again, seed=1, flow_steps=1), wav)
    other = model.edit(long_prompt, "emotion", "happy", seed=8, max_seconds=PIECE_SECONDS)
    assert [p.tokens for p in other.parts] != [p.tokens for p in tokens.parts]


def test_piece_seeds_are_distinct_and_leave_room_for_passes():
    seeds = {piece_seed(s, i) for s in (0, 1, 2**63 - 1) for i in range(50)}
    assert len(seeds) == 150 and max(seeds) + 20 < 2**63


def test_iterate_long_returns_every_whole_pass(model, long_prompt):
    passes = []
    results = model.iterate_edit(long_prompt, "vad", n_iter=2, seed=3, mode="tokens", flow_steps=1,
                                 max_seconds=0.5, on_pass=passes.append)
    assert passes == [0, 1] and len(results) == 2
    first, second = results
    assert isinstance(first[0], LongEditTokens) and first[1].shape[0] > 0 and second[1].shape[0] > 0
    assert first[0].parts[0].tokens != second[0].parts[0].tokens  # pass 2 edits pass 1 with seed + 1
    # vad shortens the kept pauses to at most VAD_PAUSE_SECONDS
    assert all(c.shape[0] <= 0.3 * SAMPLE_RATE for c in decode_clips(model, first[0], flow_steps=1)[1::2])


def test_edit_node_long_recording_progress_and_cancel(pack, tiny_bundle, recording, comfy, monkeypatch):
    model = pack.nodes.loader.StepAudioModelLoader.execute(str(tiny_bundle), "cpu", "fp32")[0]
    audio = {"waveform": recording.wav[None, None], "sample_rate": SAMPLE_RATE}
    prompt = pack.nodes.encode.StepAudioEncode.execute(model, audio, recording.transcript)[0]
    monkeypatch.setattr(type(model), "edit", _budgeted(type(model).edit))
    cached = len(model.prompts)
    calls = {"n": 0}
    original = pack.nodes.progress.TokenProgress.__call__

    def press_cancel(self, done, total):
        calls["n"] += 1
        if self.piece == 2 and done == 3:
            comfy.interrupted = True
        return original(self, done, total)

    monkeypatch.setattr(pack.nodes.progress.TokenProgress, "__call__", press_cancel)
    with pytest.raises(BaseException) as info:
        pack.nodes.edit.StepAudioEdit.execute(model, prompt, "emotion", "happy", "", 0, 15.0)
    assert "Interrupt" in type(info.value).__name__
    assert len(model.prompts) == cached, "a cancelled long edit keeps nothing"
    monkeypatch.setattr(pack.nodes.progress.TokenProgress, "__call__", original)
    comfy.progress.clear()
    tokens = pack.nodes.edit.StepAudioEdit.execute(model, prompt, "emotion", "happy", "", 0, 15.0)[0]
    bar = [done for done, total in comfy.progress]
    assert bar == sorted(bar) and len(tokens[0].parts) > 1
    assert len({done * len(tokens[0].parts) // comfy.progress[-1][1] for done in bar}) >= len(tokens[0].parts) - 1


def _budgeted(edit):
    def run(self, prompt, *args, **kwargs):
        kwargs.setdefault("max_seconds", None)
        kwargs["max_seconds"] = kwargs["max_seconds"] or PIECE_SECONDS
        return edit(self, prompt, *args, **kwargs)

    return run


def test_cli_edit_long_file_writes_one_file_per_pass(tiny_bundle, recording, tmp_path, monkeypatch, capsys):
    from stepaudio_core import cli

    path = tmp_path / "long.wav"
    sf.write(path, recording.wav.numpy(), SAMPLE_RATE)
    monkeypatch.setattr(StepAudioEditX, "edit", _budgeted(StepAudioEditX.edit))
    out = tmp_path / "out.wav"
    code = cli.main(["edit", "--models", str(tiny_bundle), "--prompt-audio", str(path), "--edit-type", "denoise",
                     "--n-iter", "2", "--out", str(out), "--device", "cpu", "--dtype", "fp32",
                     "--max-piece-seconds", "20"])
    assert code == 0
    files = sorted(tmp_path.glob("out_iter*.wav"))
    assert [f.name for f in files] == ["out_iter1.wav", "out_iter2.wav"]
    for f in files:
        info = sf.info(f)
        assert info.samplerate == 24000 and info.duration > 5
    assert "piece 1/" in capsys.readouterr().err


def test_bad_piece_seconds_and_bad_audio_still_fail_clearly(model, long_prompt):
    for bad in (2.0, 31.0, float("nan"), "15"):
        with pytest.raises(InputError, match="input 'max_piece_seconds' must be between 3 and 30 s"):
            model.edit(long_prompt, "denoise", max_piece_seconds=bad)
    with pytest.raises(InputError, match="is silent"):
        model.encode(torch.zeros(40 * SAMPLE_RATE), SAMPLE_RATE, "")
    nan = torch.full((40 * SAMPLE_RATE,), float("nan"))
    with pytest.raises(InputError, match="NaN"):
        model.encode(nan, SAMPLE_RATE, "")
    with pytest.raises(InputError, match="is empty"):
        model.encode(torch.zeros(0), SAMPLE_RATE, "")


def test_pause_logging_is_quiet_for_clean_pauses(recording, caplog):
    head = recording.wav[: recording.stretch[0]]
    with caplog.at_level(logging.WARNING):
        plan(_prompt(head, "x " * 40), "emotion", None, 10.0)
    assert not [r for r in caplog.records if "no pause" in r.getMessage()]
