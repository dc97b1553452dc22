"""Every invalid option value of every command fails before any work: exit != 0, one line on stderr
naming the option (or file) and what is allowed, in under 2 s, with nothing written."""

import json
import os
import subprocess
import sys
import time

import pytest
from tiny import save_tiny

ENV = dict(os.environ, SLMKIT_PROGRESS="0", HF_HUB_OFFLINE="1")
ALPACA = "{shared}/instruct/alpaca_en_demo.json"

CASES = [
    # (command line, what the one line must name)
    ("eval {tiny} --ppl pydoc --seqlen 0", "--seqlen: 0 tokens is not allowed"),
    ("eval {tiny} --ppl pydoc --seqlen -5", "--seqlen: -5 tokens"),
    ("eval {tiny} --ppl pydoc --seqlen 300", "--seqlen: 300 tokens exceed the context length"),
    ("eval smollm2-135m --ppl pydoc --seqlen 100000", "--seqlen: 100000 tokens exceed the context length of smollm2-135m (8192"),
    ("eval {tiny} --ppl pydoc --seqlen 32 --max-windows 0", "'--max-windows'"),
    ("eval {tiny} --ppl pydoc --seqlen 32 --limit 0", "'--limit'"),
    ("eval {tiny} --ppl pydoc --seqlen 32 --batch-size 0", "'--batch-size'"),
    ("eval {tiny} --ppl pydoc --seqlen 32 --dtype int3", "'--dtype'"),
    ("eval {tiny} --ppl {tmp}/missing.txt", "--ppl: data file not found"),
    ("eval {tiny} --ppl {binary}", "--ppl: {binary}: not UTF-8 text"),
    ("eval {tiny} --ppl {broken}", "--ppl: {broken}: line 2: invalid JSON"),
    ("eval {tiny} --ppl pydoc --seqlen 32 --out /proc/slmkit-out", "--out: cannot write /proc/slmkit-out"),
    ("eval {tiny} --tasks nonsense", "--tasks"),
    ("eval {tiny} --trust honesty", "unknown trust evaluation 'honesty'"),
    ("generate {tiny} hi -n 0", "'--max-tokens'"),
    ("generate {tiny} hi -n -5", "'--max-tokens'"),
    ("generate {tiny} hi -n 1000", "--max-tokens: 1000 new tokens exceed the context length"),
    ("generate {tiny} hi -t -1", "'--temperature'"),
    ("generate {tiny} hi --top-p 5", "'--top-p'"),
    ("generate {tiny} hi --dtype int3", "'--dtype'"),
    ("generate {tiny} hi --draft {tmp}/nowhere", "--draft: model not found"),
    ("profile {tiny} --prompt-tokens 0", "'--prompt-tokens'"),
    ("profile {tiny} --decode-tokens 0", "'--decode-tokens'"),
    ("profile {tiny} --repeats 0", "'--repeats'"),
    ("profile {tiny} --threads 0", "'--threads'"),
    ("profile {tiny} --prompt-tokens 250 --decode-tokens 10", "--prompt-tokens + --decode-tokens: 260 tokens exceed"),
    ("profile {tiny} --prompt-tokens 8 --decode-tokens 2 --baseline {tmp}/nowhere", "--baseline: model not found"),
    ("export {tiny} --format onnx --out {tmp}/o", "--format: unknown export format 'onnx'"),
    ("export {tiny} --format gguf --type Q9 --out {tmp}/o.gguf", "--type: unknown GGUF type 'Q9'"),
    ("export {tiny} --format gguf --out /proc/o.gguf", "--out: cannot write /proc/o.gguf"),
    ("export {tiny} --format gguf --out {tmp}", "--out: {tmp} is a folder"),
    ("export {tiny} --format compressed-tensors --bits 5 --out {tmp}/o", "--bits: bits must be 2, 3, 4 or 8"),
    ("export {tiny} --format compressed-tensors --group-size -5 --out {tmp}/o", "--group-size: "),
    ("compress {tiny} --method magnitude --sparsity 2 --out {tmp}/o", "--sparsity: "),
    ("compress {tiny} --method wanda --seqlen 300 --out {tmp}/o", "--seqlen: 300 tokens exceed the context length"),
    ("compress {tiny} --method wanda --nsamples 0 --out {tmp}/o", "'--nsamples'"),
    ("compress {tiny} --method magnitude --dtype int3 --out {tmp}/o", "--dtype: "),
    ("compress {tiny} --method wanda --calib {binary} --out {tmp}/o", "--calib: {binary}: not UTF-8 text"),
    ("compress {tiny} --method magnitude --ppl pydoc --ppl-max-windows 0 --out {tmp}/o", "'--ppl-max-windows'"),
    ("compress {tiny} --method magnitude --out /proc/slmkit-out", "--out: cannot write /proc/slmkit-out"),
    ("run {recipe} --out /proc/slmkit-out", "--out: cannot write /proc/slmkit-out"),
    ("distill -s {tiny} -t {tiny} --seqlen 0 --out {tmp}/o", "--seqlen: Input should be greater than 0"),
    ("distill -s {tiny} -t {tiny} --seqlen 300 --out {tmp}/o", "--seqlen: 300 tokens exceed the context length"),
    ("distill -s {tiny} -t {tiny} --seqlen 32 --beta 2 --out {tmp}/o", "--beta: "),
    ("distill -s {tiny} -t {tiny} --seqlen 32 --lambda 2 --out {tmp}/o", "--lambda: "),
    ("distill -s {tiny} -t {tiny} --seqlen 32 --loss kl2 --out {tmp}/o", "--loss: "),
    ("distill -s {tiny} -t {tiny} --seqlen 32 --max-steps 0 --out {tmp}/o", "--max-steps: "),
    ("distill -s {tiny} -t {tmp}/nowhere --seqlen 32 --out {tmp}/o", "--teacher: model not found"),
    ("distill -s {tmp}/nowhere -t {tiny} --seqlen 32 --out {tmp}/o", "--student: model not found"),
    ("distill -s {tiny} -t {tiny} --seqlen 32 --data {binary} --out {tmp}/o", "--data: {binary}: not UTF-8 text"),
    ("distill -s {tiny} -t {tiny} --seqlen 32 --eval-data {tmp}/missing.txt --out {tmp}/o", "--eval-data: data file not found"),
    ("distill -s {tiny} --teacher-cache {tmp}/missing.safetensors --seqlen 32 --out {tmp}/o", "--teacher-cache: "),
    ("distill -s {tiny} -t {tiny} --seqlen 32 --out /proc/slmkit-out", "--out: cannot write /proc/slmkit-out"),
    ("distill -s {tiny} -t {tiny} --seqlen 32 --save-every 1 --checkpoint-dir /proc/ck --out {tmp}/o", "--checkpoint-dir: "),
    ("distill-cache -t {tiny} --top-k 0 --out {tmp}/c.safetensors", "'--top-k'"),
    ("distill-cache -t {tiny} --seqlen 300 --out {tmp}/c.safetensors", "--seqlen: 300 tokens exceed the context length"),
    ("distill-cache -t {tiny} --seqlen 32 --out /proc/c.safetensors", "--out: cannot write /proc/c.safetensors"),
    ("finetune {tiny} --data " + ALPACA + " --seqlen 0 --out {tmp}/o", "--seqlen: "),
    ("finetune {tiny} --data " + ALPACA + " --seqlen 300 --out {tmp}/o", "--seqlen: 300 tokens exceed the context length"),
    ("finetune {tiny} --data " + ALPACA + " --seqlen 32 --lr -1 --out {tmp}/o", "--lr: "),
    ("finetune {tiny} --data " + ALPACA + " --seqlen 32 --rank 4 --out {tmp}/o", "--rank: a LoRA option; add --lora"),
    ("finetune {tiny} --data " + ALPACA + " --seqlen 32 --lora --rank 0 --out {tmp}/o", "--rank: "),
    ("finetune {tiny} --data {tmp}/missing.json --seqlen 32 --out {tmp}/o", "--data: data file not found"),
    ("finetune {tiny} --data {empty} --seqlen 32 --out {tmp}/o", "--data: {empty}: no records"),
    ("finetune {tiny} --data {binary} --seqlen 32 --out {tmp}/o", "--data: {binary}: not UTF-8 text"),
    ("finetune {tiny} --data " + ALPACA + " --seqlen 32 --out /proc/slmkit-out", "--out: cannot write /proc/slmkit-out"),
    ("data filter {corpus} --min-words -5 --out {tmp}/f.jsonl", "--min-words: "),
    ("data filter {corpus} --near-threshold 0 --out {tmp}/f.jsonl", "--near-threshold: "),
    ("data filter {corpus} --min-words 100 --max-words 10 --out {tmp}/f.jsonl", "min_words 100 is above max_words 10"),
    ("data filter {corpus} --ppl-model {tiny} --out {tmp}/f.jsonl", "needs both ppl_model and max_perplexity"),
    ("data filter {binary} --out {tmp}/f.jsonl", "{binary}: not UTF-8 text"),
    ("data filter {broken} --out {tmp}/f.jsonl", "{broken}: line 2: invalid JSON"),
    ("data filter {corpus} --out /proc/f.jsonl", "--out: cannot write /proc/f.jsonl"),
    ("route calibrate {tiny} {rows}", "give exactly one of --target-accuracy and --budget"),
    ("route calibrate {tiny} {rows} --budget 2", "--budget: "),
    ("route calibrate {tiny} {rows} --budget 0.5 --metric median", "--metric: "),
    ("route calibrate {tiny} {rows} --budget 0.5 --max-tokens 0", "--max-tokens: "),
    ("route calibrate {tiny} {broken} --budget 0.5", "{broken}: line 2: invalid JSON"),
    ("route calibrate {tiny} {rows} --budget 0.5 --plot /proc/p.png", "--plot: cannot write /proc/p.png"),
    ("route train {tiny} {rows} --threshold 1.5", "--threshold: "),
    ("route train {tiny} {rows} --epochs 0", "--epochs: "),
    ("route train {tiny} {rows} --out /proc/r.pt", "--out: cannot write /proc/r.pt"),
    ("route pii-train {tiny} {rows} --test-fraction 1", "--test-fraction: "),
    ("report {tmp}/nowhere", "no slmkit.json here"),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("validation")
    (root / "binary.txt").write_bytes(bytes(range(256)) * 16)
    (root / "broken.jsonl").write_text('{"text": "one"}\n{"text": \n')
    (root / "empty.json").write_text("[]\n")
    (root / "corpus.jsonl").write_text("".join(json.dumps({"text": f"document {i}"}) + "\n" for i in range(4)))
    (root / "rows.jsonl").write_text(json.dumps({"prompt": "2+2?", "answer": "4", "upstream_correct": True}) + "\n")
    (root / "recipe.yaml").write_text("model: smollm2-135m\nsteps:\n  - magnitude: {sparsity: 0.5}\n")
    return {"tiny": save_tiny(root / "tiny"), "binary": root / "binary.txt", "broken": root / "broken.jsonl",
            "empty": root / "empty.json", "corpus": root / "corpus.jsonl", "rows": root / "rows.jsonl",
            "recipe": root / "recipe.yaml", "shared": shared_data}


@pytest.mark.parametrize("line, names", CASES, ids=[c[0].split(" --out")[0] for c in CASES])
def test_an_invalid_option_is_one_line_naming_it_before_any_work(places, tmp_path, line, names):
    values = {**places, "tmp": tmp_path}
    args = [a.format(**values) for a in line.split()]
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "slmkit.cli", *args], capture_output=True, text=True, env=ENV)
    seconds = time.perf_counter() - start
    assert result.returncode != 0, result.stdout
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert names.format(**values) in result.stderr, result.stderr
    assert seconds < 2, f"{seconds:.1f} s"
    assert list(tmp_path.iterdir()) == []  # nothing written
