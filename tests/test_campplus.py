"""CAM++: weights read out of the ONNX export, embeddings against the reference, and bad files."""

from __future__ import annotations

import json

import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from safetensors.torch import load_file

from stepaudio_core.decoder.campplus import CAMPPlus, CAMPPlusDims, speaker_embedding
from stepaudio_core.decoder.campplus_onnx import campplus_state_dict_from_onnx, load_campplus
from stepaudio_core.errors import InputError, ModelFileError
from stepaudio_core.testing.decoder import write_campplus_onnx
from stepaudio_core.testing.random_weights import randomize_
from tests.paths import FIXTURES, shared_file

TINY = CAMPPlusDims(embedding_size=24, growth_rate=8, bn_size=2, init_channels=16, m_channels=4, block_layers=(2, 3, 2))


@pytest.fixture(scope="module")
def golden():
    return load_file(FIXTURES / "campplus" / "io.safetensors")


@pytest.fixture(scope="module")
def golden_onnx():
    return shared_file("goldens/campplus/campplus.onnx")


@pytest.fixture(scope="module")
def released(golden_onnx):
    return load_campplus(golden_onnx)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model = randomize_(CAMPPlus(TINY), torch.Generator().manual_seed(3)).eval()
    path = tmp_path_factory.mktemp("campplus") / "campplus.onnx"
    write_campplus_onnx(model, path)
    return model, path


@pytest.mark.slow
def test_released_onnx_gives_every_tensor_of_the_folded_model(golden_onnx, released):
    assert released.dims == CAMPPlusDims()
    state = campplus_state_dict_from_onnx(golden_onnx)
    assert state.keys() == released.state_dict().keys()
    info = json.loads((FIXTURES / "campplus" / "campplus_onnx_map.json").read_text())
    # Each of the file's 617 initializers lands in exactly one tensor: the 485 named ones under their
    # own name and bit-identical, the rest being the anonymous weights and biases of folded convs.
    assert len(state) == info["n_initializers"] == 617
    named = info["torch_key_to_identical_onnx_initializer"]
    initializers = {t.name: t for t in onnx.load(str(golden_onnx)).graph.initializer}
    for key, name in named.items():
        assert torch.equal(state[key], torch.from_numpy(numpy_helper.to_array(initializers[name]).copy())), key
    for key in state.keys() - named.keys():
        assert key.rsplit(".", 1)[1] in ("weight", "bias") and ".cam_layer." not in key, key


@pytest.mark.parity
@pytest.mark.slow
def test_embedding_of_en1_audio_matches_reference(golden, released):
    ours = speaker_embedding(released, golden["en1.audio_16k"])
    assert ours.shape == (1, 192)
    for ref in (golden["en1.embedding_onnx"], golden["en1.embedding_torch"]):
        # The embedding's direction is what speaker similarity uses; a missing layer or a wrongly folded
        # BatchNorm turns it by far more than 1e-4 (cosine < 0.99). Worst seen: 0.99999994 (default).
        assert F.cosine_similarity(ours, ref).item() >= 0.9999
        # Elements up to 2.3 after ~90 layers with sums over hundreds of channels: 1e-3 is ~4e-4 of the
        # largest element (~3600 ulps). Worst seen: 2.9e-4 (avx512, 2 threads).
        assert (ours - ref).abs().max().item() <= 1e-3


@pytest.mark.parity
@pytest.mark.slow
def test_network_on_en2_fbank_matches_reference(golden, released):
    # en2's 16 kHz waveform is not in the goldens; its mean-normalised fbank is the ONNX input itself.
    with torch.no_grad():
        ours = released(golden["en2.fbank_mean_normed"][None])
    for ref in (golden["en2.embedding_onnx"], golden["en2.embedding_torch"]):
        # As above. Worst seen: cosine 1.0, max difference 1.2e-4 (MKL AVX2), 8.0e-5 (default, 2 threads).
        assert F.cosine_similarity(ours, ref).item() >= 0.9999
        assert (ours - ref).abs().max().item() <= 1e-3


def test_writer_round_trip_is_bit_exact(tiny):
    model, path = tiny
    state = campplus_state_dict_from_onnx(path)
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    loaded = load_campplus(path)
    assert loaded.dims == TINY and not loaded.training
    wav = 0.1 * torch.randn(8000, generator=torch.Generator().manual_seed(5))
    assert torch.equal(speaker_embedding(loaded, wav), speaker_embedding(model, wav))


def test_writer_follows_the_release_conventions(tiny):
    graph = onnx.load(str(tiny[1])).graph
    nodes = {n.name: n for n in graph.node}
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["output"]
    assert nodes["/head/layer1/layer1.0/shortcut/shortcut.0/Conv"].input[1].startswith("onnx::Conv_")
    assert nodes["/xvector/transit3/linear/Conv"].input[2].startswith("onnx::Conv_")
    assert list(nodes["/xvector/block1/tdnnd2/cam_layer/linear_local/Conv"].input[1:]) == [
        "xvector.block1.tdnnd2.cam_layer.linear_local.weight"
    ]
    assert nodes["/xvector/dense/nonlinear/batchnorm/BatchNormalization"].input[3] == (
        "xvector.dense.nonlinear.batchnorm.running_mean"
    )


def test_truncated_lfs_and_foreign_files_are_model_file_errors(tiny, tmp_path):
    data = tiny[1].read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    pointer = tmp_path / "pointer.onnx"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 28280811\n")
    foreign = tmp_path / "foreign.onnx"
    x, y = (onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, 80]) for n in ("input", "output"))
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["input"], ["output"], name="/Relu")], "g", [x], [y])
    onnx.save(onnx.helper.make_model(graph), str(foreign))
    for path, reason in [(truncated, "truncated"), (pointer, "LFS"), (foreign, "no Conv node named '/head/conv1/Conv'")]:
        with pytest.raises(ModelFileError, match=reason) as info:
            load_campplus(path)
        assert path.name in str(info.value)


def test_wrong_shape_in_file_is_a_model_file_error(tiny, tmp_path):
    model = onnx.load(str(tiny[1]))
    name = "xvector.transit1.nonlinear.batchnorm.running_var"
    for i, t in enumerate(model.graph.initializer):
        if t.name == name:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t)[:-1].copy(), name))
    path = tmp_path / "shape.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelFileError, match=f"'{name}' has shape") as info:
        campplus_state_dict_from_onnx(path)
    assert "shape.onnx" in str(info.value)


def test_too_short_audio_is_an_input_error(tiny):
    with pytest.raises(InputError, match="samples"):
        speaker_embedding(tiny[0], torch.zeros(600))
