import pytest
import torch
from tiny import tiny_model

from slmkit.generation import BatchDecoder, SamplingParams, generate_ids, stream_tokens


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


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "gpt2"])
def test_batch_decoding_matches_each_prompt_alone(family):
    model = tiny_model(family, seed=1)
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randint(1, 300, (n,), generator=gen).tolist() for n in (3, 11, 7, 1)]
    greedy = generate_ids(model, torch.tensor([prompts[2]]), SamplingParams(max_new_tokens=10))
    params = [SamplingParams(max_new_tokens=12), SamplingParams(max_new_tokens=4),
              SamplingParams(max_new_tokens=10, stop_token_ids=(greedy[3],)),
              SamplingParams(max_new_tokens=9, temperature=1.0, top_p=0.9, seed=3)]
    alone = [generate_ids(model, torch.tensor([p]), q) for p, q in zip(prompts, params)]
    decoder = BatchDecoder(model, prompts, params)
    together = [[] for _ in prompts]
    while decoder.live:
        for request, token in decoder.step().items():
            together[request].append(token)
    assert together == alone
    assert [len(t) for t in together] == [12, 4, greedy.index(greedy[3]) + 1, 9]


def test_dropped_request_leaves_the_batch_and_the_rest_carry_on():
    model = tiny_model("llama", seed=1)
    prompts = [[5, 6, 7], [8, 9, 10, 11, 12]]
    decoder = BatchDecoder(model, prompts, [SamplingParams(max_new_tokens=8)] * 2)
    out = [[], []]
    for _ in range(2):
        for request, token in decoder.step().items():
            out[request].append(token)
    decoder.drop(1)
    while decoder.live:
        step = decoder.step()
        assert list(step) == [0] and decoder.rows == [0]  # the batch (and its KV cache) shrank to one row
        out[0].append(step[0])
    assert out == [generate_ids(model, torch.tensor([p]), SamplingParams(max_new_tokens=n)) for p, n in zip(prompts, (8, 2))]


def test_compiled_decode_steps_belong_to_their_model(monkeypatch):
    import copy
    import gc
    import weakref

    from slmkit import generation

    class Compiled:
        def __init__(self, model, **_):
            self.model = model

    monkeypatch.setenv("SLMKIT_COMPILE", "1")
    monkeypatch.setattr(generation.torch, "compile", Compiled)
    first, second = tiny_model("llama", seed=1), tiny_model("llama", seed=2)
    step = generation.decode_step(first)
    assert step.model is first and generation.decode_step(first) is step
    assert generation.decode_step(second).model is second
    assert generation.decode_step(copy.deepcopy(first)).model is not first  # a copy compiles its own
    assert not any("decode_step" in k for k in first.state_dict())
    gone = weakref.ref(step)
    del first, step
    gc.collect()
    assert gone() is None  # nothing outlives the model, so a later model reusing its id gets a fresh step
