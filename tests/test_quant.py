import pytest
import torch
from tiny import tiny_model
from torch import nn

from slmkit.anatomy import decoder_linears
from slmkit.compress.quant.awq import fake_quant, search_scales
from slmkit.compress.quant.gptq import gptq_codes
from slmkit.compress.quant.grid import QuantSpec, check_group_size, quantize_rtn
from slmkit.errors import SlmError
from slmkit.evaluate.profile import count_parameters, tensor_bytes
from slmkit.modules.quant_linear import QuantLinear, dequantize
from slmkit.steps import StepContext, get_step


def correlated_inputs(n=2048, d=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) / d**0.5 + torch.eye(d)
    return torch.randn(n, d, generator=g) @ mix


def output_error(x, w, w_hat):
    return float((x @ (w - w_hat).T).pow(2).sum())


@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("spec", [QuantSpec(4, 32, True), QuantSpec(4, 32, False), QuantSpec(3, 0, True)])
def test_gptq_output_error_is_below_rtn(spec, act_order):
    x, w = correlated_inputs(), torch.randn(64, 128)
    rtn = dequantize(*quantize_rtn(w, spec))
    codes, scale, zero = gptq_codes(w, x.T @ x / len(x), spec, act_order=act_order, blocksize=32)
    assert codes.max() <= spec.maxq and scale.shape == (64, 128 // spec.group_of(128))
    assert output_error(x, w, dequantize(codes, scale, zero)) < 0.8 * output_error(x, w, rtn)


def test_joint_sparse_and_quantized_keeps_the_pattern_and_the_grid():
    x, w = correlated_inputs(), torch.randn(32, 128)
    spec = QuantSpec(4, 32, True)
    codes, scale, zero = gptq_codes(w, x.T @ x / len(x), spec, pruned_of_m=(2, 4), blocksize=32)
    w_hat = dequantize(codes, scale, zero)
    assert torch.all((w_hat.view(32, 32, 4) == 0).sum(-1) >= 2)
    codes50, scale50, zero50 = gptq_codes(w, x.T @ x / len(x), spec, sparsity=0.5, blocksize=32)
    assert (dequantize(codes50, scale50, zero50) == 0).float().mean() >= 0.5


def test_awq_scaling_beats_rtn_on_inputs_with_outlier_channels():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 128, generator=g)
    x[:, :4] *= 30  # a few salient channels, as in LLM activations
    w = torch.randn(64, 128, generator=g)
    spec = QuantSpec(4, 32, True)
    s = search_scales([w], x, x.abs().mean(0), spec)
    awq = fake_quant(w * s, spec) / s
    rtn = fake_quant(w, spec)
    assert output_error(x, w, awq) < 0.9 * output_error(x, w, rtn)


def random_grid(rows, cols, bits, groups, symmetric=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2**bits, (rows, cols), generator=g).to(torch.uint8)
    scale = (torch.rand(rows, groups, generator=g) + 0.1).to(torch.bfloat16).float()
    zero = torch.full((rows, groups), 2 ** (bits - 1)) if symmetric else torch.randint(0, 2**bits, (rows, groups), generator=g)
    return codes, scale, zero.to(torch.uint8)


@pytest.mark.parametrize("bits, groups, symmetric, layout", [
    (4, 4, True, "int4"), (4, 2, False, "int4"), (8, 1, True, "int8"), (3, 4, True, "codes"), (8, 4, False, "codes"),
])
def test_packed_weights_unpack_to_the_exact_integers(bits, groups, symmetric, layout):
    codes, scale, zero = random_grid(48, 256, bits, groups, symmetric)
    module = QuantLinear.from_codes(codes, scale, zero, bits)
    assert module.layout == layout
    got_codes, got_scale, got_zero = module.unpack()
    assert torch.equal(got_codes, codes) and torch.equal(got_scale, scale) and torch.equal(got_zero, zero)
    if layout == "int4":
        assert module.qweight.dtype == torch.uint8 and module.qweight.numel() == codes.numel() // 2


