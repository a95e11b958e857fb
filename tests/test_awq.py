"""Pre-quantized (AWQ, compressed-tensors pack-quantized) Step1 folders: format, golden parity, errors.

``fixtures/awq`` holds two folders written by the reference's own quantization script (llmcompressor
0.8.1) from one tiny Step1, and the library's logits and dequantized weights (its README says how).
The unpacking is our own code; where compressed-tensors is installed it is the cross-check.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from stepaudio_core.errors import InputError, ModelFileError
from stepaudio_core.lm.awq import PackedLinear, PackQuantConfig, unpack_int32
from stepaudio_core.lm.load import load_step1
from stepaudio_core.lm.model import Step1ForCausalLM
from stepaudio_core.testing.lm import awq_quantization_config, pack_int32
from tests.paths import FIXTURES

AWQ = FIXTURES / "awq"
FOLDERS = {"asym": ("awq-4bit", "logits_awq", "dequant."), "sym": ("awq-4bit-sym", "logits_awq_sym", "dequant_sym.")}
# Our Step1 against transformers' Step1 class on the same fp32 weights: two implementations whose sums of
# <= 512 products (|logit| <= 1.3) run in different orders through 2 layers; fp32 rounding over that
# depth stays below 512 * 6e-8 * 1.3 = 4e-5 in the worst case (measured: 8.3e-7).
LIBRARY_TOL = 4e-5


@pytest.fixture(scope="module")
def io():
    return load_file(str(AWQ / "io.safetensors"))


def packed_layers(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, PackedLinear)}


def copy_folder(name, tmp_path):
    dst = tmp_path / name
    shutil.copytree(AWQ / name, dst)
    dst.chmod(0o755)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def edit_config(folder, fn):
    path = folder / "config.json"
    d = json.loads(path.read_text())
    fn(d)
    path.write_text(json.dumps(d))


# ---------------------------------------------------------------- format


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("dim", [0, 1])
def test_unpacking_and_packing_agree_with_the_library(bits, dim):
    helpers = pytest.importorskip("compressed_tensors.compressors.pack_quantized.helpers")
    g = torch.Generator().manual_seed(bits + dim)
    lo, hi = -(1 << (bits - 1)), 1 << (bits - 1)
    codes = torch.randint(lo, hi, (24, 40), generator=g, dtype=torch.int8)
    theirs = helpers.pack_to_int32(codes, bits, packed_dim=dim)
    assert torch.equal(pack_int32(codes.long(), bits, dim=dim), theirs)  # the tiny-bundle writer
    assert torch.equal(unpack_int32(theirs, bits, codes.shape[dim], dim=dim), codes.int())


@pytest.mark.parametrize("scheme", FOLDERS)
def test_golden_folder_loads_strictly_with_the_librarys_weights(scheme, io):
    name, _, prefix = FOLDERS[scheme]
    model = load_step1(AWQ / name, dtype=torch.float32, keep_packed=True)
    layers = packed_layers(model)
    assert len(layers) == 14 and all(m.cfg.symmetric == (scheme == "sym") for m in layers.values())
    assert type(model.lm_head) is torch.nn.Linear  # the ignored layer stays full precision
    key = "model.layers.0.self_attn.q_proj"
    assert torch.equal(layers[key].dequantized(), io[prefix + key + ".weight"])  # bit for bit


@pytest.mark.parametrize("scheme", FOLDERS)
def test_every_golden_layer_dequantizes_as_the_library_does(scheme):
    pq = pytest.importorskip("compressed_tensors.compressors.pack_quantized.base")
    qargs = pytest.importorskip("compressed_tensors.quantization")
    name = FOLDERS[scheme][0]
    model = load_step1(AWQ / name, dtype=torch.float32, keep_packed=True)
    file = load_file(str(AWQ / name / "model.safetensors"))
    q = json.loads((AWQ / name / "config.json").read_text())["quantization_config"]["config_groups"]["group_0"]
    s = qargs.QuantizationScheme(targets=["Linear"], weights=qargs.QuantizationArgs(**q["weights"]))
    for key, m in packed_layers(model).items():
        local = {k.rsplit(".", 1)[1]: v for k, v in file.items() if k.rsplit(".", 1)[0] == key}
        theirs = pq.PackedQuantizationCompressor.decompress(local, s)["weight"]
        assert torch.equal(m.dequantized(), theirs), key


@pytest.mark.parametrize("keep_packed", [True, False], ids=["packed", "dequantized-at-load"])
@pytest.mark.parametrize("scheme", FOLDERS)
def test_golden_logits_equal_the_librarys(scheme, keep_packed, io):
    name, logits_key, _ = FOLDERS[scheme]
    model = load_step1(AWQ / name, dtype=torch.float32, keep_packed=keep_packed)
    assert bool(packed_layers(model)) == keep_packed
    with torch.no_grad():
        logits = model(io["prompt_ids"])
    assert (logits - io[logits_key]).abs().max().item() <= LIBRARY_TOL


@pytest.mark.parametrize("scheme", FOLDERS)
def test_golden_logits_stay_near_full_precision(scheme, io):
    """The quantized model against the unquantized one, within what 4-bit rounding explains.

    Rounding to a grid of step ``scale`` leaves an error of rms scale / sqrt(12) per weight; eps, that
    over the weights' rms, is the relative error of every quantized matmul (0.10 asym, 0.11 sym).
    Errors of independent roundings add in quadrature along the 8 quantized matmuls in series (2 layers
    x [q/k/v -> o, gate/up -> down]), so the logits' relative error is about eps * sqrt(8) = 2.8 eps;
    3 eps leaves a margin (measured: 2.1 eps asym, 2.4 eps sym).
    """
    name, _, _ = FOLDERS[scheme]
    model = load_step1(AWQ / name, dtype=torch.float32, keep_packed=True)
    noise = power = 0.0
    for m in packed_layers(model).values():
        w = m.dequantized()
        scale = m.weight_scale.repeat_interleave(m.in_features // m.weight_scale.shape[1], dim=1)
        noise += (scale.square() / 12).sum().item()
        power += w.square().sum().item()
    eps = (noise / power) ** 0.5
    with torch.no_grad():
        logits = model(io["prompt_ids"])
    fp = io["logits_fp"]
    rel = ((logits - fp).norm() / fp.norm()).item()
    same = (logits.argmax(-1) == fp.argmax(-1)).sum().item()
    print(f"{scheme}: eps {eps:.4f}, logits rel. error {rel:.4f} = {rel / eps:.2f} eps, same argmax {same}/32")
    assert 0.05 < eps < 0.2 and rel <= 3 * eps


@pytest.mark.parametrize("scheme", FOLDERS)
def test_greedy_tokens_on_the_golden_prompt(scheme, io):
    """Greedy continuation of the prompt: the packed and dequantized paths pick the same tokens, and the first
    is the library's argmax."""
    name, logits_key, _ = FOLDERS[scheme]
    runs = []
    for keep_packed in (True, False):
        model = load_step1(AWQ / name, dtype=torch.float32, keep_packed=keep_packed)
        ids = io["prompt_ids"]
        with torch.no_grad():
            for _ in range(8):
                ids = torch.cat([ids, model(ids)[:, -1:].argmax(-1)], dim=1)
        runs.append(ids[0, 32:].tolist())
    print(
        f"{scheme}: greedy tokens {runs[0]} (fp model's argmax at the last position: "
        f"{io['logits_fp'][0, -1].argmax().item()})"
    )
    assert runs[0] == runs[1]
    assert runs[0][0] == io[logits_key][0, -1].argmax().item()


