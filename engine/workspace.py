"""Where everything lives on disk (docs/architecture.md, "Workspace layout on disk")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autoresearch_tui.engine.config import Config


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
        """The engine's own files (lock, log, socket), mode 0700 (see engine/protocol.py)."""
        return self.root / ".autoresearch"

    @property
    def bench_runs_dir(self) -> Path:
        """Run folders of `autoresearch-tui bench` (no lane's ledger or metrics see them)."""
        return self.experiment_dir / "_bench"  # not a lane name: those start with a letter or digit

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
