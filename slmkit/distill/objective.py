"""The distillation objective: weighted CE + logit KD + hidden-state KD, off- or on-policy (GKD).

The teacher is kept out of the module's parameters (frozen, not saved, not synchronised by
DDP); with a teacher-logit cache the batch carries the teacher's top-k instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slmkit.distill.losses import HiddenStateKD, kd_loss, parse_layer_map
from slmkit.errors import SlmError
from slmkit.generation import SamplingParams, generate_ids


def vocabulary_fingerprint(tokenizer) -> str:
    import hashlib

    items = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(repr(items).encode()).hexdigest()[:16]


def check_same_tokenizer(student_tokenizer, teacher_tokenizer=None, teacher_fingerprint: str | None = None) -> None:
    """Logit KD compares distributions token by token: it needs one vocabulary."""
    theirs = teacher_fingerprint or vocabulary_fingerprint(teacher_tokenizer)
    if vocabulary_fingerprint(student_tokenizer) != theirs:
        raise SlmError("teacher and student tokenizers differ, so their logits cannot be compared; "
                       "use sequence-level KD instead (--mode sequence)")


class DistillObjective(nn.Module):
    """forward(batch) → ce_weight·CE + kd_weight·KD + hidden_weight·hidden-MSE for the student `model`."""

    def __init__(self, model: nn.Module, teacher: nn.Module | None, options):
        super().__init__()
        self.model = model
        self._teacher = [teacher.eval().requires_grad_(False)] if teacher is not None else []
        self.options = options
        self.hidden = None
        if options.hidden_weight > 0:
            if teacher is None:
                raise SlmError("hidden-state KD needs the teacher model (a logit cache holds no hidden states)")
            s_cfg, t_cfg = model.config, teacher.config
            layer_map = parse_layer_map(options.layer_map, s_cfg.num_hidden_layers, t_cfg.num_hidden_layers)
            self.hidden = HiddenStateKD(layer_map, s_cfg.hidden_size, t_cfg.hidden_size)

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher[0] if self._teacher else None

    def forward(self, batch: dict) -> torch.Tensor:
        opts = self.options
        ids, labels, attention = batch["input_ids"], batch["labels"], batch.get("attention_mask")
        if opts.mode == "onpolicy" and torch.rand(()) < opts.lambda_onpolicy:
            ids, labels, attention = self.student_samples(ids)
        want_hidden = self.hidden is not None
        out = self.model(input_ids=ids, attention_mask=attention, output_hidden_states=want_hidden, use_cache=False)
        logits = out.logits[:, :-1]
        targets = labels[:, 1:]
        mask = targets != -100
        loss = logits.new_zeros(())
        if opts.ce_weight > 0:
            loss = loss + opts.ce_weight * F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
                                                           ignore_index=-100)
        if "teacher_values" in batch:
            topk = (batch["teacher_values"][:, :-1], batch["teacher_indices"][:, :-1])
            kd = kd_loss(logits, teacher_topk=topk, loss=opts.loss, beta=opts.beta, temperature=opts.temperature, mask=mask)
            return loss + opts.kd_weight * kd
        if opts.kd_weight == 0 and not want_hidden:
            return loss
        teacher = self.teacher.to(ids.device)
        with torch.no_grad():
            t_out = teacher(input_ids=ids, attention_mask=attention, output_hidden_states=want_hidden, use_cache=False)
        if opts.kd_weight > 0:
            kd = kd_loss(logits.reshape(-1, logits.size(-1)), t_out.logits[:, :-1].reshape(-1, t_out.logits.size(-1)),
                         loss=opts.loss, beta=opts.beta, temperature=opts.temperature, top_k=opts.top_k, mask=mask)
            loss = loss + opts.kd_weight * kd
        if want_hidden:
            keep = attention.bool() if attention is not None else None
            loss = loss + opts.hidden_weight * self.hidden(out.hidden_states, t_out.hidden_states, keep)
        return loss

    @torch.no_grad()
    def student_samples(self, ids: torch.Tensor):
        """GKD on-policy data: the student continues each prompt by sampling; loss only on its tokens."""
        opts = self.options
        prompts = ids[:, : opts.prompt_tokens]
        was_training = self.model.training
        self.model.eval()
        rows = []
        for prompt in prompts:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())  # drawn from the (checkpointed) global RNG
            new = generate_ids(self.model, prompt[None], SamplingParams(max_new_tokens=opts.new_tokens, temperature=1.0, seed=seed))
            rows.append((prompt, torch.tensor(new, dtype=torch.long, device=ids.device)))
        self.model.train(was_training)
        length = max(len(p) + len(n) for p, n in rows)
        new_ids = ids.new_zeros(len(rows), length)
        labels = torch.full_like(new_ids, -100)
        attention = torch.zeros_like(new_ids)
        for i, (prompt, new) in enumerate(rows):
            seq = torch.cat([prompt, new])
            new_ids[i, : len(seq)] = seq
            labels[i, len(prompt): len(seq)] = new
            attention[i, : len(seq)] = 1
        return new_ids, labels, attention