# ---------------------------------------------------------------- checkpoints made by the library's compressor


def library_checkpoint(tmp_path, bits, group_size, symmetric, scale_dtype=torch.float32):
    """A tiny Step1 folder quantized by compressed-tensors itself (minmax scales, its compress())."""
    pq = pytest.importorskip("compressed_tensors.compressors.pack_quantized.base")
    qargs = pytest.importorskip("compressed_tensors.quantization")
    cfg_dict = json.loads((AWQ / "awq-4bit" / "config.json").read_text())
    cfg_dict["quantization_config"] = awq_quantization_config(bits, group_size, symmetric)
    args = qargs.QuantizationArgs(**cfg_dict["quantization_config"]["config_groups"]["group_0"]["weights"])
    scheme = qargs.QuantizationScheme(targets=["Linear"], weights=args)
    from stepaudio_core.lm.config import Step1Config

    torch.manual_seed(0)
    model = Step1ForCausalLM(Step1Config.from_dict(cfg_dict))
    sd, dense = {}, {}
    for key, w in model.state_dict().items():
        module = key.rsplit(".", 1)[0]
        if not (key.startswith("model.layers.") and key.endswith("_proj.weight")):
            sd[key] = dense[key] = w.clone()
            continue
        g = w.view(w.shape[0], -1, group_size or w.shape[1])
        q_min, q_max = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if symmetric:
            scale, zp = g.abs().amax(-1) / ((q_max - q_min) / 2), None
        else:
            lo, hi = g.amin(-1).clamp(max=0), g.amax(-1).clamp(min=0)
            scale = (hi - lo) / (q_max - q_min)
            zp = torch.round(q_min - lo / scale).clamp(q_min, q_max).to(torch.int8)
        local = {"weight": w, "weight_scale": scale.to(scale_dtype)}
        if zp is not None:
            local["weight_zero_point"] = zp
        out = pq.PackedQuantizationCompressor.compress(local, scheme)
        for name, t in out.items():
            sd[f"{module}.{name}"] = t.contiguous()
        dense[key] = pq.PackedQuantizationCompressor.decompress(out, scheme)["weight"]
    folder = tmp_path / "quantized"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg_dict))
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder, dense


