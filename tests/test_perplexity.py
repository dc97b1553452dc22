import math

import torch
import torch.nn.functional as F
from tiny import tiny_model

from slmkit.evaluate.perplexity import perplexity, perplexity_of_ids, tokenize_corpus


def naive_perplexity(model, ids, seqlen, windows):
    """The reference loop of the GPTQ/SparseGPT/Wanda evaluation code, one window at a time."""
    nlls = []
    for i in range(windows):
        batch = ids[i * seqlen : (i + 1) * seqlen].unsqueeze(0)
        with torch.no_grad():
            logits = model(batch).logits
        loss = F.cross_entropy(logits[0, :-1].float(), batch[0, 1:])
        nlls.append(loss.float() * seqlen)
    return torch.exp(torch.stack(nlls).sum() / (windows * seqlen)).item()


def test_batched_perplexity_matches_the_naive_reference_loop(tokenizer):
    model = tiny_model("llama")
    ids = tokenize_corpus(tokenizer, "pydoc")[:64 * 7 + 13]
    result = perplexity_of_ids(model, ids, seqlen=64, batch_size=3, show_progress=False)
    assert result.windows == 7 and result.tokens == 7 * 64  # trailing partial window dropped
    reference = naive_perplexity(model, ids, 64, 7)
    assert math.isclose(result.perplexity, reference, rel_tol=1e-4)


def test_max_windows_limits_the_windows(tokenizer):
    model = tiny_model("llama")
    result = perplexity(model, tokenizer, "pydoc", seqlen=32, max_windows=3, show_progress=False)
    assert result.windows == 3 and math.isfinite(result.perplexity)
    # A random model over VOCAB tokens is close to uniform.
    assert 0.5 * model.config.vocab_size < result.perplexity < 2 * model.config.vocab_size
