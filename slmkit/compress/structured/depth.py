"""Depth pruning: score every decoder layer on calibration data and remove the least important.

Scores (higher = more important):
  block_influence  1 - cos(layer input, layer output), mean over tokens (ShortGPT)
  angular          arccos(cos(h_l, h_{l+n})) / pi over n consecutive layers, mean over tokens (Gromov et al.)
  ppl              calibration perplexity increase when the layer (or block) is skipped
  last             position only: the last layers are the least important
The result is rebuilt from a config with fewer layers (per-layer config lists sliced to match),
so it saves as a standard folder that plain transformers loads.
"""

from __future__ import annotations

import copy
from collections import deque

import torch
import torch.nn.functional as F

from slmkit.anatomy import anatomy_of
from slmkit.compress.layerwise import run_layerwise
from slmkit.compress.structured.options import DepthPruneOptions
from slmkit.compress.structured.rebuild import per_layer_fields, rebuild
from slmkit.errors import SlmError


def token_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each token's hidden states: [batch, seq, hidden] x2 -> [batch * seq]."""
    return F.cosine_similarity(a.reshape(-1, a.shape[-1]).double(), b.reshape(-1, b.shape[-1]).double(), dim=-1)


class HiddenStateScorer:
    """A layer-wise engine client that changes nothing and measures each layer's input/output similarity.

    `block_influence[i]` scores layer i alone; `angular[i]` scores the block of `span` layers starting at i.
    """

    stats: set[str] = set()
    sequential = False

    def __init__(self, num_layers: int, span: int = 1) -> None:
        self.span = span
        self.block_influence = torch.zeros(num_layers, dtype=torch.float64)
        self.angular = torch.full((num_layers - span + 1,), float("nan"), dtype=torch.float64)
        self._inputs: deque[list[torch.Tensor]] = deque(maxlen=span)

    def apply(self, index, layer, stats) -> None:
        pass

    def after_layer(self, index, layer, inputs, outputs) -> None:
        self._inputs.append(inputs)
        cos = torch.cat([token_cosine(x, y) for x, y in zip(inputs, outputs)])
        self.block_influence[index] = (1 - cos).mean()
        start = index - self.span + 1
        if start >= 0:  # the block [start, index] is complete: compare its input with this output
            first = self._inputs[0]
            cos = torch.cat([token_cosine(x, y) for x, y in zip(first, outputs)])
            self.angular[start] = (torch.arccos(cos.clamp(-1, 1)) / torch.pi).mean()


def hidden_state_scores(model, calibration_ids: torch.Tensor, span: int = 1) -> HiddenStateScorer:
    """Block influence of every layer and angular distance of every block of `span` layers."""
    num_layers = len(anatomy_of(model).layer_list(model))
    scorer = HiddenStateScorer(num_layers, span)
    run_layerwise(model, scorer, calibration_ids, description="scoring layers")
    return scorer


class skip_layers:
    """Context manager: the listed decoder layers pass their input through unchanged."""

    def __init__(self, model, indices) -> None:
        self.layers = anatomy_of(model).layer_list(model)
        self.indices, self.handles = list(indices), []

    @staticmethod
    def _identity(module, args, kwargs, output):
        hidden = args[0] if args else kwargs["hidden_states"]
        return (hidden,) + tuple(output[1:]) if isinstance(output, tuple) else hidden

    def __enter__(self):
        for i in self.indices:
            self.handles.append(self.layers[i].register_forward_hook(self._identity, with_kwargs=True))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()


@torch.no_grad()
def skip_perplexity_scores(model, calibration_ids: torch.Tensor, span: int = 1) -> torch.Tensor:
    """Calibration perplexity with each block of `span` layers skipped (higher = the block matters more)."""
    from slmkit.evaluate.perplexity import perplexity_of_ids
    from slmkit.progress import progress_bar

    num_layers = len(anatomy_of(model).layer_list(model))
    ids, seqlen = calibration_ids.reshape(-1), calibration_ids.shape[1]
    scores = torch.zeros(num_layers - span + 1, dtype=torch.float64)
    with progress_bar("perplexity per layer", total=len(scores)) as advance:
        for start in range(len(scores)):
            with skip_layers(model, range(start, start + span)):
                scores[start] = perplexity_of_ids(model, ids, seqlen, show_progress=False).perplexity
            advance()
    return scores


def layers_to_remove(model, options: DepthPruneOptions, calibration_ids=None) -> list[int]:
    """The indices of the layers the options select for removal."""
    num_layers = len(anatomy_of(model).layer_list(model))
    if options.remove is not None:
        bad = [i for i in options.remove if not 0 <= i < num_layers]
        if bad or len(set(options.remove)) == num_layers:
            raise SlmError(f"cannot remove layers {options.remove}: the model has layers 0..{num_layers - 1} and must keep one")
        return sorted(set(options.remove))
    k = options.layers if options.layers is not None else round(options.ratio * num_layers)
    if k >= num_layers:
        raise SlmError(f"cannot remove {k} of {num_layers} layers; at least one must remain")
    if k == 0:
        return []
    if options.score == "last":
        return list(range(num_layers - k, num_layers))
    span = k if options.contiguous else 1
    if options.score == "ppl":
        scores = skip_perplexity_scores(model, calibration_ids[: options.ppl_samples], span)
    else:
        scorer = hidden_state_scores(model, calibration_ids, span)
        if options.score == "angular":
            scores = scorer.angular
        else:  # block influence of a block = sum over its layers
            scores = scorer.block_influence.unfold(0, span, 1).sum(-1)
    if options.contiguous:
        start = int(scores.argmin())
        return list(range(start, start + k))
    return sorted(scores.topk(k, largest=False).indices.tolist())


def remove_layers(model, indices: list[int]):
    """A new model without the given decoder layers; config and per-layer config lists follow."""
    if not indices:
        return model
    anatomy = anatomy_of(model)
    num_layers = len(anatomy.layer_list(model))
    keep = [i for i in range(num_layers) if i not in set(indices)]
    config = copy.deepcopy(model.config)
    for name in per_layer_fields(model.config):
        setattr(config, name, [getattr(model.config, name)[i] for i in keep])
    config.num_hidden_layers = len(keep)
    prefix = anatomy.layers + "."
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith(prefix):
            index, _, rest = key[len(prefix):].partition(".")
            if int(index) not in keep:
                continue
            key = f"{prefix}{keep.index(int(index))}.{rest}"
        state[key] = value
    return rebuild(model, config, state)


def depth_prune(model, tokenizer, options: DepthPruneOptions, context=None):
    """Recipe step: score the layers on calibration data (unless told which), then remove the chosen ones."""
    needs_data = options.remove is None and options.score != "last"
    calibration = context.calibration_ids() if needs_data else None
    indices = layers_to_remove(model, options, calibration)
    if context is not None:
        context.log.append(f"depth_prune: removed layers {indices}")
    return remove_layers(model, indices)