@pytest.mark.parametrize(
    "bits,group_size,symmetric,scale_dtype",
    [
        (8, None, True, torch.float32),  # W8A16, the compressed-tensors preset: per channel, symmetric
        (8, 128, False, torch.float32),
        (4, 64, False, torch.float32),
        (4, 128, True, torch.bfloat16),  # the release stores scales in bf16
    ],
    ids=["w8-channel-sym", "w8-g128-asym", "w4-g64-asym", "w4-g128-sym-bf16"],
)
def test_library_made_checkpoints_load_exactly(tmp_path, io, bits, group_size, symmetric, scale_dtype):
    folder, dense = library_checkpoint(tmp_path, bits, group_size, symmetric, scale_dtype)
    model = load_step1(folder, dtype=torch.float32, keep_packed=True)
    layers = packed_layers(model)
    assert len(layers) == 14
    for key, m in layers.items():
        assert torch.equal(m.dequantized(), dense[key + ".weight"]), key
    reference = Step1ForCausalLM(model.config)
    reference.load_state_dict({k: v.float() for k, v in dense.items()})
    with torch.no_grad():
        a, b = model(io["prompt_ids"]), reference(io["prompt_ids"])
    assert torch.equal(a, b)  # the same fp32 weights through the same code


# ---------------------------------------------------------------- bad folders


def test_corrupt_scale_is_named(tmp_path):
    folder = copy_folder("awq-4bit", tmp_path)
    sd = load_file(str(folder / "model.safetensors"))
    sd["model.layers.1.mlp.up_proj.weight_scale"][3, 1] = float("nan")
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelFileError, match=r"model\.layers\.1\.mlp\.up_proj\.weight_scale .*NaN"):
        load_step1(folder, dtype=torch.float32)


def test_missing_scale_is_named(tmp_path):
    folder = copy_folder("awq-4bit", tmp_path)
    sd = load_file(str(folder / "model.safetensors"))
    del sd["model.layers.0.self_attn.k_proj.weight_scale"]
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelFileError, match=r"1 missing: model\.layers\.0\.self_attn\.k_proj\.weight_scale"):
        load_step1(folder, dtype=torch.float32)


def test_missing_zero_points_are_named(tmp_path):
    folder = copy_folder("awq-4bit-sym", tmp_path)  # symmetric weights under an asymmetric config
    edit_config(
        folder, lambda d: d["quantization_config"]["config_groups"]["group_0"]["weights"].update(symmetric=False)
    )
    with pytest.raises(ModelFileError, match=r"14 missing: model\.layers\.0\.self_attn\.q_proj\.weight_zero_point"):
        load_step1(folder, dtype=torch.float32)


def test_wrong_group_size_is_named(tmp_path):
    folder = copy_folder("awq-4bit", tmp_path)
    edit_config(folder, lambda d: d["quantization_config"]["config_groups"]["group_0"]["weights"].update(group_size=64))
    with pytest.raises(
        ModelFileError, match=r"wrong shape: model\.layers\.0\.self_attn\.q_proj\.weight_scale \(256, 2\)"
    ):
        load_step1(folder, dtype=torch.float32)
    edit_config(folder, lambda d: d["quantization_config"]["config_groups"]["group_0"]["weights"].update(group_size=96))
    with pytest.raises(ModelFileError, match="group_size 96 does not divide .*q_proj's 256 inputs"):
        load_step1(folder, dtype=torch.float32)


