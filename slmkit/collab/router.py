"""A RouteLLM-style router: logistic regression on the SLM's own embedding of the prompt, decided before generating.

Labels say which model was right for each prompt; the router learns P(needs the LLM | prompt)
and sends a prompt upstream when that probability reaches its threshold.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from slmkit.errors import SlmError
from slmkit.outputs import atomic_file


@torch.inference_mode()
def prompt_embedding(model, input_ids: torch.Tensor) -> torch.Tensor:
    """Mean of the last hidden layer over the prompt's tokens ([hidden] float32)."""
    hidden = model(input_ids, output_hidden_states=True, logits_to_keep=1).hidden_states[-1]
    return hidden[0].float().mean(0)


class Router(nn.Module):
    """Standardise, then one linear unit: the logit of "send upstream"."""

    def __init__(self, hidden: int, threshold: float = 0.5):
        super().__init__()
        self.register_buffer("mean", torch.zeros(hidden))
        self.register_buffer("std", torch.ones(hidden))
        self.linear = nn.Linear(hidden, 1)
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x - self.mean) / self.std).squeeze(-1)

    @torch.no_grad()
    def upstream_probability(self, embedding: torch.Tensor) -> float:
        return torch.sigmoid(self(embedding.float())).item()

    def route(self, embedding: torch.Tensor) -> str:
        return "upstream" if self.upstream_probability(embedding) >= self.threshold else "local"

    def save(self, path: str | Path, overwrite: bool = False) -> None:
        with atomic_file(path, overwrite) as tmp:
            torch.save({"hidden": self.mean.numel(), "threshold": self.threshold, "state": self.state_dict()}, tmp)

    @classmethod
    def load(cls, path: str | Path) -> "Router":
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            router = cls(blob["hidden"], blob["threshold"])
            router.load_state_dict(blob["state"])
        except FileNotFoundError:
            raise SlmError(f"router file {path} not found (make one with `slm route train`)") from None
        except Exception as err:
            raise SlmError(f"{path} is not a router file from `slm route train`: {type(err).__name__}") from None
        return router.eval()


def train_router(embeddings: torch.Tensor, needs_upstream: torch.Tensor, epochs: int = 300, lr: float = 0.05,
                 weight_decay: float = 1e-3, threshold: float = 0.5, seed: int = 0) -> Router:
    """Fit the router on [N, hidden] embeddings and 0/1 labels (1 = only the LLM got it right)."""
    if embeddings.ndim != 2 or len(embeddings) != len(needs_upstream) or len(embeddings) < 2:
        raise SlmError("router training needs at least two labelled prompts")
    torch.manual_seed(seed)
    x, y = embeddings.float(), needs_upstream.float()
    router = Router(x.shape[1], threshold)
    router.mean.copy_(x.mean(0))
    router.std.copy_(x.std(0).clamp_min(1e-4))
    positive = y.mean().clamp(0.05, 0.95)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=(1 - positive) / positive)  # balance rare labels
    optimizer = torch.optim.AdamW(router.linear.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = loss_fn(router(x), y)
        loss.backward()
        optimizer.step()
    return router.eval()
