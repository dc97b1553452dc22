"""The bundled from-scratch recipe end to end on a tiny tokenizer: init, pretrain, score the held-out tail, profile, report."""

from __future__ import annotations

from pathlib import Path

import yaml
from tiny import save_tiny

import slmkit

RECIPE = Path(slmkit.__file__).parent / "recipes" / "from_scratch.yaml"


def shrunk(model: Path) -> dict:
    """The bundled recipe on a tiny model, every size option scaled down and nothing else changed."""
    data = yaml.safe_load(RECIPE.read_text())
    data["model"] = str(model)
    init, pretrain = data["steps"][0]["init"], data["steps"][1]["pretrain"]
    init.update(layers=2, hidden=128, kv_heads=1)
    pretrain.update(max_tokens=24 * 4 * 64, batch_size=4, seqlen=64, eval_seqlen=64, heldout_tokens=1024, eval_windows=4)
    data["eval"]["perplexity"].update(seqlen=64, max_windows=4)
    data["eval"]["profile"].update(prompt_tokens=16, decode_tokens=4, repeats=1)
    return data


def test_from_scratch_recipe_trains_scores_the_heldout_tail_and_reports(tmp_path):
    from transformers import AutoModelForCausalLM

    from slmkit.runner import run

    manifest = run(shrunk(save_tiny(tmp_path / "tok")), tmp_path / "out", show_progress=False)
    assert manifest["origin"] == "scratch"
    log = " ".join(manifest["steps"][1]["log"])
    before, after = (float(x) for x in log.split("held-out ppl ")[1].split(" -> "))
    assert after < 0.5 * before  # pretraining learned something about the held-out text
    assert manifest["metrics"]["perplexity"]["windows"] == 4
    report = (tmp_path / "out" / "report.md").read_text()
    assert "vs from scratch" in report and "held-out ppl" in report and "the last 4 windows" in report
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 128
