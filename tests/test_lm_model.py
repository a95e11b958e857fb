"""Step1 model and loader: parity with the reference goldens (tests/fixtures/lm), cache and prefill
equivalences, grouped-query layout at the real head count, strict loading."""

from __future__ import annotations

import json
import math
import shutil
import sys

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from stepaudio_core.errors import InputError, ModelFileError
from stepaudio_core.lm.config import Step1Config
from stepaudio_core.lm.load import load_step1
from stepaudio_core.lm.model import Step1ForCausalLM, alibi_bias, alibi_slopes
from tests.lm_fixtures import golden, model  # noqa: F401 - pytest fixtures
from tests.paths import FIXTURES
from tests.tolerances import EPS

LM = FIXTURES / "lm"
# Logits of the tiny golden model reach 64, where one fp32 ulp is 7.6e-6; two layers and 48-wide sums
# put ~10 roundings on them, so 1e-4 (13 ulps at 64). Hidden states (up to 3.8) sit far below it.
# A wrong ALiBi slope, norm epsilon or head grouping moves logits by ~0.1 or more.
# Worst seen: logits 1.5e-5 (decode steps, avx2 and avx512), prefill 1.1e-5, cache vs recompute 1.5e-5 (avx2),
# chunked prefill 7.6e-6 (avx2), released head count 3.8e-6 (MKL AVX2).
TOL = 1e-4


@pytest.mark.parity
def test_prefill_logits_and_hidden_states_match_reference(model, golden):
    ids = golden["input_ids"]
    outs: list[torch.Tensor] = []
    with torch.no_grad():
        embeds = model.model.embed_tokens(ids)
        final = model.model(ids, layer_outputs=outs)
        logits = model.lm_head(final)
    diffs = {
        "embeddings": (embeds - golden["prefill.embeddings"]).abs().max().item(),
        "hidden[1]": (outs[0] - golden["prefill.hidden_states"][1]).abs().max().item(),
        "hidden[2] (final norm)": (final - golden["prefill.hidden_states"][2]).abs().max().item(),
        "logits": (logits - golden["prefill.logits"]).abs().max().item(),
    }
    for i, out in enumerate(outs):
        diffs[f"layer_output[{i}]"] = (out - golden["prefill.layer_outputs"][i]).abs().max().item()
    print("max|diff|", diffs)
    assert max(diffs.values()) <= TOL, diffs
    assert torch.equal(embeds, golden["prefill.hidden_states"][0])


@pytest.mark.parity
@pytest.mark.parametrize(
    ("name", "heads", "length"), [("alibi.b5_h8", 8, 5), ("alibi.b8_h6", 6, 8), ("alibi.b8_h48", 48, 8)]
)
def test_alibi_table_equals_reference(golden, name, heads, length):
    ours, ref = alibi_bias(alibi_slopes(heads), 0, length, length, torch.float32), golden[name][0]
    assert torch.equal(ours.isinf(), ref.isinf())  # the causal mask is exact
    # Each entry is pow (slope) * sqrt (distance): two roundings, and the scalar and vectorised pow differ
    # by one ulp, so 2 ulps relative. Worst seen: 1 ulp (48 heads, default); a wrong slope formula is off by %.
    finite = ref.isfinite()
    assert ((ours[finite] - ref[finite]).abs() <= 2 * EPS * ref[finite].abs()).all()


@pytest.mark.parity
def test_alibi_slopes_of_the_released_head_count():
    slopes = alibi_slopes(48)
    expected = [2 ** (-k / 4) for k in range(1, 33)] + [2 ** (-m / 8) for m in range(1, 32, 2)]
    assert torch.allclose(slopes.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-6, atol=0)


def test_bias_rows_equal_the_square_table():
    square = alibi_bias(alibi_slopes(48), 0, 20, 20, torch.float32)
    assert torch.equal(alibi_bias(alibi_slopes(48), 19, 1, 20, torch.float32), square[:, 19:])
    assert torch.equal(alibi_bias(alibi_slopes(48), 8, 5, 13, torch.float32), square[:, 8:13, :13])


def test_untied_lm_head_loaded_from_file(model):
    sd = load_file(str(LM / "model.safetensors"))
    assert torch.equal(model.lm_head.weight, sd["lm_head.weight"])
    assert not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()


