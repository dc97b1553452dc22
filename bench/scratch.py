"""From-scratch architecture findings (MobileLLM, arXiv 2402.14905) reproduced at CPU scale.

Four pairs, each at equal non-embedding parameters (tied vs untied: equal *total* parameters) and
equal training tokens, same data order and initialisation seed, trained with slmkit's trainer and
scored by perplexity on a held-out tail of each source:

    deep-and-thin vs wide-and-shallow, tied vs untied embeddings, GQA vs full MHA, SwiGLU vs GELU MLP

The arms differ from the baseline (deep, tied, GQA, SwiGLU) in one thing; the MLP width is solved
so the parameter counts match. Text: the C4 demo, the tokenized WikiText-2 validation file and
`pydoc`; a byte-level BPE of --vocab tokens is trained on the training parts only.

    python bench/scratch.py --tokens 200000            # quality table (all arms)
    python bench/scratch.py --only gelu,baseline
    python bench/scratch.py --throughput --tokens 20000  # slmkit trainer vs a plain PyTorch loop, timed
"""

from __future__ import annotations

import argparse
import math
import time

from common import DATA  # noqa: E402  (also puts the checkout on sys.path)

from slmkit.arch.build import train_bpe  # noqa: E402

SOURCES = ("c4/c4_demo.jsonl", "wikitext2/tokenized/valid.txt", "pydoc")
HELDOUT = 0.08  # the last 8% of every source's tokens are only scored


def source_documents(name: str) -> list[str]:
    from slmkit.data.corpus import load_documents

    docs = load_documents(name if name == "pydoc" else str(DATA / name))
    if name.endswith(".txt"):  # one paragraph per line: regroup into documents of ~50 lines
        lines = [line for line in "".join(docs).splitlines() if line.strip()]
        docs = ["\n".join(lines[i:i + 50]) for i in range(0, len(lines), 50)]
    return [d for d in docs if d.strip()]


def split_documents() -> tuple[list[str], list[str]]:
    """(training documents, held-out documents): the tail of every source is held out."""
    train, heldout = [], []
    for name in SOURCES:
        docs = source_documents(name)
        cut = int(len(docs) * (1 - HELDOUT))
        train += docs[:cut]
        heldout += docs[cut:]
    return train, heldout


