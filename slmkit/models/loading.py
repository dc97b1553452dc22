"""Load any causal LM as (model, tokenizer): embedded, local folder, GGUF file or hub id.

A spec resolves to a path (a hub id to its downloaded snapshot, an embedded model to the GGUF
file inside its package); the layout codecs (slmkit/layouts/) then read that path, each in its
own format. Model code never runs from a folder (`trust_remote_code=False` everywhere).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from transformers.utils import logging as transformers_logging

from slmkit import layouts
from slmkit.errors import SlmError
from slmkit.failpoints import failpoint
from slmkit.layouts import gguf
from slmkit.layouts.common import first_line, torch_dtype
from slmkit.models.embedded import EMBEDDED
from slmkit.models.source import ModelSource, resolve_model

transformers_logging.disable_progress_bar()  # slmkit draws its own bars
transformers_logging.set_verbosity_error()

HUB_PROBE_SECONDS = 3.0


def load(spec: str, dtype: str = "float32"):
    """Load a model and its tokenizer, in eval mode, from any supported spec."""
    torch_dtype(dtype)
    source = resolve_model(spec)
    if source.kind == "embedded":
        loaded = gguf.load(EMBEDDED[source.ref].path(), dtype, name=source.ref)
    elif source.kind == "gguf":
        loaded = gguf.load(Path(source.ref), dtype)
    else:
        loaded = layouts.load(model_folder(source), dtype)
    failpoint("load")
    return loaded


def load_folder(folder: str | Path, dtype: str = "float32"):
    """Load from a folder (or GGUF file) in any layout slmkit knows."""
    return layouts.load(folder, dtype)


def model_folder(source: ModelSource) -> str:
    """A local path for a source: GGUF files become their cached float folder, hub ids their snapshot."""
    if source.kind == "embedded":
        return str(gguf.to_folder(EMBEDDED[source.ref].path(), name=source.ref))
    if source.kind == "gguf":
        return str(gguf.to_folder(Path(source.ref)))
    if source.kind == "hub":
        return hub_folder(source.ref)
    return source.ref


def hub_folder(repo_id: str) -> str:
    """The local snapshot of a hub model: from the cache when it is there, else downloaded —
    after one quick check that the hub answers, so an offline machine fails in seconds."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]
    try:
        return snapshot_download(repo_id, local_files_only=True, allow_patterns=patterns)
    except (LocalEntryNotFoundError, OSError):
        pass
    if constants.HF_HUB_OFFLINE or not hub_reachable(constants.ENDPOINT):
        raise SlmError(f"{repo_id} is not in the local hub cache and the model hub cannot be reached (offline?)")
    try:
        return snapshot_download(repo_id, allow_patterns=patterns)
    except RepositoryNotFoundError as err:
        raise SlmError(f"no model {repo_id} on the hub (or it needs a token): {first_line(err)}") from err
    except (HfHubHTTPError, OSError) as err:
        raise SlmError(f"could not fetch {repo_id} from the model hub: {first_line(err)}") from err


def hub_reachable(endpoint: str) -> bool:
    """Whether a TCP connection to the hub opens within a few seconds (proxies: trust the client)."""
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True
    url = urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=HUB_PROBE_SECONDS):
            return True
    except OSError:
        return False
