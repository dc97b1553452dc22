"""The model worker: waiting decodes run as one batch, each request gets exactly its own tokens."""

import asyncio
import threading

from serving import one_thread  # noqa: F401 (autouse fixture)
from tiny import tiny_model, tiny_tokenizer

from slmkit.generation import SamplingParams
from slmkit.serve.engine import TransformersEngine
from slmkit.serve.worker import Worker


def engine():
    return TransformersEngine(tiny_model("llama", seed=2), tiny_tokenizer(), "tiny")


async def collect(worker, ids, params, keep=None) -> list[int]:
    out = []
    async for token in worker.decode(ids, params):
        out.append(token)
        if len(out) == keep:  # the client leaves early (as when a stop string is reached)
            break
    return out


def run_held(worker, requests) -> list[list[int]]:
    """Queue `requests` while the worker is busy, then let it go: they all wait at once."""
    async def main():
        gate = threading.Event()
        blocker = asyncio.create_task(worker.call(gate.wait))
        await asyncio.sleep(0.05)
        tasks = [asyncio.create_task(collect(worker, *r)) for r in requests]
        await asyncio.sleep(0.05)
        assert worker.waiting == len(requests)
        gate.set()
        await blocker
        return await asyncio.gather(*tasks)

    return asyncio.run(main())


def test_waiting_requests_decode_as_one_batch_with_their_own_tokens():
    eng = engine()
    prompts = [eng.text_ids(t) for t in ("def f(x):", "import os, sys, json", "class A", "x")]
    params = [SamplingParams(max_new_tokens=10), SamplingParams(max_new_tokens=3),
              SamplingParams(max_new_tokens=8, temperature=0.8, top_p=0.9, seed=11), SamplingParams(max_new_tokens=12)]
    alone = [list(eng.stream(p, q)) for p, q in zip(prompts, params)]
    worker = Worker(eng, max_batch=8)
    got = run_held(worker, [(p, q, 5 if i == 0 else None) for i, (p, q) in enumerate(zip(prompts, params))])
    assert got == [alone[0][:5], *alone[1:]]
    assert (worker.batches, worker.batched) == (1, 4)
    assert worker.waiting == 0


def test_max_batch_caps_the_batch_and_one_turns_batching_off():
    eng = engine()
    ids, params = eng.text_ids("for i in"), SamplingParams(max_new_tokens=4)
    expected = list(eng.stream(ids, params))
    capped = Worker(eng, max_batch=2)
    assert run_held(capped, [(ids, params)] * 5) == [expected] * 5
    assert (capped.batches, capped.batched) == (3, 5)
    serial = Worker(eng, max_batch=1)
    assert run_held(serial, [(ids, params)] * 3) == [expected] * 3 and serial.batches == 0
    speculative = TransformersEngine(eng.model, eng.tokenizer, "tiny", draft=tiny_model("llama", seed=3))
    assert Worker(speculative, max_batch=8).max_batch == 1
