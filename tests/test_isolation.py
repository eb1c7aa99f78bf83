"""The autouse isolation fixture and the executable lookup in tests/conftest.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.conftest import UserPaths, find_executable, isolate_user_env, require_executable


def test_every_user_path_is_inside_tmp(user_paths: UserPaths, tmp_path: Path) -> None:
    assert Path.home() == user_paths.home
    assert Path("~").expanduser() == user_paths.home
    for var, path in [
        ("HOME", user_paths.home),
        ("XDG_CONFIG_HOME", user_paths.config),
        ("XDG_DATA_HOME", user_paths.data),
        ("XDG_STATE_HOME", user_paths.state),
        ("XDG_CACHE_HOME", user_paths.cache),
        ("XDG_RUNTIME_DIR", user_paths.runtime),
    ]:
        assert os.environ[var] == str(path)
        assert path.is_dir() and path.is_relative_to(tmp_path)
    assert stat.S_IMODE(user_paths.runtime.stat().st_mode) == 0o700


def test_account_variables_are_removed(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "SWITCHYARD_ROUTER_KEY", "LITELLM_MASTER_KEY"):
            mp.setenv(name, "leaked")
        mp.setenv("LITELLM_LOG", "kept")
        isolate_user_env(tmp_path / "inner", mp)
        assert not [k for k in os.environ if k.startswith(("ANTHROPIC_", "SWITCHYARD_"))]
        assert "LITELLM_MASTER_KEY" not in os.environ
        assert os.environ["LITELLM_LOG"] == "kept"
    assert "SWITCHYARD_ROUTER_KEY" not in os.environ  # and the outer isolation is back


def test_find_executable_order(tmp_path: Path) -> None:
    cached = tmp_path / "cached" / "tool"
    on_path = tmp_path / "bin" / "tool"
    for exe in (cached, on_path):
        exe.parent.mkdir(parents=True)
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    path_env = {"PATH": str(on_path.parent)}
    assert find_executable("T", cached, "tool", {**path_env, "T": str(on_path)}) == str(on_path)
    assert find_executable("T", cached, "tool", path_env) == str(cached)
    assert find_executable("T", tmp_path / "missing", "tool", path_env) == str(on_path)
    assert find_executable("T", tmp_path / "missing", "tool", {"PATH": str(tmp_path)}) is None
    with pytest.raises(pytest.fail.Exception, match="not an executable"):
        find_executable("T", cached, "tool", {"T": str(tmp_path / "nope")})


def test_missing_executable_skips_locally_but_fails_in_ci() -> None:
    assert require_executable("/x/litellm", "litellm", "V", "install it", in_ci=True) == "/x/litellm"
    with pytest.raises(pytest.skip.Exception, match="set V"):
        require_executable(None, "litellm", "V", "install it", in_ci=False)
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_executable(None, "litellm", "V", "install it", in_ci=True)
