"""`install-hooks` / `uninstall-hooks`: merge, backup, skills, git exclude, exact removal."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from autoresearch_tui.cli import main as engine_cli
from autoresearch_tui.engine.setup import install_hooks
from autoresearch_tui.engine.setup.install_hooks import InstallError, install, uninstall
from autoresearch_tui.engine.core.skills import SKILL_NAMES

from tests.hooks.test_hooks import TOML, make_repo

FOREIGN = {
    "permissions": {"allow": ["Bash(npm test:*)"]},
    "hooks": {
        "Stop": [{"hooks": [{"type": "command", "command": "echo mine"}]}],
        "PostToolUse": [{"matcher": "Edit", "hooks": [{"type": "command", "command": "fmt"}]}],
        "SessionStart": [{"hooks": [{"type": "command", "command": "hello"}]}],
    },
}


def settings_file(repo: Path) -> Path:
    return repo / ".claude" / "settings.local.json"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root except .git/objects (what a user would notice changing)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith(".git/") or rel in (".git/info/exclude",):
            out[rel] = path.read_bytes()
        elif path.is_dir() and not rel.startswith(".git"):
            out[rel + "/"] = b""
    return out


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def test_fresh_install_then_uninstall_leaves_nothing(repo: Path):
    before = snapshot(repo)
    install(repo)
    data = json.loads(settings_file(repo).read_text())
    assert set(data["hooks"]) == {"UserPromptSubmit", "Stop", "PostToolUse", "PreCompact"}
    for name in SKILL_NAMES:
        assert (repo / ".claude" / "skills" / name / "SKILL.md").is_file()
    result = uninstall(repo)
    assert "uninstalled" in result.lines[-1]
    assert snapshot(repo) == before
    assert not (repo / ".claude").exists()


def test_merge_keeps_other_hooks_and_keys_and_restores_bytes(repo: Path):
    settings_file(repo).parent.mkdir()
    original = json.dumps(FOREIGN, indent=4).encode() + b"\n\n"  # odd formatting on purpose
    settings_file(repo).write_bytes(original)
    install(repo)
    backup = settings_file(repo).with_name("settings.local.json.autoresearch-backup")
    assert backup.read_bytes() == original
    data = json.loads(settings_file(repo).read_text())
    assert data["permissions"] == FOREIGN["permissions"]
    assert data["hooks"]["SessionStart"] == FOREIGN["hooks"]["SessionStart"]
    assert data["hooks"]["Stop"][0] == FOREIGN["hooks"]["Stop"][0] and len(data["hooks"]["Stop"]) == 2
    assert data["hooks"]["PostToolUse"][0]["matcher"] == "Edit"
    uninstall(repo)
    assert settings_file(repo).read_bytes() == original
    assert not backup.exists()
    assert not (repo / ".claude" / "skills").exists()


def test_uninstall_after_the_user_edited_settings_keeps_their_edit(repo: Path):
    settings_file(repo).parent.mkdir()
    settings_file(repo).write_text(json.dumps(FOREIGN))
    install(repo)
    data = json.loads(settings_file(repo).read_text())
    data["model"] = "opus"
    data["hooks"]["Stop"].append({"hooks": [{"type": "command", "command": "added later"}]})
    settings_file(repo).write_text(json.dumps(data))
    result = uninstall(repo)
    after = json.loads(settings_file(repo).read_text())
    assert after["model"] == "opus"
    assert [g["hooks"][0]["command"] for g in after["hooks"]["Stop"]] == ["echo mine", "added later"]
    assert "UserPromptSubmit" not in after["hooks"] and "PreCompact" not in after["hooks"]
    assert after["hooks"]["PostToolUse"] == FOREIGN["hooks"]["PostToolUse"]
    assert any("changed since install" in line for line in result.lines)
    assert settings_file(repo).with_name("settings.local.json.autoresearch-backup").exists()


def test_reinstall_is_idempotent(repo: Path):
    settings_file(repo).parent.mkdir()
    original = json.dumps(FOREIGN).encode()
    settings_file(repo).write_bytes(original)
    install(repo)
    first = settings_file(repo).read_bytes()
    install(repo, lane="b")
    data = json.loads(settings_file(repo).read_text())
    assert len(data["hooks"]["Stop"]) == 2 and len(data["hooks"]["UserPromptSubmit"]) == 1
    assert json.loads(first) == data
    assert json.loads((repo / ".claude/autoresearch/install.json").read_text())["lane"] == "b"
    uninstall(repo)
    assert settings_file(repo).read_bytes() == original


def test_hook_commands_use_this_python_and_existing_scripts(repo: Path):
    install(repo)
    data = json.loads(settings_file(repo).read_text())
    for event, groups in data["hooks"].items():
        (entry,) = groups[-1]["hooks"]
        argv = shlex.split(entry["command"])
        assert argv[:2] == [sys.executable, "-S"]
        assert Path(argv[2]).is_file() and Path(argv[2]).is_absolute()
        assert argv[3:] == ["--root", str(repo.resolve())] and entry["timeout"] == 30
        proc = subprocess.run(argv, input="{}", capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0 and proc.stdout == ""


def test_skills_are_rendered_for_the_lane(repo: Path):
    install(repo)
    skills = repo / ".claude" / "skills"
    for name in SKILL_NAMES:
        text = (skills / name / "SKILL.md").read_text()
        assert text.startswith(f"---\nname: {name}\n") and "{{" not in text
    loop = (skills / "autoresearch-loop" / "SKILL.md").read_text()
    assert "lane a of experiment exp" in loop and "try jit first" in loop  # config lane + focus
    assert "plain Claude Code session" in loop and str(repo.resolve()) in loop
    assert ".claude/autoresearch/lanes/a/results.tsv" in loop
    ledger = repo / ".claude/autoresearch/lanes/a/results.tsv"
    assert ledger.read_text() == "run_id\tts\tcommit\tstep_time_ms\tstatus\tdescription\n"


def test_defaults_without_config_and_explicit_config(tmp_path: Path):
    repo = make_repo(tmp_path / "plain", toml=None)
    install(repo)
    manifest = json.loads((repo / ".claude/autoresearch/install.json").read_text())
    assert manifest["lane"] == "main" and manifest["config"] is None
    assert manifest["settings"]["reinject_every_turns"] == 20
    uninstall(repo)
    config = tmp_path / "elsewhere" / "autoresearch.toml"
    config.parent.mkdir()
    config.write_text(TOML)
    install(repo, lane="zz", config_path=config)
    manifest = json.loads((repo / ".claude/autoresearch/install.json").read_text())
    assert manifest["lane"] == "zz" and manifest["settings"]["reinject_every_turns"] == 2
    assert manifest["experiment"] == "exp"


def test_git_ignores_the_guardrails_files_and_uninstall_restores_exclude(repo: Path):
    exclude = repo / ".git" / "info" / "exclude"
    before = exclude.read_bytes() if exclude.exists() else None
    install(repo)
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
                            capture_output=True, text=True, check=True).stdout
    assert status == ""  # `git add -A` in the loop would commit none of it
    uninstall(repo)
    assert (exclude.read_bytes() if exclude.exists() else None) == before


def test_repo_in_a_subfolder_of_the_git_work_tree(tmp_path: Path):
    top = make_repo(tmp_path / "top", toml=None)
    sub = top / "pkg" / "model"
    sub.mkdir(parents=True)
    install(sub)
    exclude = (top / ".git" / "info" / "exclude").read_text()
    assert "/pkg/model/.claude/autoresearch/" in exclude
    status = subprocess.run(["git", "-C", str(top), "status", "--porcelain", "--untracked-files=all"],
                            capture_output=True, text=True, check=True).stdout
    assert status == ""
    uninstall(sub)
    assert "autoresearch" not in (top / ".git" / "info" / "exclude").read_text()


def test_install_outside_git_works(tmp_path: Path):
    folder = tmp_path / "nogit"
    folder.mkdir()
    install(folder)
    assert json.loads((folder / ".claude/autoresearch/install.json").read_text())["exclude"] is None
    uninstall(folder)
    assert list(folder.iterdir()) == []


def test_invalid_settings_json_is_refused_untouched(repo: Path):
    settings_file(repo).parent.mkdir()
    settings_file(repo).write_text("{broken")
    with pytest.raises(InstallError, match="not valid JSON"):
        install(repo)
    assert settings_file(repo).read_text() == "{broken"
    assert not (repo / ".claude" / "skills").exists()


def test_a_foreign_skill_of_the_same_name_is_refused(repo: Path):
    foreign = repo / ".claude" / "skills" / "start-experiment" / "SKILL.md"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("---\nname: start-experiment\ndescription: mine\n---\nmine\n")
    with pytest.raises(InstallError, match="not ours"):
        install(repo)
    assert not settings_file(repo).exists() and foreign.read_text().endswith("mine\n")


def test_uninstall_keeps_edited_skills_and_ledger_rows(repo: Path):
    install(repo)
    skill = repo / ".claude/skills/stop-experiment/SKILL.md"
    skill.write_text(skill.read_text() + "\nmy note\n")
    ledger = repo / ".claude/autoresearch/lanes/a/results.tsv"
    with ledger.open("a") as fh:
        fh.write("0001\t1\tabc\t10\tkeep\tbaseline\n")
    result = uninstall(repo)
    assert skill.exists() and ledger.exists()
    assert any("edited since install" in line for line in result.lines)
    assert any("has runs" in line for line in result.lines)
    assert not (repo / ".claude/skills/start-experiment").exists()
    assert not (repo / ".claude/autoresearch/install.json").exists()


def test_uninstall_removes_markers(repo: Path):
    from tests.hooks.test_hooks import PROMPT, SID, hook, marker, prompt_input

    install(repo)
    hook(PROMPT, prompt_input("/start-experiment"), repo)
    assert marker(repo).exists()
    uninstall(repo)
    assert not marker(repo).exists()


def test_uninstall_with_nothing_installed(repo: Path):
    assert "nothing to uninstall" in uninstall(repo).lines[0]


def test_bad_arguments(repo: Path, tmp_path: Path):
    with pytest.raises(InstallError, match="lane names"):
        install(repo, lane="bad lane!")
    with pytest.raises(InstallError, match="no such folder"):
        install(tmp_path / "missing")
    with pytest.raises(InstallError, match="positive"):
        install(repo, marker_max_age_h=0)


def test_cli_subcommands(repo: Path, monkeypatch, capsys):
    assert engine_cli.main(["install-hooks", "--repo", str(repo), "--lane", "x",
                            "--marker-max-age-hours", "2"]) == 0
    assert "lane x" in capsys.readouterr().out
    manifest = json.loads((repo / ".claude/autoresearch/install.json").read_text())
    assert manifest["marker_max_age_s"] == 7200
    assert engine_cli.main(["uninstall-hooks", "--repo", str(repo)]) == 0
    assert "uninstalled" in capsys.readouterr().out
    assert not settings_file(repo).exists()
    settings_file(repo).parent.mkdir()
    settings_file(repo).write_text("[]")
    assert engine_cli.main(["install-hooks", "--repo", str(repo)]) == 2
    assert "expected a JSON object" in capsys.readouterr().err


def test_register_cli_alone():
    parser = argparse.ArgumentParser()
    from autoresearch_tui.cli import claude_hooks

    claude_hooks.register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["install-hooks", "--config", "x.toml"])
    assert args.repo == "." and args.lane is None and args.config == "x.toml"
    assert parser.parse_args(["uninstall-hooks"]).func.__name__ == "cmd_uninstall"


def test_marker_max_age_from_install_is_used(repo: Path):
    from tests.hooks.test_hooks import STOP, SID, hook, marker, prompt_input, stop_input, PROMPT

    install(repo, marker_max_age_h=1)
    hook(PROMPT, prompt_input("/start-experiment"), repo)
    data = json.loads(marker(repo).read_text())
    data["updated_at"] -= 3700
    marker(repo).write_text(json.dumps(data))
    env = {k: v for k, v in os.environ.items() if k != "AUTORESEARCH_MARKER_MAX_AGE_S"}
    assert hook(STOP, stop_input(), repo, env=env)[2] == ""
    assert not marker(repo).exists()


def git_status(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
                          capture_output=True, text=True, check=True).stdout


def test_uninstall_after_a_session_without_runs_leaves_git_clean(tmp_path: Path):
    from tests.hooks.test_hooks import PROMPT, STOP, hook, prompt_input, stop_input

    repo = make_repo(tmp_path / "plain", toml=None)
    install(repo)
    hook(PROMPT, prompt_input("/start-experiment"), repo)
    hook(STOP, stop_input(), repo)
    assert (repo / ".claude/autoresearch/lanes/main/events.jsonl").exists()
    result = uninstall(repo)
    assert git_status(repo) == ""
    assert not (repo / ".claude").exists(), result.lines


def test_uninstall_keeps_a_lanes_results_out_of_git_and_says_so(repo: Path):
    from tests.hooks.test_hooks import PROMPT, hook, prompt_input

    install(repo)
    hook(PROMPT, prompt_input("/start-experiment"), repo)
    ledger = repo / ".claude/autoresearch/lanes/a/results.tsv"
    with ledger.open("a") as fh:
        fh.write("0001\t1\tabc\t10\tkeep\tbaseline\n")
    result = uninstall(repo)
    assert ledger.exists() and (ledger.parent / "events.jsonl").exists()
    assert git_status(repo) == ""  # kept, and still ignored
    assert any("kept" in line and "lanes/a" in line and "ledger" in line for line in result.lines)
    assert any("git still ignores /.claude/autoresearch/" in line for line in result.lines)
    again = install(repo)  # a later install and uninstall do not pile up exclude lines
    uninstall(repo)
    exclude = (repo / ".git/info/exclude").read_text()
    assert exclude.count("/.claude/autoresearch/\n") == 1, again.lines


def test_without_a_config_the_experiment_is_named_after_the_repo(tmp_path: Path):
    repo = make_repo(tmp_path / "micrograd", toml=None)
    result = install(repo)
    summary = next(line for line in result.lines if line.startswith("installed for"))
    assert summary.startswith("installed for experiment micrograd, lane main")
    assert "no autoresearch.toml found" in summary
    assert json.loads((repo / ".claude/autoresearch/install.json").read_text())["experiment"] == "micrograd"
