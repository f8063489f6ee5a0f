"""`bot health`, the containers' health check: 0 when Postgres, Redis (and an adapter's URL) answer, 3 with the
service named when one does not, and nothing started on its own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from bot.embedded import free_port
from cli.main import app


def health(*args: str, database_url: str, redis_url: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["health", *args], env={"DATABASE_URL": database_url, "REDIS_URL": redis_url, "COLUMNS": "200"}
    )
    return result.exit_code, " ".join(result.output.split())


def test_healthy_when_postgres_and_redis_answer(database_url: str, redis_url: str) -> None:
    code, said = health(database_url=database_url, redis_url=redis_url)
    assert (code, said) == (0, "healthy")


def test_a_closed_redis_port_is_unhealthy_and_named(database_url: str) -> None:
    code, said = health(database_url=database_url, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert code == 3
    assert "Could not reach Redis (REDIS_URL)" in said


def test_a_wrong_redis_password_is_unhealthy(database_url: str, redis_url: str) -> None:
    wrong = "redis://:not-the-password@" + redis_url.rsplit("@", 1)[1]
    code, _ = health(database_url=database_url, redis_url=wrong)
    assert code != 0


def test_a_closed_postgres_port_is_unhealthy_and_named(redis_url: str) -> None:
    code, said = health(database_url=f"postgresql://u:p@127.0.0.1:{free_port()}/x", redis_url=redis_url)
    assert code == 3
    assert "Could not reach Postgres (DATABASE_URL)" in said


def test_embedded_mode_is_not_a_deployment_to_check() -> None:
    code, said = health(database_url="", redis_url="")
    assert code == 3
    assert "DATABASE_URL and REDIS_URL not set" in said


class _Adapter(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def adapter_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Adapter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_adapter_url_must_answer_200(database_url: str, redis_url: str, adapter_url: str) -> None:
    def check(url: str) -> tuple[int, str]:
        return health("--url", url, database_url=database_url, redis_url=redis_url)

    assert check(f"{adapter_url}/healthz")[0] == 0
    code, said = check(f"{adapter_url}/broken")
    assert code == 3
    assert "answered 503" in said
    code, said = check(f"http://127.0.0.1:{free_port()}/healthz")
    assert code == 3
    assert "Could not reach http://127.0.0.1:" in said
