"""The questions as objects: one list for both runs, and the LiteLLM config tied to the LiteLLM at the URL."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from installer import detect, questions
from installer.answers import AnswersError, layer
from proxy.host import procs
from proxy.host.paths import Paths

# Listens on the port given, like a LiteLLM proxy started with --config (only its command line matters).
FAKE_LITELLM = """import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1]))); s.listen()
time.sleep(120)
"""


@pytest.fixture
def fake_litellms(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[list[tuple[int, Path]]]:
    script = tmp_path / "litellm"
    script.write_text(FAKE_LITELLM)
    running: list[subprocess.Popen[bytes]] = []
    found: list[tuple[int, Path]] = []
    for name in ("first.yaml", "second.yaml"):
        cfg = tmp_path / name
        cfg.write_text("model_list: []\n")
        port = free_port()
        running.append(subprocess.Popen([sys.executable, str(script), "--config", name, "--port", str(port)],
                                        cwd=tmp_path))
        found.append((port, cfg))
    deadline = time.monotonic() + 10
    while not all(procs.listeners(p)[0] for p, _ in found) and time.monotonic() < deadline:
        time.sleep(0.05)
    yield found
    for proc in running:
        proc.kill()
        proc.wait()


def test_the_config_offered_is_the_one_of_the_litellm_at_the_url(fake_litellms: list[tuple[int, Path]]) -> None:
    (first_port, first), (second_port, second) = fake_litellms
    serving = detect.config_serving(f"http://127.0.0.1:{second_port}")
    assert serving.path == second and f"port {second_port}" in serving.reason
    # Both proxies' files are candidates; the serving one comes first, whichever started first.
    cands = detect.config_candidates(Path("/nonexistent"), Path("/nonexistent"), serving.path)
    assert cands[:1] == [second] and first in cands
    assert detect.config_serving(f"http://127.0.0.1:{first_port}").path == first


def test_a_url_without_a_litellm_says_why(free_port: Callable[[], int]) -> None:
    port = free_port()
    assert detect.config_serving(f"http://127.0.0.1:{port}").reason == f"nothing listens on port {port}"
    assert "not on this machine" in detect.config_serving("https://litellm.example.com").reason


def test_one_list_of_questions_names_every_answer() -> None:
    from installer.answers import Answers

    names = [q.name for q in questions.QUESTIONS]
    assert len(names) == len(set(names))
    # Every answer but the key's variable (a flag, not a question) is asked; the key is a secret, not an answer.
    assert set(names) - {"litellm_key"} == set(Answers.field_names()) - {"litellm_key_env"}
    for q in questions.QUESTIONS:
        assert q.prompt and q.example and all(n in names[: names.index(q.name)] for n in q.needs), q.name


def test_resolve_reports_every_problem_and_skips_what_depends_on_a_failed_answer(
    free_port: Callable[[], int]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    ans, _ = layer({"local_url": dead, "local_model": "m", "litellm_url": dead, "cloud_simple_model": "a",
                    "cloud_complex_model": "b", "litellm_restart": "none", "port": 0}, {}, {})
    with pytest.raises(AnswersError) as info:
        questions.resolve(questions.Run(Paths.from_env(), ans, environ={}))
    problems = info.value.problems
    assert any(p.startswith("local_url: no local model server answers") for p in problems)
    assert any(p.startswith("litellm_url: LiteLLM does not answer") for p in problems)
    assert any(p.startswith("port must be between 1 and 65535") for p in problems)
    # local_model, the key and the cloud models need a live server: not checked, not reported twice.
    assert not any(p.startswith(("local_model", "litellm_key", "cloud_simple_model")) for p in problems)


def test_the_proof_request_blames_the_fields_only_when_a_plain_request_passes() -> None:
    from installer.cli import prove_fix_failure
    from installer.probes import FieldsVerdict
    from proxy.host.http_probe import HttpResult

    not_found = HttpResult(404, b'{"error": {"message": "litellm.NotFoundError: no such route /v1/chat"}}')
    backend = prove_fix_failure(FieldsVerdict(not_found, None), "cloud-simple", [])
    assert "fails even a plain 1-token request to cloud-simple (HTTP 404: litellm.NotFoundError" in backend
    assert "model_name 'cloud-simple'" in backend and "not the thinking fields" in backend
    rejected = HttpResult(400, b'{"error": {"message": "Extra inputs are not permitted"}}')
    fields = prove_fix_failure(FieldsVerdict(HttpResult(200, b"{}"), rejected, ("reasoning",)), "cloud-simple", [])
    assert "a plain request to cloud-simple passes" in fields and "getting through the entry" in fields
    assert fields.endswith(": reasoning.")
    assert not FieldsVerdict(not_found, None).fields_blamed and FieldsVerdict(HttpResult(200), rejected).fields_blamed
