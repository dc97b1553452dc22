"""slmkit: small language models, end to end — obtain, enhance, evaluate, deploy.

The public surface is three functions: `load` a model, `save` it as a standard folder,
and `run` a recipe. Heavy modules (torch, transformers) are imported only when used.
"""

from slmkit.errors import SlmError
from slmkit.version import __version__

__all__ = ["SlmError", "load", "save", "run", "__version__"]


def __getattr__(name: str):
    # Lazy re-exports keep `import slmkit` (and so recipe validation) free of torch.
    if name in ("load", "save", "run"):
        from slmkit import api

        return getattr(api, name)
    raise AttributeError(name)