def test_wrong_shape_record_is_named(tmp_path):
    folder = copy_folder("awq-4bit", tmp_path)
    sd = load_file(str(folder / "model.safetensors"))
    sd["model.layers.1.mlp.down_proj.weight_shape"] = torch.tensor([512, 256])
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelFileError, match=r"model\.layers\.1\.mlp\.down_proj\.weight_shape .*\[512, 256\]"):
        load_step1(folder, dtype=torch.float32)


@pytest.mark.parametrize(
    "change,key",
    [
        (lambda q: q.update(format="marlin-24"), "quantization_config.format"),
        (lambda q: q.update(quant_method="gptq"), "quantization_config.quant_method"),
        (lambda q: q["config_groups"]["group_0"]["weights"].update(num_bits=3), "weights.num_bits"),
        (lambda q: q["config_groups"]["group_0"]["weights"].update(strategy="block"), "weights.strategy"),
        (lambda q: q["config_groups"]["group_0"]["weights"].update(type="float"), "weights.type"),
        (lambda q: q["config_groups"]["group_0"].update(input_activations={"num_bits": 8}), "input_activations"),
        (lambda q: q["config_groups"]["group_0"].update(targets=["Embedding"]), "targets"),
        (lambda q: q["config_groups"].update(group_1={}), "config_groups"),
        (lambda q: q.update(sparsity_config={"format": "sparse-24"}), "sparsity_config"),
    ],
    ids=["format", "method", "bits", "strategy", "float", "activations", "targets", "two-groups", "sparse"],
)
def test_unknown_scheme_is_named(tmp_path, change, key):
    folder = copy_folder("awq-4bit", tmp_path)
    edit_config(folder, lambda d: change(d["quantization_config"]))
    with pytest.raises(ModelFileError, match=key.replace(".", r"\.") + ".* only .* can be loaded"):
        load_step1(folder, dtype=torch.float32)


def test_bitsandbytes_on_a_quantized_folder_is_refused():
    with pytest.raises(InputError, match="already quantized .*set quantization to 'none'"):
        load_step1(AWQ / "awq-4bit", quantize="nf4")


def test_config_reads_ignore_patterns():
    q = json.loads((AWQ / "awq-4bit" / "config.json").read_text())["quantization_config"]
    cfg = PackQuantConfig.from_dict({**q, "ignore": ["lm_head", "re:.*mlp\\.down_proj$"]}, "config.json")
    assert cfg.is_ignored("lm_head") and cfg.is_ignored("model.layers.3.mlp.down_proj")
    assert not cfg.is_ignored("model.layers.3.mlp.up_proj") and cfg.group_size == 128 and cfg.num_bits == 4


def test_big_endian_path_reads_the_same_fields(monkeypatch):
    """The shift-and-mask path (big-endian CPUs) against the byte view (everywhere else)."""
    import sys

    g = torch.Generator().manual_seed(3)
    words = torch.randint(-(2**31), 2**31 - 1, (6, 5), generator=g, dtype=torch.int64).to(torch.int32)
    fast = {bits: unpack_int32(words, bits, 5 * 32 // bits - 3) for bits in (4, 8)}
    monkeypatch.setattr(sys, "byteorder", "big")
    for bits in (4, 8):
        assert torch.equal(unpack_int32(words, bits, 5 * 32 // bits - 3), fast[bits])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the packed CUDA path needs a CUDA GPU")
@pytest.mark.parametrize("scheme", FOLDERS)
def test_packed_on_cuda_gives_the_librarys_weights_and_logits(scheme, io):
    name, logits_key, prefix = FOLDERS[scheme]
    model = load_step1(AWQ / name, device="cuda", dtype=torch.float32)  # CUDA keeps the weights packed
    layers = packed_layers(model)
    assert len(layers) == 14 and layers["model.layers.0.mlp.up_proj"].weight_packed.is_cuda
    key = "model.layers.0.self_attn.q_proj"
    assert torch.equal(layers[key].dequantized().cpu(), io[prefix + key + ".weight"])
    with torch.no_grad():
        logits = model(io["prompt_ids"].cuda()).cpu()
    # the library's fp32 logits from CPU matmuls; CUDA's fp32 GEMMs (TF32 off by default) round in another
    # order, within the same fp32 bound as the CPU comparison
    assert (logits - io[logits_key]).abs().max().item() <= LIBRARY_TOL
