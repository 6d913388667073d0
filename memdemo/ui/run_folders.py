"""Download bundles of finished runs: one folder per run under one base folder, the oldest removed past a cap, all
removed at shutdown, so a server that runs for weeks keeps a bounded number of files."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

DEFAULT_KEEP = 32


class RunFolders:
    """Hands out a fresh folder per run and keeps at most `keep` of them."""

    def __init__(self, keep: int = DEFAULT_KEEP, base: Path | None = None) -> None:
        self.keep = keep
        self.base = base or Path(tempfile.mkdtemp(prefix="memdemo-runs-"))
        self._lock = threading.Lock()
        self._folders: list[Path] = []

    def new(self) -> Path:
        """A new empty folder; the oldest beyond `keep` are deleted (their downloads have long been served)."""
        with self._lock:
            folder = Path(tempfile.mkdtemp(dir=self.base))
            self._folders.append(folder)
            while len(self._folders) > self.keep:
                shutil.rmtree(self._folders.pop(0), ignore_errors=True)
            return folder

    def cleanup(self) -> None:
        """Remove every run folder and the base (at shutdown)."""
        with self._lock:
            shutil.rmtree(self.base, ignore_errors=True)
            self._folders.clear()
