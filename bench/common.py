"""What the benchmarks share: where the public data lives, and the peer tools' own virtual environments.

Peers that pin other library versions than slmkit run from their own venv under bench/, created on
first use with exact pins; each peer is defined once here, so every benchmark using it gets the same one.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from slmkit.data.shared import shared_data_dir  # noqa: E402

DATA = shared_data_dir()


@dataclass(frozen=True)
class PeerVenv:
    """A peer tool's virtual environment bench/.venv-NAME, with every package pinned to an exact version."""

    name: str
    packages: tuple[str, ...]  # "name[extras]==version"

    @property
    def folder(self) -> Path:
        return ROOT / "bench" / f".venv-{self.name}"

    @property
    def python(self) -> Path:
        return self.folder / "bin" / "python"

    def ready(self) -> bool:
        """True when the venv exists with exactly the pinned versions installed."""
        if not self.python.exists():
            return False
        pins = {p.split("==")[0].split("[")[0]: p.split("==")[1] for p in self.packages}
        check = f"import importlib.metadata as m; pins = {pins!r}; assert all(m.version(k) == v for k, v in pins.items())"
        return subprocess.run([str(self.python), "-c", check], capture_output=True).returncode == 0

    def ensure(self) -> Path:
        """Create (or repair) the venv once; return its python."""
        if not self.ready():
            subprocess.run([sys.executable, "-m", "venv", str(self.folder)], check=True)
            subprocess.run([str(self.python), "-m", "pip", "install", "-q", *self.packages], check=True)
        return self.python


LLMCOMPRESSOR = PeerVenv("llmcompressor", ("torch==2.13.0", "llmcompressor==0.14.0.1", "torchao==0.18.0",
                                           "transformers==5.17.0"))
LMEVAL = PeerVenv("lmeval", ("torch==2.13.0", "lm-eval[hf]==0.4.13", "transformers==5.24.0"))
