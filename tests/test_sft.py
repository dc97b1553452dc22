import copy
import json
import math

import pytest
import torch
from tiny import tiny_model, tiny_tokenizer

from slmkit.errors import SlmError
from slmkit.tune.options import SftOptions
from slmkit.tune.sft import encode_conversation, load_conversations, pack, sft, sft_examples

TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<eos>{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture
def chat_tokenizer():
    tok = copy.deepcopy(tiny_tokenizer())
    tok.chat_template = TEMPLATE
    return tok


def write_alpaca(path, n=8):
    records = [{"instruction": f"Name item {i} of the list.", "input": "" if i % 2 else "fruit", "output": f"Item {i} is apple number {i}."}
               for i in range(n)]
    path.write_text(json.dumps(records))
    return path


def test_alpaca_and_chat_jsonl_become_conversations(tmp_path, shared_data):
    conv = load_conversations(shared_data / "instruct" / "alpaca_en_demo.json")
    assert len(conv) == 999 and [m["role"] for m in conv[0]] == ["user", "assistant"]
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}) + "\n")
    assert load_conversations(chat)[0][1]["content"] == "hello"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x"}\n')
    with pytest.raises(SlmError, match="messages"):
        load_conversations(bad)


def test_prompt_tokens_are_masked_and_answers_learned(chat_tokenizer):
    messages = [{"role": "user", "content": "What is two plus two?"}, {"role": "assistant", "content": "Four."},
                {"role": "user", "content": "And three?"}, {"role": "assistant", "content": "Six."}]
    enc = encode_conversation(chat_tokenizer, messages)
    assert chat_tokenizer.decode(enc["input_ids"]) == chat_tokenizer.apply_chat_template(messages, tokenize=False)
    learned = enc["labels"][enc["labels"] != -100]
    assert chat_tokenizer.decode(learned) == "Four.<eos>Six.<eos>"
    assert (enc["labels"] == -100).sum() > 0


def test_without_a_template_the_plain_format_masks_the_instruction(tokenizer):
    enc = encode_conversation(tokenizer, [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi there"}])
    assert tokenizer.decode(enc["labels"][enc["labels"] != -100]).startswith("hi there")
    assert "Instruction" in tokenizer.decode(enc["input_ids"][enc["labels"] == -100])


@pytest.mark.integration
def test_smollm2_chat_template_masks_system_and_user(shared_data):
    from transformers import AutoTokenizer

    from slmkit.models.loading import model_folder
    from slmkit.models.source import resolve_model

    tok = AutoTokenizer.from_pretrained(model_folder(resolve_model("smollm2-135m")))
    enc = encode_conversation(tok, load_conversations(shared_data / "instruct" / "alpaca_en_demo.json")[0])
    answer = tok.decode(enc["labels"][enc["labels"] != -100])
    assert answer.endswith("<|im_end|>\n") and "<|im_start|>user" not in answer


def test_packing_fills_every_window_and_keeps_all_answer_tokens(chat_tokenizer, tmp_path):
    path = write_alpaca(tmp_path / "a.json", 20)
    unpacked = sft_examples(chat_tokenizer, path, 512, packing=False)
    packed = sft_examples(chat_tokenizer, path, 16, packing=True)
    assert all(len(e["input_ids"]) == 16 for e in packed)
    stream = torch.cat([e["labels"] for e in unpacked])
    windows = stream[: len(stream) // 16 * 16].view(-1, 16)
    learned = windows[:, 1:] != -100  # a window's first label is never predicted
    assert len(packed) == int(learned.any(1).sum()) and all((e["labels"][1:] != -100).any() for e in packed)
    assert sum(int((e["labels"][1:] != -100).sum()) for e in packed) == int(learned.sum())
    assert pack(unpacked, 10**6) == []


def test_windows_with_only_prompt_tokens_are_left_out_so_every_loss_is_finite(chat_tokenizer, tmp_path):
    records = [{"instruction": "Read the following list of words carefully and then answer with the last one: "
                + " ".join(f"word{j}" for j in range(30)), "output": "word29"} for _ in range(6)]
    path = tmp_path / "long-prompts.json"
    path.write_text(json.dumps(records))
    examples = sft_examples(chat_tokenizer, path, 8, packing=True)
    assert examples and all((e["labels"][1:] != -100).any() for e in examples)
    options = SftOptions(data=str(path), max_steps=len(examples), seqlen=8, warmup_steps=0, precision="no")
    _, result = sft(tiny_model(), chat_tokenizer, options, show_progress=False)
    assert all(math.isfinite(x) for x in result.losses)


def test_an_empty_instruction_file_is_a_one_line_error(chat_tokenizer, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(SlmError, match=rf"^{path}: no records$"):
        sft_examples(chat_tokenizer, path, 32)
    with pytest.raises(ValueError, match="no records"):
        SftOptions(data=str(path))


def test_sft_lowers_answer_loss(chat_tokenizer, tmp_path):
    path = write_alpaca(tmp_path / "a.json", 16)
    options = SftOptions(data=str(path), max_steps=20, batch_size=2, seqlen=48, lr=3e-3, warmup_steps=2, precision="no")
    model, result = sft(tiny_model(), chat_tokenizer, options, show_progress=False)
    assert sum(result.losses[-3:]) / 3 < result.losses[0] - 0.5


def test_a_recipe_seed_reaches_sft_and_its_log_reaches_the_manifest(tiny_folder, tmp_path, shared_data):
    import slmkit
    from slmkit.models.loading import load

    def run(seed):
        out = tmp_path / f"seed-{seed}"
        sft_options = {"data": str(shared_data / "instruct" / "alpaca_en_demo.json"), "max_steps": 2, "seqlen": 64,
                       "warmup_steps": 0, "lr": 1e-3}
        manifest = slmkit.run({"model": str(tiny_folder), "seed": seed, "steps": [{"sft": sft_options}],
                               "eval": {"perplexity": None, "profile": None}}, out)
        return manifest, load(str(out))[0].state_dict()

    (one, weights_1), (two, weights_2) = run(1), run(2)
    assert [m["steps"][0]["options"]["seed"] for m in (one, two)] == [1, 2]
    assert any(not torch.equal(weights_1[k], weights_2[k]) for k in weights_1)  # another seed, another data order
    assert one["steps"][0]["log"] == [one["steps"][0]["log"][0]] and one["steps"][0]["log"][0].startswith("sft: 2 steps")
    saved = json.loads((tmp_path / "seed-1" / "slmkit.json").read_text())
    assert saved["steps"][0]["log"] == one["steps"][0]["log"]
