import pytest
import torch
from tiny import FAMILIES, tiny_model
from transformers import DynamicCache

from slmkit.generation import SamplingParams, generate_ids
from slmkit.steps import get_step


@torch.inference_mode()
def greedy_with_growing_cache(model, ids, n):
    cache, out = DynamicCache(config=model.config), []
    logits = model(ids, past_key_values=cache, use_cache=True).logits[:, -1]
    for _ in range(n):
        token = logits.argmax(-1, keepdim=True)
        out.append(int(token))
        logits = model(token, past_key_values=cache, use_cache=True).logits[:, -1]
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_static_cache_loop_matches_a_growing_cache(family):
    model = tiny_model(family)
    ids = torch.randint(1, 300, (1, 20), generator=torch.Generator().manual_seed(1))
    assert generate_ids(model, ids, SamplingParams(max_new_tokens=12)) == greedy_with_growing_cache(model, ids, 12)


def test_packed_model_decodes_in_the_same_loop():
    model = tiny_model("llama")
    step = get_step("rtn")
    model = step.function()(model, None, step.options(bits=4, group_size=32), None)
    ids = torch.randint(1, 300, (1, 10), generator=torch.Generator().manual_seed(2))
    assert generate_ids(model, ids, SamplingParams(max_new_tokens=8)) == greedy_with_growing_cache(model, ids, 8)