@pytest.mark.parametrize("bits, groups", [(8, 1), (4, 4), (4, 8)])
def test_kernels_match_dequantize_then_matmul(bits, groups):
    codes, scale, zero = random_grid(64, 256, bits, groups)
    module = QuantLinear.from_codes(codes, scale, zero, bits, bias=torch.randn(64))
    x = torch.randn(3, 5, 256)
    expected = x.to(torch.bfloat16).float() @ dequantize(codes, scale, zero).T + module.bias  # kernels read bf16 inputs
    torch.testing.assert_close(module(x), expected, rtol=2e-2, atol=2e-2 * float(expected.abs().mean()))


def test_w8a8_matches_its_float_reference():
    codes, scale, zero = random_grid(64, 256, 8, 1)
    module = QuantLinear.from_codes(codes, scale, zero, 8, act_bits=8)
    x = torch.randn(7, 256)
    expected = x @ dequantize(codes, scale, zero).T
    assert float((module(x) - expected).norm() / expected.norm()) < 0.02


def test_packed_model_counts_logical_parameters_and_fewer_bytes():
    model = tiny_model("llama")
    total, _ = count_parameters(model)
    dense_bytes = tensor_bytes(model)
    get_step("rtn").function()(model, None, get_step("rtn").options(bits=4, group_size=32), None)
    assert all(isinstance(m, QuantLinear) for m in decoder_linears(model).values())
    assert count_parameters(model)[0] == total
    assert tensor_bytes(model) < dense_bytes


def test_group_size_that_does_not_divide_is_a_one_line_error():
    with pytest.raises(SlmError, match="does not divide the input width 32.*choose one of: 16, 32"):
        check_group_size(tiny_model("llama"), 64)


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen3"])
@pytest.mark.parametrize("method, options", [
    ("rtn", {"bits": 4, "group_size": 32}),
    ("gptq", {"bits": 4, "group_size": 32, "act_order": True}),
    ("gptq", {"bits": 4, "group_size": 32, "pattern": "2:4"}),
    ("awq", {"bits": 4, "group_size": 32}),
    ("awq", {"bits": 4, "group_size": 32, "quantizer": "gptq"}),
    ("smoothquant", {}),
])
def test_every_method_packs_every_decoder_linear(family, method, options, tokenizer):
    model = tiny_model(family)
    ids = torch.randint(0, 300, (2, 16))
    with torch.no_grad():
        reference = model(ids).logits
    step = get_step(method)
    context = StepContext(tokenizer=tokenizer, nsamples=4, seqlen=32, calibration_source="pydoc")
    model = step.function()(model, tokenizer, step.options.model_validate(options), context)
    assert all(isinstance(m, QuantLinear) for m in decoder_linears(model).values())
    assert not any(isinstance(m, nn.Linear) for m in decoder_linears(model).values())
    with torch.no_grad():
        logits = model(ids).logits
    drift = float((logits - reference).norm() / reference.norm())
    assert drift < (0.5 if "pattern" in options else 0.2)


@pytest.mark.integration
def test_smollm2_int4_g64_is_a_third_of_fp32_and_still_answers():
    from slmkit.generation import SamplingParams, chat_prompt_ids, generate_ids, stop_ids
    from slmkit.models.loading import load

    model, tokenizer = load("smollm2-135m")
    dense = tensor_bytes(model)
    get_step("rtn").function()(model, tokenizer, get_step("rtn").options(bits=4, group_size=64), None)
    assert tensor_bytes(model) <= 0.35 * dense
    ids = chat_prompt_ids(tokenizer, "What is the capital of France?")
    out = generate_ids(model, ids, SamplingParams(max_new_tokens=12, stop_token_ids=stop_ids(tokenizer)))
    assert "Paris" in tokenizer.decode(out)