def encode(tokenizer, documents: list[str]):
    import torch

    ids: list[int] = []
    for doc in documents:
        ids += tokenizer(doc, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return torch.tensor(ids, dtype=torch.long)


# --- the arms ------------------------------------------------------------------------------------

def shape(kind: str, args) -> dict:
    """Llama config fields of an arm before its MLP width is solved."""
    deep = dict(hidden_size=args.width, num_hidden_layers=args.layers, num_attention_heads=args.width // 32,
                num_key_value_heads=max(1, args.width // 64), tie_word_embeddings=True)
    if kind == "wide":
        w = args.width * 2
        deep.update(hidden_size=w, num_hidden_layers=max(1, args.layers // 4), num_attention_heads=w // 32,
                    num_key_value_heads=max(1, w // 64))
    if kind == "untied":
        deep.update(tie_word_embeddings=False)
    if kind == "mha":
        deep.update(num_key_value_heads=deep["num_attention_heads"])
    return deep



def build(kind: str, fields: dict, intermediate: int, vocab: int, seqlen: int, device: str = "cpu"):
    import torch
    from torch import nn
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab, intermediate_size=intermediate, max_position_embeddings=seqlen,
                         eos_token_id=0, pad_token_id=0, bos_token_id=0,  # the BPE's one special token is id 0
                         **fields)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    if kind == "gelu":
        for layer in model.model.layers:
            layer.mlp = nn.Sequential(nn.Linear(config.hidden_size, intermediate, bias=False), nn.GELU(),
                                      nn.Linear(intermediate, config.hidden_size, bias=False)).to(device)
    return model


def counts(model) -> tuple[int, int]:
    """(non-embedding parameters, total parameters; tied weights counted once)."""
    from slmkit.tune.pretrain import non_embedding_params

    unique = {id(p): p for p in model.parameters()}
    return non_embedding_params(model), sum(p.numel() for p in unique.values())


def solve_intermediate(kind: str, fields: dict, vocab: int, seqlen: int, target: int, total: bool) -> int:
    """The MLP width (a multiple of 8) whose parameter count is closest to `target` (total or non-embedding)."""
    def count(i: int) -> int:
        return counts(build(kind, fields, i, vocab, seqlen, "meta"))[1 if total else 0]

    lo, hi = 8, 64 * fields["hidden_size"]
    while hi - lo > 8:
        mid = (lo + hi) // 16 * 8
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    return min((lo, hi), key=lambda i: abs(count(i) - target))


def arms(args, vocab: int) -> dict[str, tuple[dict, int]]:
    """name -> (config fields, MLP width); the baseline's MLP is width x args.mlp_ratio (rounded to 8)."""
    base_fields = shape("baseline", args)
    base_i = int(args.width * args.mlp_ratio) // 8 * 8
    base_non_emb, base_total = counts(build("baseline", base_fields, base_i, vocab, args.seqlen, "meta"))
    out = {"baseline": (base_fields, base_i)}
    for kind in ("wide", "untied", "mha", "gelu"):
        fields = shape(kind, args)
        total = kind == "untied"
        out[kind] = (fields, solve_intermediate(kind, fields, vocab, args.seqlen, base_total if total else base_non_emb, total))
    return out


# --- training ------------------------------------------------------------------------------------

def train_options(args, steps: int):
    from slmkit.tune.options import TrainOptions

    return TrainOptions(max_steps=steps, batch_size=args.batch_size, seqlen=args.seqlen, lr=args.lr,
                        warmup_steps=max(1, steps // 20), weight_decay=0.1, precision="no", seed=args.seed)


def windows(stream, seqlen: int) -> list[dict]:
    n = len(stream) // seqlen
    return [{"input_ids": w, "labels": w} for w in stream[: n * seqlen].view(n, seqlen)]


def run_arm(kind: str, fields: dict, intermediate: int, args, vocab: int, examples, heldout) -> dict:
    import torch

    from slmkit.evaluate.perplexity import perplexity_of_ids
    from slmkit.tune.trainer import CausalLMObjective, train

    torch.manual_seed(args.seed)
    model = build(kind, fields, intermediate, vocab, args.seqlen)
    non_emb, total = counts(model)
    steps = max(1, args.tokens // (args.batch_size * args.seqlen))
    start = time.perf_counter()
    result = train(CausalLMObjective(model), examples, train_options(args, steps), show_progress=False)
    minutes = (time.perf_counter() - start) / 60
    ppl = perplexity_of_ids(model.eval(), heldout, args.seqlen, None, show_progress=False).perplexity
    return dict(arm=kind, layers=fields["num_hidden_layers"], width=fields["hidden_size"],
                heads=f"{fields['num_attention_heads']}/{fields['num_key_value_heads']}", mlp=intermediate,
                tied=fields["tie_word_embeddings"], non_emb=non_emb, total=total, tokens=result.tokens,
                minutes=minutes, loss=sum(result.losses[-10:]) / len(result.losses[-10:]), ppl=ppl)


# --- throughput ----------------------------------------------------------------------------------

def plain_loop(model, examples, options, steps: int) -> float:
    """nanoGPT-style training: AdamW, warm-up + cosine LR, clip, the trainer's batches; returns tokens/s."""
    import torch

    from slmkit.tune.trainer import collate, cosine_lr, example_indices

    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay, betas=(0.9, 0.95))
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, options.lr, options.warmup_steps, steps, options.min_lr_ratio)
        batch = collate([examples[i] for i in example_indices(step, 0, 0, 1, options.batch_size, 1, len(examples), options.seed)])
        loss = model(input_ids=batch["input_ids"], labels=batch["labels"], use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), options.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return steps * options.batch_size * options.seqlen / (time.perf_counter() - start)


def throughput(args, vocab: int, examples) -> dict:
    """The baseline arm trained the same steps by slmkit's trainer and by the plain loop, in this process."""
    import torch

    from slmkit.tune.trainer import CausalLMObjective, train

    fields, intermediate = arms(args, vocab)["baseline"]
    steps = max(2, args.tokens // (args.batch_size * args.seqlen))
    options = train_options(args, steps)
    rates = {}
    for name in ("plain", "slmkit", "plain ", "slmkit "):  # alternate twice; keep each one's best
        torch.manual_seed(args.seed)
        model = build("baseline", fields, intermediate, vocab, args.seqlen)
        if name.strip() == "plain":
            rate = plain_loop(model, examples, options, steps)
        else:
            rate = train(CausalLMObjective(model), examples, options, show_progress=False).tokens_per_s
        rates[name.strip()] = max(rates.get(name.strip(), 0.0), rate)
    return {**rates, "steps": steps, "overhead": 1 - rates["slmkit"] / rates["plain"]}


def table(rows: list[dict]) -> str:
    base = next((r["ppl"] for r in rows if r["arm"] == "baseline"), None)
    lines = ["| arm | layers x width | heads/kv | MLP | tied | non-emb params | total params | tokens | minutes "
             "| final train loss | held-out ppl | vs baseline |", "|" + "---|" * 12]
    for r in rows:
        rel = f"{100 * (r['ppl'] / base - 1):+.1f}%" if base else ""
        lines.append(f"| {r['arm']} | {r['layers']} x {r['width']} | {r['heads']} | {r['mlp']} | {r['tied']} | "
                     f"{r['non_emb'] / 1e6:.2f}M | {r['total'] / 1e6:.2f}M | {r['tokens']} | {r['minutes']:.1f} | "
                     f"{r['loss']:.3f} | {r['ppl']:.2f} | {rel} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200_000, help="training tokens per model")
    parser.add_argument("--only", help="comma-separated arms: baseline, wide, untied, mha, gelu")
    parser.add_argument("--throughput", action="store_true", help="timed: slmkit trainer vs a plain loop (run alone)")
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--width", type=int, default=192, help="baseline (deep) width; wide arm: 2x width, layers/4")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--mlp-ratio", type=float, default=2.75)
    parser.add_argument("--seqlen", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    train_docs, heldout_docs = split_documents()
    tokenizer = train_bpe(train_docs, args.vocab)
    stream, heldout = encode(tokenizer, train_docs), encode(tokenizer, heldout_docs)
    examples = windows(stream, args.seqlen)
    print(f"corpus: {len(stream)} training tokens ({len(examples)} windows of {args.seqlen}), {len(heldout)} held-out tokens, "
          f"BPE vocab {len(tokenizer)}; torch threads {torch.get_num_threads()}")
    if args.throughput:
        r = throughput(args, len(tokenizer), examples)
        print(f"throughput over {r['steps']} steps: plain loop {r['plain']:.0f} tokens/s, slmkit trainer {r['slmkit']:.0f} "
              f"tokens/s, overhead {100 * r['overhead']:.1f}% (limit 10%)")
        return
    chosen = arms(args, len(tokenizer))
    if args.only:
        unknown = set(args.only.split(",")) - set(chosen)
        if unknown:
            raise SystemExit(f"--only: unknown arm(s) {', '.join(sorted(unknown))} (valid: {', '.join(chosen)})")
        chosen = {k: v for k, v in chosen.items() if k in args.only.split(",")}
    rows = []
    for kind, (fields, intermediate) in chosen.items():
        rows.append(run_arm(kind, fields, intermediate, args, len(tokenizer), examples, heldout))
        print(table(rows).splitlines()[-1], flush=True)
    print(f"\n{table(rows)}\n\nbudget: {args.tokens} tokens per model, {sum(r['minutes'] for r in rows):.1f} minutes of training "
          f"in all; held-out {len(heldout)} tokens; ppl = exp(mean NLL) over {args.seqlen}-token windows")
    assert math.isfinite(sum(r["ppl"] for r in rows))


if __name__ == "__main__":
    main()
