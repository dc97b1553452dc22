"""Precompute the teacher's top-k logits for a set of training windows into one safetensors file,
so distillation can run without the teacher in memory (k values per position, not the vocabulary)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from slmkit.errors import SlmError
from slmkit.outputs import atomic_file
from slmkit.progress import progress_bar


@torch.no_grad()
def cache_teacher_logits(teacher, tokenizer, windows: torch.Tensor, top_k: int, path: str | Path, overwrite: bool = False,
                         batch_size: int = 1, show_progress: bool = True) -> Path:
    """Run the teacher over [N, L] `windows` and write input_ids, top-k values (fp16) and indices."""
    from slmkit.distill.objective import vocabulary_fingerprint

    device = next(teacher.parameters()).device
    values, indices = [], []
    with progress_bar("teacher logits", total=len(windows), enabled=show_progress) as advance:
        for i in range(0, len(windows), batch_size):
            logits = teacher(windows[i : i + batch_size].to(device), use_cache=False).logits.float()
            top = logits.topk(top_k, dim=-1)
            values.append(top.values.half().cpu())
            indices.append(top.indices.int().cpu())
            advance(len(logits))
    meta = {"top_k": str(top_k), "vocab": vocabulary_fingerprint(tokenizer), "vocab_size": str(teacher.config.vocab_size)}
    with atomic_file(path, overwrite) as tmp:
        save_file({"input_ids": windows.contiguous(), "values": torch.cat(values), "indices": torch.cat(indices)}, tmp,
                  metadata=meta)
    return Path(path)


def load_teacher_cache(path: str | Path) -> tuple[list[dict], dict]:
    """Examples with `teacher_values`/`teacher_indices` and the cache's metadata."""
    path = Path(path)
    if not path.is_file():
        raise SlmError(f"teacher cache not found: {path}")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            ids, values, indices = (f.get_tensor(k) for k in ("input_ids", "values", "indices"))
    except Exception as err:
        raise SlmError(f"{path} is not a teacher-logit cache (input_ids/values/indices safetensors): {err}") from err
    examples = [{"input_ids": ids[i], "labels": ids[i], "teacher_values": values[i], "teacher_indices": indices[i]}
                for i in range(len(ids))]
    return examples, meta
