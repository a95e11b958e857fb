"""Prompts: exact strings for clone and all 55 edit type/options (tests/fixtures/prompts/prompt_strings.json),
exact ids with the released tokenizer (prompt_ids.json), the registry, framing B, the tiny tokenizer."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import sentencepiece as spm
import soundfile as sf

from stepaudio_core.codes import AUDIO_ID_OFFSET, audio_token_string, interleave
from stepaudio_core.edits import EDIT_TYPES, registry
from stepaudio_core.errors import InputError, ModelFileError
from stepaudio_core.lm.prompts import (
    CLONE_SYSTEM_TEMPLATE,
    EDIT_SYSTEM_PROMPT,
    clone_prompt_ids,
    clone_speaker_id,
    clone_system_prompt,
    edit_instruction,
    edit_prompt_ids,
    with_language_tag,
)
from stepaudio_core.lm.text_tokenizer import TextTokenizer
from stepaudio_core.testing.lm import tiny_sentencepiece_model
from stepaudio_core.validate import check_edit_request
from tests.paths import FIXTURES, shared_file

STRINGS = json.loads((FIXTURES / "prompts" / "prompt_strings.json").read_text(encoding="utf-8"))
IDS = json.loads((FIXTURES / "prompts" / "prompt_ids.json").read_text(encoding="utf-8"))
AUDIO_TEXT_KEY = "audio_text (edit; the reference strips it)"

# docs lm.md 5.3, measured with the released tokenizer: [1, 4] + encode("system\n" + edit system prompt) + [3]
EDIT_SYSTEM_BLOCK = [
    1, 4, 1, 2323, 78, 4566, 348, 15135, 324, 16064, 411, 15665, 43794, 353, 8394, 2446, 35226, 327, 770, 324, 15027,
    350, 10281, 412, 3199, 32157, 353, 47371, 39881, 22115, 6000, 358, 13311, 765, 8897, 326, 9630, 49709, 324, 574,
    332, 348, 10255, 3739, 346, 417, 456, 2275, 850, 324, 32918, 327, 1988, 769, 549, 11209, 358, 352, 78, 794, 779,
    14484, 467, 1121, 456, 2275, 850, 78, 794, 563, 46874, 412, 324, 4008, 324, 21320, 78, 794, 13908, 337, 2170, 410,
    5842, 324, 39453, 6000, 78, 794, 324, 11248, 18809, 412, 674, 324, 7035, 412, 78, 19770, 352, 2537, 883, 8708,
    32157, 350, 6364, 4814, 353, 504, 4995, 358, 31257, 558, 10281, 353, 19798, 336, 1472, 33907, 15665, 15340, 332,
    353, 417, 456, 2275, 6000, 326, 78, 3,
]


@pytest.fixture(scope="module")
def real_tok():
    return TextTokenizer(shared_file("real/tokenizer.model"))


def test_system_prompts_verbatim():
    assert STRINGS["system_prompts"]["AUDIO_EDIT_SYSTEM_PROMPT"] == EDIT_SYSTEM_PROMPT
    assert STRINGS["system_prompts"]["AUDIO_EDIT_CLONE_SYSTEM_PROMPT_TPL"] == CLONE_SYSTEM_TEMPLATE


def test_registry_lists_every_reference_type_and_option_in_order():
    ours = [(t.name, o) for t in EDIT_TYPES.values() for o in (t.options or (None,))]
    assert ours == [(e["edit_type"], e["edit_info"]) for e in STRINGS["edit"]]
    assert len(ours) == 55
    reg = registry()
    assert json.loads(json.dumps(reg)) == reg
    assert len(reg["edit_types"]["emotion"]["options"]) == 15 and len(reg["edit_types"]["style"]["options"]) == 33
    assert reg["edit_types"]["paralinguistic"]["needs_new_text"] and not reg["edit_types"]["vad"]["needs_audio_text"]
    assert "[Laughter]" in reg["paralinguistic_tags"] and reg["language_tags"][0] == "Sichuanese"


def test_audio_token_string_from_codes():
    for fixture in (STRINGS["fixed_inputs"], IDS):
        assert audio_token_string(interleave(fixture["vq02"], fixture["vq06"])) == fixture["audio_token_string"]
    assert [c + AUDIO_ID_OFFSET for c in interleave(IDS["vq02"], IDS["vq06"])] == IDS["audio_token_ids"]


@pytest.mark.parametrize("entry", STRINGS["edit"], ids=lambda e: f"{e['edit_type']}-{e['edit_info']}")
def test_edit_strings_equal_reference(entry):
    fixed = STRINGS["fixed_inputs"]
    instruction = edit_instruction(EDIT_TYPES[entry["edit_type"]], entry["edit_info"], fixed[AUDIO_TEXT_KEY], entry["text"])
    assert instruction == entry["instruction"]
    calls = entry["encode_calls"]
    assert calls["ENC#0"] == "system\n" + EDIT_SYSTEM_PROMPT
    assert calls["ENC#3"] == instruction + "\n" + fixed["audio_token_string"] + "\n"
    assert entry["framing"] == [1, 4, "ENC#0", 3, 4, "ENC#1", "ENC#3", 3, 4, "ENC#2"]


@pytest.mark.parametrize("entry", STRINGS["clone"], ids=lambda e: e["target_text"][:12])
def test_clone_strings_equal_reference(entry):
    fixed = STRINGS["fixed_inputs"]
    speaker = entry["system_prompt"].split("speaker name: ")[1].split("\n")[0]
    codes = interleave(fixed["vq02"], fixed["vq06"])
    assert clone_system_prompt(speaker, entry["prompt_text"], codes) == entry["system_prompt"]
    assert entry["encode_calls"]["ENC#2"] == "\n" + entry["target_text"]


def test_clone_speaker_id_of_the_reference_wav():
    wav = FIXTURES / "audio" / "en1_24k.wav"
    if not wav.is_file():
        pytest.skip("tests/fixtures/audio/en1_24k.wav is not available")
    samples, _ = sf.read(str(wav), dtype="float32", always_2d=True)  # as torchaudio.load: int16 / 32768
    entry = STRINGS["clone"][0]
    expected = entry["system_prompt"].split("speaker name: ")[1].split("\n")[0]
    assert clone_speaker_id(entry["prompt_text"], samples.T) == expected == "clone_29d3559f8e8e528b"
    assert clone_speaker_id(entry["prompt_text"], samples.T[:, :1500]).startswith("clone_")


def test_language_tags():
    assert with_language_tag("Please call Stella.", "Sichuanese") == "[Sichuanese]Please call Stella."
    assert with_language_tag("[Cantonese]Hi", "cantonese") == "[Cantonese]Hi"
    assert with_language_tag("Hi", None) == with_language_tag("Hi", "none") == with_language_tag("Hi", "English") == "Hi"
    with pytest.raises(InputError, match="language tag"):
        with_language_tag("Hi", "Klingon")


def test_bad_edit_inputs_are_explained():
    # The facade checks an edit's type, option and texts once, before any prompt is built.
    with pytest.raises(InputError, match="unknown edit type"):
        check_edit_request("pitch", None, "hi", None)
    with pytest.raises(InputError, match="not an option of edit type"):
        check_edit_request("style", "happy", "hi", None)
    with pytest.raises(InputError, match="transcript"):
        check_edit_request("emotion", "sad", "", None)
    with pytest.raises(InputError, match="new text"):
        check_edit_request("paralinguistic", None, "hi", "   ")
    assert edit_instruction(EDIT_TYPES["denoise"], None, "").startswith("Remove any noise")


def test_real_tokenizer_ids_equal_reference(real_tok):
    codes = interleave(IDS["vq02"], IDS["vq06"])
    for entry in IDS["clone"]:
        ids = clone_prompt_ids(real_tok, entry["speaker"], entry["prompt_text"], codes, entry["target_text"])
        assert ids == entry["ids"], entry["target_text"]
    for entry in IDS["edit"]:
        kind, option = entry["edit_type"], entry["edit_info"]
        ids = edit_prompt_ids(real_tok, EDIT_TYPES[kind], option, entry["audio_text"], codes, entry["text"])
        assert ids == entry["ids"], (entry["edit_type"], entry["edit_info"])
        assert ids[:129] == EDIT_SYSTEM_BLOCK


def test_language_option_gives_the_tagged_reference_ids(real_tok):
    entry = next(e for e in IDS["clone"] if e["target_text"].startswith("[Sichuanese]"))
    codes = interleave(IDS["vq02"], IDS["vq06"])
    text = entry["target_text"].removeprefix("[Sichuanese]")
    ids = clone_prompt_ids(real_tok, entry["speaker"], entry["prompt_text"], codes, text, language="Sichuanese")
    assert ids == entry["ids"]


def test_framing_b_drops_inner_bos_and_the_instruction_prefix_space(real_tok):
    """docs lm.md 5.3: B = A without the inner BOS ids, and 'Make'/'Remove'/'Add' instead of their '▁' forms."""
    codes = interleave(IDS["vq02"], IDS["vq06"])
    plain = {12065: 17758, 21032: 12319, 6808: 3426}  # ▁Make, ▁Remove, ▁Add -> Make, Remove, Add
    for entry in IDS["clone"]:
        a = clone_prompt_ids(real_tok, entry["speaker"], entry["prompt_text"], codes, entry["target_text"])
        b = clone_prompt_ids(real_tok, entry["speaker"], entry["prompt_text"], codes, entry["target_text"], framing="B")
        assert b == [a[0]] + [i for i in a[1:] if i != 1]
    for entry in IDS["edit"]:
        a = edit_prompt_ids(real_tok, EDIT_TYPES[entry["edit_type"]], entry["edit_info"], entry["audio_text"], codes, entry["text"])
        b = edit_prompt_ids(real_tok, EDIT_TYPES[entry["edit_type"]], entry["edit_info"], entry["audio_text"], codes, entry["text"], framing="B"
        )
        a_wo_bos = [a[0]] + [i for i in a[1:] if i != 1]
        first = a_wo_bos.index(78, a_wo_bos.index(4623)) + 1  # the instruction's first id, after "▁human\n"
        assert b == a_wo_bos[:first] + [plain[a_wo_bos[first]]] + a_wo_bos[first + 1 :]
    with pytest.raises(InputError, match="framing"):
        edit_prompt_ids(real_tok, EDIT_TYPES["vad"], None, "", codes, framing="C")


def test_bad_prompt_codes(real_tok):
    with pytest.raises(InputError, match="no audio tokens"):
        edit_prompt_ids(real_tok, EDIT_TYPES["vad"], None, "", [])
    with pytest.raises(InputError, match="0..5119"):
        edit_prompt_ids(real_tok, EDIT_TYPES["vad"], None, "", [0, 1, 5120])


def test_tiny_tokenizer_has_the_release_layout(tmp_path):
    start = time.perf_counter()
    data = tiny_sentencepiece_model()
    assert time.perf_counter() - start < 10
    (tmp_path / "tokenizer.model").write_bytes(data)
    tok = TextTokenizer(tmp_path / "tokenizer.model")
    assert len(tok) == 74752
    assert tok.sp.PieceToId("<audio_0>") == 65536 and tok.sp.PieceToId("<audio_9215>") == 74751
    ids = edit_prompt_ids(tok, EDIT_TYPES["emotion"], "happy", "Hello", [5, 7, 1024, 1025, 5119])
    assert ids[:2] == [1, 4] and ids.count(3) == 2 and ids.count(4) == 3  # three turns
    assert [65541, 65543, 66560, 66561, 70655] == [i for i in ids if i >= AUDIO_ID_OFFSET]
    assert tok.decode(tok.encode("Make the following audio more happy.")) == "Make the following audio more happy."


def test_wrong_tokenizer_is_refused(tmp_path):
    import io

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["hello world", "the quick brown fox"] * 5), model_writer=buf, vocab_size=30,
        hard_vocab_limit=False, minloglevel=2,
    )
    (tmp_path / "tokenizer.model").write_bytes(buf.getvalue())
    with pytest.raises(ModelFileError, match="not the Step-Audio-EditX tokenizer"):
        TextTokenizer(tmp_path / "tokenizer.model")
    (tmp_path / "garbage.model").write_bytes(np.arange(3000, dtype=np.uint8).tobytes())
    with pytest.raises(ModelFileError, match="not a sentencepiece model"):
        TextTokenizer(tmp_path / "garbage.model")
