"""Which ggml grid each decoder Linear is rounded onto for `gguf_type`: one grid for all, or a K file type's mix.

`--gguf-type Q4_K` puts every decoder Linear on Q4_K (rows must hold whole super-blocks);
`--gguf-type Q4_K_M` (or Q4_K_S, Q5_K_S, Q5_K_M) gives each the type llama-quantize's mix gives it
in that file (attn_v/ffn_down of some layers on Q6_K, rows not a multiple of 256 on Q5_0/Q5_1/Q8_0,
rows not a multiple of 32 left float, F16 in the file), so that GGUF export writes every layer raw.
"""

from __future__ import annotations

from slmkit.anatomy import decoder_linears, linear_weight
from slmkit.compress.quant.ggml_grid import check_model_rows
from slmkit.ggml.mix import decoder_name, tensor_type
from slmkit.ggml.types import GRID_TYPES, GridType


class GridPlan:
    """The grid of each decoder Linear, by module path (or layer index and path inside the layer)."""

    def __init__(self, model, gguf_type: str) -> None:
        self.name = gguf_type
        self.single = check_model_rows(model, gguf_type) if gguf_type in GRID_TYPES else None
        self.n_layer = model.config.num_hidden_layers
        self.tied = getattr(model.config, "tie_word_embeddings", False)

    def of(self, path: str, module) -> GridType | None:
        """The grid for the Linear `module` at `path` (a model path, or "layers.<i>.<path in layer>"); None: keep float."""
        if self.single is not None:
            return self.single
        kind = tensor_type(decoder_name(path), tuple(linear_weight(module).shape), self.name, self.n_layer, self.tied, False)
        return GRID_TYPES.get(kind)

    def in_layer(self, index: int, path: str, module) -> GridType | None:
        return self.of(f"layers.{index}.{path}", module)

    def grids(self, model) -> set[GridType]:
        """Every grid the plan uses in `model`."""
        return {g for p, m in decoder_linears(model).items() if (g := self.of(p, m)) is not None}
