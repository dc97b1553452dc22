import json

import pytest
import torch
from tiny import tiny_model

from slmkit.errors import SlmError
from slmkit.tune.lora import add_lora, lora_sft, merge, qlora_available, save_adapter
from slmkit.tune.options import LoraSftOptions


def test_only_adapters_train_and_merge_matches_adapter_logits(tmp_path):
    base = tiny_model()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    peft_model = add_lora(base, rank=4)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    with torch.no_grad():  # give the adapters a non-zero update, as training would
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    ids = torch.randint(0, 320, (2, 12))
    with torch.no_grad():
        adapted = peft_model(ids).logits
    folder = save_adapter(peft_model, tmp_path / "adapter")
    assert (folder / "adapter_config.json").is_file()
    merged = merge(peft_model)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        merged_logits = merged(ids).logits
        plain_logits = tiny_model()(ids).logits
    assert torch.allclose(merged_logits, adapted, atol=1e-5)
    assert not torch.allclose(merged_logits, plain_logits, atol=1e-3)
    assert any(not torch.equal(before[k], v) for k, v in merged.state_dict().items() if k in before)


def test_lora_sft_trains_and_merges(tokenizer, tmp_path):
    data = tmp_path / "a.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Count to {i}", "input": "", "output": " ".join(str(j) for j in range(i))}) + "\n"
                            for i in range(3, 15)))
    options = LoraSftOptions(data=str(data), rank=8, max_steps=15, batch_size=2, seqlen=32, lr=1e-2, warmup_steps=1, precision="no")
    model, result = lora_sft(tiny_model(), tokenizer, options, show_progress=False)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert sum(result.losses[-3:]) / 3 < result.losses[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_qlora_on_cpu_refuses_with_one_line(tokenizer, tmp_path):
    ok, why = qlora_available()
    assert not ok and "GPU" in why
    data = tmp_path / "a.jsonl"
    data.write_text(json.dumps({"instruction": "x", "input": "", "output": "y"}) + "\n")
    with pytest.raises(SlmError, match="GPU"):
        lora_sft(tiny_model(), tokenizer, LoraSftOptions(data=str(data), qlora=True), show_progress=False)
