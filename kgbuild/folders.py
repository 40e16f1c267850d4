"""Folders of the index that are written whole (``retrieval/``, ``communities/``): built in a sibling folder and
renamed into place, so a reader sees the old folder or the new one, never a mix."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def staging_folder(folder: Path) -> Path:
    """An empty sibling of ``folder`` (``NAME.tmp``) to write the new content into."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def replace_folder(tmp: Path, folder: Path) -> None:
    """Put the staged ``tmp`` in the place of ``folder`` (two renames; the old content goes last)."""
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
