"""Cancel as ComfyUI raises it (a BaseException since Comfy-Org/ComfyUI#13523) leaves every generating
node unchanged, from inside the token loop, and the model handle gives the same result afterwards."""

import pytest
import torch

from tests.test_nodes_pipeline import _encode, model, reference  # noqa: F401 - pytest fixtures

# (node, arguments after model and prompt, the pass in which Cancel is pressed)
RUNS = {
    "clone": ("clone.StepAudioClone", ("Hello there.", "none", 0, 0.7, 2.0), 0),
    "edit": ("edit.StepAudioEdit", ("emotion", "happy", "", 0), 0),
    "iterate-audio": (
        "iterate.StepAudioEditIterate",
        ("style", "whisper", "", 1, 2, "audio round trip (reference)", 1),
        1,
    ),
    "iterate-tokens": (
        "iterate.StepAudioEditIterate",
        ("style", "whisper", "", 1, 2, "token space (faster, not the reference)", 1),
        1,
    ),
}


def _node(pack, dotted):
    module, name = dotted.split(".")
    return getattr(getattr(pack.nodes, module), name)


def _result(out):
    """What a node returned, as comparable values: token lists (and, for iterate, waveforms)."""
    args = out.args
    if len(args) == 1:
        return [t.tokens for t in args[0]]
    passes, _, tokens = args
    return [t.tokens for t in tokens], [a["waveform"] for a in passes]


@pytest.mark.parametrize("run", RUNS)
def test_cancel_propagates_unchanged_and_the_handle_stays_usable(pack, model, reference, comfy, monkeypatch, run):  # noqa: F811
    import comfy.model_management as mm

    dotted, args, cancel_pass = RUNS[run]
    node, prompt = _node(pack, dotted), _encode(pack, model, reference)
    assert not issubclass(mm.InterruptProcessingException, Exception)  # as in current ComfyUI
    before = _result(node.execute(model, prompt, *args))

    raised, seen = [], []
    real_throw = mm.throw_exception_if_processing_interrupted

    def throw():  # ComfyUI's check, recording the exception it raises
        try:
            real_throw()
        except mm.InterruptProcessingException as e:
            raised.append(e)
            raise

    progress = pack.nodes.progress.TokenProgress
    real_call = progress.__call__

    def press_cancel_at_token_3(self, done, total):
        seen.append((self.current, done))
        if (self.current, done) == (cancel_pass, 3):
            comfy.interrupted = True
        real_call(self, done, total)

    monkeypatch.setattr(mm, "throw_exception_if_processing_interrupted", throw)
    monkeypatch.setattr(progress, "__call__", press_cancel_at_token_3)
    with pytest.raises(mm.InterruptProcessingException) as err:
        node.execute(model, prompt, *args)
    # The very exception ComfyUI raised, neither wrapped nor replaced, raised inside the token loop.
    assert len(raised) == 1 and err.value is raised[0]
    assert err.value.__cause__ is None and not err.value.__suppress_context__
    assert seen[-1] == (cancel_pass, 3) and not comfy.interrupted
    monkeypatch.undo()

    after = _result(node.execute(model, prompt, *args))
    # Same seed, same tokens (and audio): the cancelled run left nothing half-done in the handle.
    if run.startswith("iterate"):
        assert after[0] == before[0] and all(torch.equal(a, b) for a, b in zip(after[1], before[1], strict=True))
    else:
        assert after == before
