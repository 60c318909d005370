"""The local cloud serves its owner only: loopback Hosts, no CORS unless an origin is allowed.

A cross-origin ListTables from ``Origin: http://evil.example`` once returned the table names
(moto reflected any Origin in its CORS headers), and any Host was served (DNS rebinding).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from streamline.local.cloud import LocalCloud
from streamline.local.server import AccessPolicy, MotoServer

pytestmark = pytest.mark.local

LIST_TABLES = {
    "X-Amz-Target": "DynamoDB_20120810.ListTables",
    "Content-Type": "application/x-amz-json-1.0",
    "Authorization": "AWS4-HMAC-SHA256 Credential=test/20261207/us-east-1/dynamodb/aws4_request",
}


def _request(port: int, headers: dict[str, str], method: str = "POST") -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, "/", body=b"{}" if method == "POST" else None, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def test_sdk_requests_on_loopback_are_served(cloud: LocalCloud) -> None:
    for host in (f"localhost:{cloud.port}", f"127.0.0.1:{cloud.port}"):
        status, _, body = _request(cloud.port, {**LIST_TABLES, "Host": host})
        assert status == 200 and "TableNames" in json.loads(body)


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:{port}", "localhost:1", "localhost.evil.example:{port}"]
)
def test_a_foreign_host_is_refused(cloud: LocalCloud, host: str) -> None:
    status, _, body = _request(cloud.port, {**LIST_TABLES, "Host": host.format(port=cloud.port)})

    assert status == 403
    assert "is not this local server" in json.loads(body)["message"]


def test_a_web_page_gets_no_answer_and_no_cors(cloud: LocalCloud) -> None:
    page = {"Host": f"localhost:{cloud.port}", "Origin": "http://evil.example"}

    status, headers, body = _request(cloud.port, {**LIST_TABLES, **page})
    preflight, preflight_headers, _ = _request(
        cloud.port,
        {**page, "Access-Control-Request-Method": "POST"},
        method="OPTIONS",
    )

    assert status == 403 and b"TableNames" not in body
    assert preflight == 403
    assert not any(k.startswith("access-control-") for k in {**headers, **preflight_headers})


@pytest.fixture
def allowing_server() -> Iterator[MotoServer]:
    server = MotoServer(None, allowed_origins=frozenset({"http://localhost:8501"}))
    server.start()
    yield server
    server.stop()


def test_an_allowed_origin_gets_cors_for_itself_only(allowing_server: MotoServer) -> None:
    port = allowing_server.port
    allowed = {"Host": f"localhost:{port}", "Origin": "http://localhost:8501"}

    status, headers, _ = _request(port, {**LIST_TABLES, **allowed})
    preflight, preflight_headers, _ = _request(port, allowed, method="OPTIONS")
    other, other_headers, _ = _request(
        port, {**LIST_TABLES, "Host": f"localhost:{port}", "Origin": "http://evil.example"}
    )

    assert status == 200 and headers["access-control-allow-origin"] == "http://localhost:8501"
    assert preflight == 204 and "access-control-allow-methods" in preflight_headers
    assert other == 403 and "access-control-allow-origin" not in other_headers


@pytest.mark.parametrize(
    ("host", "served"),
    [
        ("localhost:4566", True),
        ("bucket.localhost:4566", True),  # S3's virtual-hosted buckets
        ("[::1]:4566", True),
        ("127.0.0.1:4566", True),
        ("127.0.0.1:4567", False),
        ("localhost", False),
        ("", False),
        ("evil.localhost.example:4566", False),
    ],
)
def test_the_policy_knows_a_loopback_host(host: str, served: bool) -> None:
    assert AccessPolicy(4566).host_allowed(host) is served
