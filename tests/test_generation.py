import torch

from slmkit.generation import SamplingParams, generate_ids, stream_tokens
from tiny import tiny_model


def test_greedy_lean_loop_matches_hf_generate():
    model = tiny_model("llama", seed=1)
    prompt = torch.randint(1, 300, (1, 9), generator=torch.Generator().manual_seed(0))
    ours = generate_ids(model, prompt, SamplingParams(max_new_tokens=12))
    theirs = model.generate(prompt, max_new_tokens=12, min_new_tokens=12, do_sample=False)[0, 9:].tolist()
    assert ours == theirs


def test_sampling_is_reproducible_under_a_seed_and_stops_on_stop_ids():
    model = tiny_model("llama", seed=1)
    prompt = torch.randint(1, 300, (1, 5))
    params = SamplingParams(max_new_tokens=10, temperature=1.0, top_p=0.9, seed=7)
    assert generate_ids(model, prompt, params) == generate_ids(model, prompt, params)
    first = generate_ids(model, prompt, SamplingParams(max_new_tokens=10))
    stopped = list(stream_tokens(model, prompt, SamplingParams(max_new_tokens=10, stop_token_ids=(first[2],))))
    assert stopped == first[: first.index(first[2]) + 1]
