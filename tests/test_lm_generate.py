"""Generation: the reference's sampling (goldens), cancel, structured decoding on a tiny random
LM in the released layout, and that the LM runs without transformers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from stepaudio_core.codes import AUDIO_ID_OFFSET, GROUP, pattern_error
from stepaudio_core.edits import EDIT_TYPES
from stepaudio_core.errors import InputError
from stepaudio_core.lm.generate import (
    Sampling,
    ban_repeat,
    generate_audio_codes,
    generate_ids,
    max_new_tokens_for,
    warp,
)
from stepaudio_core.lm.load import load_step1
from stepaudio_core.lm.prompts import clone_prompt_ids, edit_prompt_ids
from stepaudio_core.lm.text_tokenizer import TextTokenizer
from stepaudio_core.testing.lm import write_tiny_lm
from tests.lm_fixtures import golden, model  # noqa: F401 - pytest fixtures
from tests.paths import FIXTURES

LM = FIXTURES / "lm"
REPO = Path(__file__).resolve().parents[1]
EXACT = Sampling(structured=False)  # the reference's sampling, unconstrained


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = write_tiny_lm(tmp_path_factory.mktemp("models"))
    return load_step1(folder, dtype=torch.float32), TextTokenizer(folder / "tokenizer.model"), folder


def _prompt(golden) -> list[int]:
    return golden["input_ids"][0].tolist()


@pytest.mark.parity
def test_greedy_tokens_equal_reference(model, golden):
    ids = generate_ids(model, _prompt(golden), 24, Sampling(greedy=True, structured=False))
    assert ids == golden["greedy.new_tokens"][0].tolist()


@pytest.mark.parity
def test_seeded_sampled_tokens_equal_reference(model, golden):
    # the reference seeds the global CPU generator with 0 and draws one multinomial per step;
    # a CPU torch.Generator seeded 0 yields the same stream
    ids = generate_ids(model, _prompt(golden), 24, EXACT, generator=torch.Generator().manual_seed(0))
    assert ids == golden["sample.new_tokens"][0].tolist()


@pytest.mark.parity
def test_processed_scores_equal_reference_per_step(model, golden):
    seq = golden["sample.sequences"][0].tolist()
    P = golden["input_ids"].shape[1]
    kept_i, kept_v = golden["sample.step_final_scores_kept.indices"], golden["sample.step_final_scores_kept.values"]
    worst = 0.0
    with torch.no_grad():
        logits = model(torch.tensor([seq]))[0]
    for t in range(kept_i.shape[0]):
        scores = warp(ban_repeat(logits[P + t - 1 : P + t].clone(), seq[: P + t]), 0.7, 50)[0]
        finite = torch.isfinite(scores).nonzero()[:, 0]
        order = scores[finite].argsort(descending=True)
        assert set(finite.tolist()) == set(kept_i[t].tolist()), t
        worst = max(worst, (scores[finite][order] - kept_v[t]).abs().max().item())
    print("kept scores max|diff|", worst)
    # Logits / 0.7 reach 90 (ulp 7.6e-6; 1e-4 is 13 ulps), after the same ~10 roundings as the logits.
    # Worst seen: 2.3e-5 (avx2, avx512).
    assert worst <= 1e-4


@pytest.mark.parity
@pytest.mark.parametrize("mode", ["greedy", "sample"])
def test_repetition_guard_fires_where_the_reference_did(golden, mode):
    import json

    flags = json.loads((LM / "io_manifest.json").read_text())["checks"][f"{mode}_RAP_masked_per_step"]
    seq = golden[f"{mode}.sequences"][0].tolist()
    P = golden["input_ids"].shape[1]
    ours = [bool(torch.isinf(ban_repeat(torch.zeros(1, 4096), seq[: P + t])).any()) for t in range(len(flags))]
    assert ours == flags


def test_budget_from_duration():
    assert max_new_tokens_for(0.12) == 6  # one group of five per 120 ms, plus the stop token
    assert max_new_tokens_for(3.0) == 25 * GROUP + 1
    assert max_new_tokens_for(30.0) == 250 * GROUP + 1
    with pytest.raises(InputError):
        max_new_tokens_for(0)


def test_cancel_inside_the_loop_leaves_the_model_usable(model, golden):
    full = generate_ids(model, _prompt(golden), 24, EXACT, generator=torch.Generator().manual_seed(3))
    seen: list[int] = []

    def cancel_at_five(done: int, total: int) -> None:
        seen.append(done)
        if done == 5:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        generate_ids(model, _prompt(golden), 24, EXACT, torch.Generator().manual_seed(3), callback=cancel_at_five)
    assert seen == [1, 2, 3, 4, 5]
    again = generate_ids(model, _prompt(golden), 24, EXACT, generator=torch.Generator().manual_seed(3))
    assert again == full
    greedy = generate_ids(model, _prompt(golden), 24, Sampling(greedy=True, structured=False))
    assert greedy == golden["greedy.new_tokens"][0].tolist()


def _well_formed(codes: list[int]) -> bool:
    return len(codes) % GROUP == 0 and pattern_error([c + AUDIO_ID_OFFSET for c in codes]) is None


def test_structured_decoding_yields_whole_groups(tiny):
    model, tok, _ = tiny
    prompt = edit_prompt_ids(tok, EDIT_TYPES["emotion"], "happy", "Hello there", [1, 2, 1030, 1031, 1032] * 3)
    for seed in range(4):
        ticks: list[tuple[int, int]] = []
        codes = generate_audio_codes(
            model, prompt, max_new_tokens_for(0.5), generator=torch.Generator().manual_seed(seed),
            callback=lambda done, total, ticks=ticks: ticks.append((done, total)),
        )
        assert codes and _well_formed(codes), codes
        assert ticks[-1][0] == len(codes) + 1 and ticks[-1][1] == max_new_tokens_for(0.5)
    greedy = generate_audio_codes(model, prompt, 23, Sampling(greedy=True))  # budget rounds down to 21
    assert _well_formed(greedy) and len(greedy) <= 20


def test_structured_decoding_fixes_a_model_that_leaves_the_pattern(tiny):
    _, tok, folder = tiny
    prompt = clone_prompt_ids(tok, "clone_0", "Hello there", [1, 2, 1030, 1031, 1032], "Please call Stella.")
    bad = load_step1(folder, dtype=torch.float32)
    with torch.no_grad():
        bad.lm_head.weight.zero_()  # every logit 0: argmax picks text ids 0, 1, ...
    with pytest.raises(InputError, match="not a well-formed audio-token stream.*structured decoding"):
        generate_audio_codes(bad, prompt, 16, Sampling(greedy=True, structured=False))
    assert _well_formed(generate_audio_codes(bad, prompt, 16, Sampling(greedy=True)))
    assert _well_formed(generate_audio_codes(bad, prompt, 16, generator=torch.Generator().manual_seed(0)))


def test_structured_decoding_needs_the_audio_vocabulary_and_options_are_checked(model, golden):
    with pytest.raises(InputError, match="structured decoding"):
        generate_ids(model, _prompt(golden), 11, Sampling(greedy=True))
    with pytest.raises(ValueError, match="Generator"):
        generate_ids(model, _prompt(golden), 4, EXACT)
    with pytest.raises(InputError, match="temperature"):
        Sampling(temperature=0)
    with pytest.raises(InputError, match="budget"):
        generate_ids(model, _prompt(golden), 0, Sampling(greedy=True, structured=False))


def test_lm_imports_nothing_from_transformers(tmp_path):
    # poisoned stand-ins: importing either one leaves a marker file and fails
    for name in ("transformers", "bitsandbytes"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(
            f"import pathlib\npathlib.Path({str(tmp_path / (name + '.imported'))!r}).touch()\n"
            f"raise ImportError('{name} must not be imported')\n"
        )
    script = textwrap.dedent(
        f"""
        import sys, torch
        torch.set_num_threads(1)
        from pathlib import Path
        from stepaudio_core.lm import (TextTokenizer, Sampling, edit_prompt_ids, generate_audio_codes, load_step1)
        from stepaudio_core.edits import EDIT_TYPES
        from stepaudio_core.testing.lm import write_tiny_lm
        folder = write_tiny_lm(Path({str(tmp_path)!r}))
        tok = TextTokenizer(folder / "tokenizer.model")
        model = load_step1(folder, dtype=torch.float32)
        prompt = edit_prompt_ids(tok, EDIT_TYPES["style"], "whisper", "Hi there", [0, 1, 1024, 1025, 1026])
        codes = generate_audio_codes(model, prompt, 11, generator=torch.Generator().manual_seed(0))
        assert len(codes) % 5 == 0, codes
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("transformers", "bitsandbytes"))
        assert not bad, bad
        print("ok", len(codes))
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    run = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("ok")
    assert not list(tmp_path.glob("*.imported"))