def _naive_forward(model: Step1ForCausalLM, ids: torch.Tensor) -> torch.Tensor:
    """The reference's attention spelled out: k/v repeat-interleaved per head, full square bias."""
    cfg = model.config
    H, G, D = cfg.num_attention_heads, cfg.num_attention_groups, cfg.head_dim
    B, T = ids.shape
    x = model.model.embed_tokens(ids)
    bias = alibi_bias(alibi_slopes(H), 0, T, T, x.dtype)
    for layer in model.model.layers:
        a = layer.self_attn
        h = layer.input_layernorm(x)
        q = a.q_proj(h).view(B, T, H, D).transpose(1, 2)
        k = a.k_proj(h).view(B, T, G, D).repeat_interleave(H // G, dim=2).transpose(1, 2)
        v = a.v_proj(h).view(B, T, G, D).repeat_interleave(H // G, dim=2).transpose(1, 2)
        att = F.softmax(q @ k.transpose(-1, -2) / math.sqrt(D) + bias, dim=-1) @ v
        x = x + a.o_proj(att.transpose(1, 2).reshape(B, T, H * D))
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    return model.lm_head(model.model.norm(x))


def _random_model(heads: int, groups: int, head_dim: int = 2, layers: int = 1, vocab: int = 64, seed: int = 0):
    cfg = Step1Config(
        hidden_size=heads * head_dim, intermediate_size=32, num_attention_heads=heads, num_attention_groups=groups,
        num_hidden_layers=layers, vocab_size=vocab, torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Step1ForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model


@pytest.mark.parity
def test_grouped_heads_at_the_released_head_count():
    model = _random_model(48, 4)  # head h reads group h // 12
    ids = torch.randint(0, 64, (1, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (model(ids) - _naive_forward(model, ids)).abs().max().item()
    assert diff <= TOL, diff


@pytest.mark.parity
def test_kv_cache_decode_matches_full_recompute(model, golden):
    seq = golden["greedy.sequences"]
    P = golden["input_ids"].shape[1]
    worst = 0.0
    with torch.no_grad():
        cache = model.new_cache(4)  # small on purpose: the cache has to grow
        step = model.prefill(seq[:, :P], cache, chunk_size=16)
        full = model(seq)
        for t in range(P, seq.shape[1]):
            worst = max(worst, (step - full[:, t - 1]).abs().max().item())
            step = model(seq[:, t : t + 1], cache, last_only=True)[:, -1]
    print("cache vs recompute max|diff|", worst)
    assert worst <= TOL


@pytest.mark.parity
def test_decode_logits_match_reference_steps(model, golden):
    seq, raw = golden["greedy.sequences"], golden["greedy.step_raw_logits_full"]
    P = golden["input_ids"].shape[1]
    worst = 0.0
    with torch.no_grad():
        cache = model.new_cache(seq.shape[1])
        step = model.prefill(seq[:, :P], cache)
        for t in range(raw.shape[0]):
            worst = max(worst, (step[0] - raw[t]).abs().max().item())
            step = model(seq[:, P + t : P + t + 1], cache, last_only=True)[:, -1]
    print("decode steps vs reference max|diff|", worst)
    assert worst <= TOL


@pytest.mark.parity
@pytest.mark.parametrize("chunk", [1, 7, 16, 40])
def test_chunked_prefill_equals_one_shot(model, golden, chunk):
    ids = golden["input_ids"]
    with torch.no_grad():
        one, many = model.new_cache(64), model.new_cache(64)
        a = model.prefill(ids, one, chunk_size=ids.shape[1])
        b = model.prefill(ids, many, chunk_size=chunk)
    assert one.length == many.length == ids.shape[1]
    assert (a - b).abs().max().item() <= TOL
    for ka, kb in zip(one.k + one.v, many.k + many.v):
        assert (ka[:, :, : ids.shape[1]] - kb[:, :, : ids.shape[1]]).abs().max().item() <= TOL


def test_sharded_index_layout_loads_the_same(tmp_path, model):
    sd = load_file(str(LM / "model.safetensors"))
    keys = sorted(sd)
    half = len(keys) // 2
    shards = {"model-00001-of-00002.safetensors": keys[:half], "model-00002-of-00002.safetensors": keys[half:]}
    for name, ks in shards.items():
        save_file({k: sd[k].to(torch.bfloat16) for k in ks}, str(tmp_path / name))
    weight_map = {k: name for name, ks in shards.items() for k in ks}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    shutil.copy(LM / "config.json", tmp_path / "config.json")
    loaded = load_step1(tmp_path, dtype=torch.float32)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, sd[k].to(torch.bfloat16).float()), k
    assert load_step1(tmp_path).lm_head.weight.dtype == torch.float32  # config's torch_dtype


def test_missing_or_unexpected_keys_are_named(tmp_path):
    sd = load_file(str(LM / "model.safetensors"))
    shutil.copy(LM / "config.json", tmp_path / "config.json")
    broken = {k: v for k, v in sd.items() if k != "lm_head.weight"}
    broken["model.extra.weight"] = torch.zeros(1)
    save_file(broken, str(tmp_path / "model.safetensors"))
    with pytest.raises(ModelFileError, match=r"lm_head\.weight.*model\.extra\.weight"):
        load_step1(tmp_path)


def test_missing_weights_truncated_file_and_bad_config(tmp_path):
    shutil.copy(LM / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelFileError, match="no LM weights"):
        load_step1(tmp_path)
    (tmp_path / "model.safetensors").write_bytes((LM / "model.safetensors").read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="truncated"):
        load_step1(tmp_path)
    cfg = json.loads((LM / "config.json").read_text())
    del cfg["num_attention_groups"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="num_attention_groups"):
        load_step1(tmp_path)
    with pytest.raises(ModelFileError, match="config.json"):
        load_step1(tmp_path / "nowhere")


def test_quantization_is_optional_and_explains_itself(monkeypatch):
    with pytest.raises(InputError, match="quantize must be"):
        load_step1(LM, quantize="int3")
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # makes 'import bitsandbytes' fail
    with pytest.raises(InputError, match="bitsandbytes package"):
        load_step1(LM, quantize="nf4")
