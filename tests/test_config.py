from __future__ import annotations

from pathlib import Path

import pytest

from proxy.classify_prompt import DEFAULT_PROMPT
from proxy.config import ConfigError, load_config, load_prompt

GOOD = """
[listen]
host = "127.0.0.1"
port = 3456
pidfile = "/run/user/1000/switchyard/switchyard.pid"

[local]
base_url = "http://127.0.0.1:1234/v1"
model = "qwen3-coder"
max_output_tokens = 8192

[cloud]
base_url = "http://127.0.0.1:4000"
simple_model = "claude-haiku"
complex_model = "claude-sonnet"

[routing]
classify_timeout_s = 15

[log]
decisions = "/home/u/.local/state/switchyard/decisions.jsonl"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_good_config_loads_with_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.local.model == "qwen3-coder"
    assert cfg.cloud.timeout_s == 600.0
    assert cfg.cloud.first_byte_timeout_s == 120.0
    assert cfg.routing.long_context_threshold == 60000
    assert cfg.routing.classify_max_tokens == 8192
    # an integer where a number is expected is accepted as a float
    assert cfg.routing.classify_timeout_s == 15.0 and isinstance(cfg.routing.classify_timeout_s, float)
    assert cfg.source == str((tmp_path / "config.toml").resolve())


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("port = 3456", "port = 3456\nprot = 1", "unknown config key 'listen.prot'"),
        ("[routing]", "[routng]", "unknown config section 'routng'"),
        ("port = 3456", 'port = "3456"', "'listen.port' must be an integer"),
        ("max_output_tokens = 8192", "max_output_tokens = true", "'local.max_output_tokens' must be an integer"),
        ("classify_timeout_s = 15", 'classify_timeout_s = "fast"', "'routing.classify_timeout_s' must be a number"),
        ('"/home/u/.local/state', '"$HOME/.local/state', "'log.decisions' holds"),
        ('"/home/u/.local/state', '"~/.local/state', "variables and '~' are not expanded"),
        ('"/home/u/.local/state/switchyard/decisions.jsonl"', '"decisions.jsonl"', "must be an absolute path"),
        ('model = "qwen3-coder"', 'model = ""', "'local.model' is required"),
        ('base_url = "http://127.0.0.1:4000"', 'base_url = "127.0.0.1:4000"', "'cloud.base_url' must be an http"),
        ("[cloud]", '[cloud]\nkey_env = "sk-live-abc123-secret!"', "must name an environment variable"),
        ("classify_timeout_s = 15", "classify_timeout_s = 0", "must be greater than 0"),
        ("port = 3456", "port = 3456\nmax_connections = 0", "'listen.max_connections' must be greater than 0"),
        ("[log]", '[log]\nserver = "proxy.log"', "'log.server' must be an absolute path"),
        ("[log]", "[log]\nserver_backups = 0", "'log.server_backups' must be greater than 0"),
        ("[cloud]", "[cloud]\nfirst_byte_timeout_s = 0", "'cloud.first_byte_timeout_s' must be greater than 0"),
        ("[cloud]", '[cloud]\nfirst_byte_timeout_s = "2m"', "'cloud.first_byte_timeout_s' must be a number"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, GOOD.replace(old, new, 1)))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_required_key_entirely(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'cloud\.simple_model' is required"):
        load_config(write(tmp_path, GOOD.replace('simple_model = "claude-haiku"\n', "")))


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[listen\nport=1"))
    with pytest.raises(ConfigError, match=r"does not exist; run 'python -m installer'"):
        load_config(tmp_path / "nope.toml")


def test_prompt_file_overrides_builtin(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert load_prompt(cfg) == DEFAULT_PROMPT
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Say SIMPLE or COMPLEX.\n")
    cfg2 = load_config(write(tmp_path, GOOD.replace("[routing]", f'[routing]\nclassifier_prompt_file = "{prompt}"')))
    assert load_prompt(cfg2) == "Say SIMPLE or COMPLEX.\n"
    prompt.write_text("  \n")
    with pytest.raises(ConfigError, match="is empty"):
        load_prompt(cfg2)
