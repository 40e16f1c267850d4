"""Which GLiNER2 checkpoint a ``--model`` names, as an identity that does not depend on how it was typed.

A local directory is identified by its resolved path and a content fingerprint of its files, so the
same checkpoint reached by another path (relative, absolute, a symlink, a copy) is the same model,
and a different checkpoint at the same path is not. A hub id is identified by the id and the
revision of the cached snapshot it loads from.

Nothing here loads a model. Where a hub id is neither cached nor reachable, ``resolve_checkpoint``
fails at once with one line saying how to pass a local checkpoint, instead of letting the Hub client
retry for half a minute.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kgbuild.errors import ModelLoadError

HUB_PROBE_SECONDS = 1.5
_HASH_BLOCK = 1 << 20

OFFLINE_HINT = "pass a local GLiNER2 checkpoint directory with --model PATH (or set KGBUILD_MODEL=PATH)"


@dataclass(frozen=True, slots=True)
class CheckpointIdentity:
    """A resolved checkpoint: where it loads from, and what its content is."""

    location: str  # an absolute directory, or a hub id
    fingerprint: str  # "sha256:<hex>" of a directory's files, or "<hub id>@<revision>"
    local_dir: str | None = None  # the directory the model loads from (a hub id's cached snapshot too)

    @property
    def load_from(self) -> str:
        return self.local_dir or self.location

    def with_adapter(self, adapter: str, known_hashes: dict[str, Any] | None = None) -> CheckpointIdentity:
        """This checkpoint with a LoRA adapter directory on top: another model, by the adapter's content too."""
        path = Path(adapter).expanduser()
        if not path.is_dir():
            raise ModelLoadError(f"adapter '{adapter}': no such directory (pass the directory kgbuild train --lora wrote)")
        directory = path.resolve()
        return self.with_part("adapter", fingerprint_directory(directory, known_hashes), shown=f"adapter {directory}")

    def with_part(self, name: str, value: str, shown: str | None = None) -> CheckpointIdentity:
        """This identity with something else that decides the model's output (an adapter, a decoding); ``shown``
        is how the location names it (default ``name value``)."""
        combined = hashlib.sha256(f"{self.fingerprint}\n{name}\n{value}".encode()).hexdigest()
        return CheckpointIdentity(f"{self.location} + {shown or f'{name} {value}'}", f"sha256:{combined}",
                                  self.local_dir or self.location)

    def describe(self) -> str:
        if self.fingerprint.startswith("sha256:"):
            return f"{self.location} ({self.fingerprint[:19]})"
        return self.fingerprint


def parse_model_name(name: str) -> tuple[str, str | None, str]:
    """(location, adapter directory or None, relation decoding) of a model as ``CheckpointIdentity.location``
    names it in an index's manifest ("/models/x + adapter /runs/lora + constrained relation decoding"); a name
    without a decoding part was decoded plain (constrained adds the part where the schema has relations)."""
    decoding = "plain"
    found = re.fullmatch(r"(.*) \+ (\w+) relation decoding", name)
    if found:
        name, decoding = found.group(1), found.group(2)
    location, marker, adapter = name.rpartition(" + adapter ")
    return (location, adapter, decoding) if marker else (name, None, decoding)


def looks_like_local_path(model: str) -> bool:
    """A hub id is exactly ``owner/name``; anything else (or anything that exists here) is a path."""
    return Path(model).expanduser().exists() or model.startswith((".", "/", "~")) or model.count("/") != 1


def resolve_checkpoint(model: str, known_hashes: dict[str, Any] | None = None) -> CheckpointIdentity:
    """The identity of ``model`` (a local checkpoint directory or a hub id), without loading it.

    ``known_hashes`` maps a file's absolute path to ``[size, mtime_ns, sha256]`` from an earlier
    run; files whose size and mtime are unchanged are not read again. It is updated in place.
    """
    if looks_like_local_path(model):
        directory = local_checkpoint_dir(model)
        return CheckpointIdentity(str(directory), fingerprint_directory(directory, known_hashes), str(directory))
    return _resolve_hub_id(model)


def checkpoint_location(model: str) -> str:
    """The directory ``model`` loads from (a hub id's cached or downloaded snapshot), without hashing it."""
    if looks_like_local_path(model):
        return str(local_checkpoint_dir(model))
    return _resolve_hub_id(model).load_from


def local_checkpoint_dir(model: str) -> Path:
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelLoadError(f"model '{model}': no such directory (pass a GLiNER2 checkpoint directory or a hub id)")
    return path.resolve()


def fingerprint_directory(directory: Path, known_hashes: dict[str, Any] | None = None) -> str:
    """sha256 over every file's path (relative to the directory), size and content hash."""
    known = known_hashes if known_hashes is not None else {}
    digest = hashlib.sha256()
    files = sorted(p for p in directory.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(directory).parts))
    if not files:
        raise ModelLoadError(f"model '{directory}': the directory is empty (pass a GLiNER2 checkpoint directory)")
    for file in files:
        try:
            st = file.stat()
            key = str(file)
            cached = known.get(key)
            if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
                content = cached[2]
            else:
                content = _hash_file(file)
                known[key] = [st.st_size, st.st_mtime_ns, content]
        except OSError as exc:
            raise ModelLoadError(f"model '{directory}': cannot read {file.name} ({exc.strerror or exc})") from None
        digest.update(f"{file.relative_to(directory).as_posix()}\0{st.st_size}\0{content}\n".encode())
    return "sha256:" + digest.hexdigest()


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def require_hub(what: str, hint: str) -> None:
    """Fail at once, in one line, where a model not in the local cache cannot come from the Hub either; the hub
    client would otherwise retry for half a minute before its own multi-line error."""
    if _hub_offline():
        raise ModelLoadError(f"{what} is not in the local Hugging Face cache and the Hub is switched off"
                             f" (HF_HUB_OFFLINE); {hint}")
    if not hub_reachable():
        raise ModelLoadError(f"{what} is not in the local Hugging Face cache and the Hub cannot be reached; {hint}")


def _resolve_hub_id(model: str) -> CheckpointIdentity:
    cached = cached_snapshot(model)
    if cached is not None:
        return CheckpointIdentity(model, f"{model}@{cached.name}", str(cached))
    require_hub(f"model '{model}'", OFFLINE_HINT)
    try:
        from huggingface_hub import snapshot_download

        snapshot = Path(snapshot_download(model))
    except Exception as exc:  # the hub client raises many kinds: one line, whatever it was
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelLoadError(f"model '{model}': cannot be downloaded from the Hub ({first_line}); {OFFLINE_HINT}") from None
    return CheckpointIdentity(model, f"{model}@{snapshot.name}", str(snapshot))


def cached_snapshot(model: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError), or an unusable cache
        return None


def _hub_offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout: float = HUB_PROBE_SECONDS) -> bool:
    """Can a TCP connection to the Hub's endpoint be opened within ``timeout`` seconds?

    Name resolution has no timeout of its own, so the probe runs in a daemon thread.
    """
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])
