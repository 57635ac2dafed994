"""[runner] in autoresearch.toml (issue 15): validated like every section, one line naming the
key and the line; without Ray installed, kind = "ray" says which extra to install."""

from pathlib import Path

import pytest

from autoresearch_tui.engine import config as config_module
from autoresearch_tui.engine.config import ConfigError, load_config


def write(tmp_path: Path, runner: str) -> Path:
    (tmp_path / "repo").mkdir(exist_ok=True)
    path = tmp_path / "autoresearch.toml"
    path.write_text('[experiment]\nrepo = "repo"\nfork_include = ["data/*.npy"]\n\n'
                    f'[runner]\n{runner}\n\n[[lanes]]\nname = "a"\n')
    return path


def test_the_default_runner_is_local_and_needs_no_ray(tmp_path, monkeypatch):
    monkeypatch.setattr(config_module, "ray_installed", lambda: False)
    config = load_config(write(tmp_path, ""))
    assert config.runner.kind == "local"


@pytest.mark.skipif(not config_module.ray_installed(), reason="Ray is not installed (pip install 'autoresearch-tui[ray]')")
def test_a_ray_runner_loads_with_its_resources_runtime_env_and_shipped_files(tmp_path):
    config = load_config(write(tmp_path, 'kind = "ray"\naddress = "ray://head:10001"\nresources = { TPU = 4 }\n'
                                         'runtime_env = { env_vars = { XLA_FLAGS = "--x" }, pip = ["optax"] }\n'
                                         'ship = ["data/*.npy"]'))
    assert config.runner.address == "ray://head:10001"
    assert config.runner.resources == {"TPU": 4.0}
    assert config.runner.runtime_env.to_ray() == {"env_vars": {"XLA_FLAGS": "--x"}, "pip": ["optax"]}


def test_kind_ray_without_ray_installed_names_the_extra(tmp_path, monkeypatch):
    # Ray is installed in the dev venv: this stands in for an environment without it.
    monkeypatch.setattr(config_module, "ray_installed", lambda: False)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, 'kind = "ray"\naddress = "head:6379"\nresources = { TPU = 1 }'))
    assert str(info.value).endswith("""autoresearch.toml:6: runner.kind: "ray" needs Ray in this environment: """
                                    """pip install 'autoresearch-tui[ray]'""")


@pytest.mark.parametrize("runner, expected", [
    ('kind = "ray"', ':5: runner.address: required with kind = "ray"'),
    ('kind = "ray"\naddress = "head:6379"', ':5: runner.resources: required with kind = "ray"'),
    ('kind = "slurm"', ":6: runner.kind: Input should be 'local' or 'ray'"),
    ('kind = "ray"\naddress = "head:99999"\nresources = { TPU = 1 }',
     ":7: runner.address: 'head:99999' is not \"auto\", \"host:port\" or \"ray://host:port\""),
    ('kind = "ray"\naddress = "http://head:8265"\nresources = { TPU = 1 }', ":7: runner.address: 'http://head:8265' is not"),
    ('kind = "ray"\naddress = "head:6379"\nresources = { TPU = 1.5 }',
     ":8: runner.resources: TPU = 1.5: amounts above 1 must be whole (Ray's rule)"),
    ('kind = "ray"\naddress = "head:6379"\nresources = { TPU = 0 }', ":8: runner.resources: TPU = 0.0: a positive amount"),
    ('kind = "ray"\naddress = "head:6379"\nresources = { TPU = 1 }\nruntime_env = { pipp = ["x"] }',
     ":9: runner.runtime_env.pipp: unknown key"),
    ('kind = "ray"\naddress = "head:6379"\nresources = { TPU = 1 }\nruntime_env = { env_vars = { "1X" = "a" } }',
     ":9: runner.runtime_env.env_vars: '1X' is not an environment variable name"),
    ('kind = "ray"\naddress = "head:6379"\nresources = { TPU = 1 }\nship = ["secrets/*"]',
     ":9: runner.ship[0]: 'secrets/*' is not one of experiment.fork_include"),
])
def test_a_bad_runner_is_one_line_naming_the_key_and_line(tmp_path, monkeypatch, runner, expected):
    monkeypatch.setattr(config_module, "ray_installed", lambda: True)  # the check under test is not this one
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, runner))
    message = str(info.value)
    assert expected in message, message
    assert "\n" not in message and "Traceback" not in message
