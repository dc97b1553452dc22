"""The llama.cpp backend: serve a GGUF file (e.g. slmkit's GGUF export) through llama-cpp-python, the fastest CPU path.

Prompts are tokenised with the model's Hugging Face tokenizer (slmkit converts it from the GGUF),
so chat templates and token counts match the transformers backend exactly.
"""

from __future__ import annotations

from typing import Iterator

from slmkit.errors import SlmError
from slmkit.generation import SamplingParams
from slmkit.serve.engine import TokenizedEngine

INSTALL_HINT = "the llama.cpp backend needs llama-cpp-python: make install (or pip install llama-cpp-python==0.3.36; it builds from source, ~4 min)"


class LlamaCppEngine(TokenizedEngine):
    """A llama.cpp context behind the server; requests run one at a time."""

    backend = "llama.cpp"

    def __init__(self, llama, tokenizer, name: str):
        super().__init__(tokenizer, name)
        self.llama = llama
        self.context_length = llama.n_ctx()

    @classmethod
    def from_spec(cls, spec: str, name: str | None = None, n_ctx: int = 2048, threads: int | None = None) -> "LlamaCppEngine":
        try:
            from llama_cpp import Llama
        except ImportError:
            raise SlmError(INSTALL_HINT) from None
        from transformers import AutoTokenizer

        from slmkit.models.loading import model_folder
        from slmkit.models.source import gguf_file

        path, source = gguf_file(spec)
        tokenizer = AutoTokenizer.from_pretrained(model_folder(source))
        llama = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, verbose=False)
        return cls(llama, tokenizer, name or spec)

    def stream(self, ids: list[int], params: SamplingParams) -> Iterator[int]:
        if params.seed is not None:
            self.llama.set_seed(params.seed)
        tokens = self.llama.generate(ids, temp=params.temperature, top_p=params.top_p, top_k=0, min_p=0.0,
                                     repeat_penalty=1.0, reset=True)
        for count, token in enumerate(tokens, start=1):
            yield int(token)
            if token in params.stop_token_ids or count >= params.max_new_tokens:
                return
