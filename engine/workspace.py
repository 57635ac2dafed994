"""Where everything lives on disk (DESIGN.md, "Workspace layout on disk")."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import Config


@dataclass(frozen=True)
class Workspace:
    config: Config

    @property
    def root(self) -> Path:
        return self.config.workspace

    @property
    def main_repo(self) -> Path:
        return self.config.repo_path

    @property
    def repo_name(self) -> str:
        return self.main_repo.name

    @property
    def experiment_dir(self) -> Path:
        return self.root / "wiki" / "experiment" / self.config.experiment.name

    @property
    def state_dir(self) -> Path:
        """Engine's own files (pid/lock, log); the socket lives elsewhere (see daemon)."""
        return self.root / ".autoresearch"

    def lane_dir(self, lane: str) -> Path:
        return self.experiment_dir / lane

    def fork_dir(self, lane: str) -> Path:
        return self.lane_dir(lane) / ".repo" / self.repo_name

    def runs_dir(self, lane: str) -> Path:
        return self.lane_dir(lane) / "runs"

    def ledger_path(self, lane: str) -> Path:
        return self.lane_dir(lane) / "results.tsv"

    def events_path(self, lane: str) -> Path:
        return self.lane_dir(lane) / "events.jsonl"

    def lane_json(self, lane: str) -> Path:
        return self.lane_dir(lane) / "lane.json"

    def retrospectives_dir(self, lane: str) -> Path:
        return self.lane_dir(lane) / "retrospectives"

    def lane_branch(self, lane: str) -> str:
        return f"autoresearch/{self.config.experiment.name}/{lane}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder + fsync + rename: never a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return default
