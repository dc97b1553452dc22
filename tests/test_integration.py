"""A few checks on the real embedded SmolLM2-135M (converted once from its GGUF, then cached)."""

import json
import subprocess
import sys

import pytest

import slmkit

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smollm2():
    return slmkit.load("smollm2-135m")


def test_embedded_model_has_the_expected_shape(smollm2):
    model, tokenizer = smollm2
    config = model.config
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("llama", 30, 576)
    assert (config.num_attention_heads, config.num_key_value_heads, config.vocab_size) == (9, 3, 49152)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert tokenizer.chat_template


def test_wikitext2_perplexity_on_the_first_windows(shared_data):
    cmd = [sys.executable, "-m", "slmkit.cli", "eval", "smollm2-135m", "--ppl",
           str(shared_data / "wikitext2" / "wiki.test.raw"), "--seqlen", "2048", "--max-windows", "2", "--json"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["windows"] == 2 and payload["tokens"] == 4096
    # SmolLM2-135M scores in the teens on WikiText-2; a broken load scores in the thousands.
    assert 8 < payload["perplexity"] < 40


def test_greedy_answer_is_sensible(smollm2):
    from slmkit.generation import SamplingParams, chat_prompt_ids, generate_ids, stop_ids

    model, tokenizer = smollm2
    ids = chat_prompt_ids(tokenizer, "What is the capital of France? Answer in one word.")
    out = generate_ids(model, ids, SamplingParams(max_new_tokens=12, stop_token_ids=stop_ids(tokenizer)))
    assert "Paris" in tokenizer.decode(out)
