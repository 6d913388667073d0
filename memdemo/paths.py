"""Where memdemo finds its data (assets/ and indexes/): $MEMDEMO_HOME, else the copy installed with the package,
else the repository checkout memdemo/ sits in."""

from __future__ import annotations

import os
from pathlib import Path

from memdemo.errors import MemdemoError

ENV_VAR = "MEMDEMO_HOME"
PACKAGE_DATA = Path(__file__).resolve().parent / "_data"  # filled by the wheel build (pyproject.toml, setup.py)
CHECKOUT = Path(__file__).resolve().parents[1]


def _holds_data(root: Path) -> bool:
    """Whether `root` has both assets/ and indexes/."""
    return (root / "assets").is_dir() and (root / "indexes").is_dir()


def data_root(check: bool = True) -> Path:
    """The folder holding assets/ and indexes/; with check=False, where it is expected even when it is missing."""
    home = os.environ.get(ENV_VAR, "").strip()
    candidates = [Path(home).expanduser()] if home else [PACKAGE_DATA, CHECKOUT]
    found = next((root for root in candidates if _holds_data(root)), None)
    if found is not None or not check:
        return found or candidates[-1]
    where = (
        f"{ENV_VAR}={home} lacks them"
        if home
        else f"neither {PACKAGE_DATA} (the installed package) nor {CHECKOUT} has them"
    )
    raise MemdemoError(
        f"memdemo's data (assets/ and indexes/) is missing: {where}. Set {ENV_VAR} to a folder that holds both "
        "(a clone of the memdemo repository does), or `pip install` the memdemo wheel, which ships them."
    )


def assets_dir(check: bool = True) -> Path:
    """assets/: the EmojiMem dataset, model weights and copydet descriptors."""
    return data_root(check) / "assets"


def indexes_dir(check: bool = True) -> Path:
    """indexes/: the shipped nearest-training-image reference indexes."""
    return data_root(check) / "indexes"


def benchmarks_dir() -> Path:
    """benchmarks/ of the repository checkout; only a checkout has it (neither a wheel nor MEMDEMO_HOME needs it)."""
    return CHECKOUT / "benchmarks"


def writable_folder(folder: Path) -> Path:
    """`folder`, created if needed, or a MemdemoError naming why it cannot hold output (checked before any work)."""
    if folder.exists() and not folder.is_dir():
        raise MemdemoError(f"--out {folder} is an existing file; pass a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".memdemo-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise MemdemoError(
            f"cannot write to --out {folder} ({error.strerror or error}); pass another folder"
        ) from error
    return folder


# The index EmojiMem's AMG follows by default (object level); every surface takes its default from here.
DEFAULT_GUIDE_INDEX = indexes_dir(check=False) / "emojimem-copydet-guide"
