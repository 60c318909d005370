"""The embedded server keeps HTTP/1.1 connections open, and the stream stays in step whatever
the request carried: a body nobody reads, a chunked body, HEAD; stopping the server ends every
kept connection."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator

import boto3
import pytest

from streamline.local.server import MotoServer


@pytest.fixture
def server() -> Iterator[MotoServer]:
    moto = MotoServer(port=None)
    moto.routes["/_streamline/ping"] = lambda: {"pong": True}
    moto.start()
    try:
        yield moto
    finally:
        moto.stop()


def _connection(server: MotoServer) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("localhost", server.port, timeout=10)


def test_requests_share_one_connection_even_with_unread_or_chunked_bodies(
    server: MotoServer,
) -> None:
    conn = _connection(server)
    host = {"Host": f"localhost:{server.port}"}
    # A body on a route that never reads it: the next request line must still be found.
    conn.request("POST", "/_streamline/ping", body=b"x" * 70_000, headers=host)
    first = conn.getresponse()
    assert first.status == 200 and json.loads(first.read()) == {"pong": True}
    assert first.getheader("Connection") == "keep-alive"
    local_port = conn.sock.getsockname()[1]

    # A chunked body (no Content-Length), then HEAD (a length, no body), on the same socket.
    conn.request("POST", "/_streamline/ping", body=iter([b"abc", b"def"]), headers=host)
    assert json.loads(conn.getresponse().read()) == {"pong": True}
    conn.request("HEAD", "/_streamline/ping", headers=host)
    head = conn.getresponse()
    assert head.read() == b"" and int(head.getheader("Content-Length")) > 0
    conn.request("GET", "/_streamline/ping", headers=host)
    assert json.loads(conn.getresponse().read()) == {"pong": True}
    assert conn.sock.getsockname()[1] == local_port  # never reconnected


def test_a_client_asking_to_close_is_closed(server: MotoServer) -> None:
    conn = _connection(server)
    conn.request(
        "GET",
        "/_streamline/ping",
        headers={"Host": f"localhost:{server.port}", "Connection": "close"},
    )
    response = conn.getresponse()
    assert response.getheader("Connection") == "close"
    response.read()
    assert response.will_close


def test_aws_calls_reuse_connections_and_answer_as_before(server: MotoServer) -> None:
    sqs = boto3.client(
        "sqs",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    url = sqs.create_queue(QueueName="keepalive")["QueueUrl"]
    for n in range(20):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 10
    with pytest.raises(sqs.exceptions.EmptyBatchRequest):  # an error answer keeps it open too
        sqs.send_message_batch(QueueUrl=url, Entries=[])
    sqs.send_message(QueueUrl=url, MessageBody="after the error")
    assert server._connections is not None and len(server._connections) == 1
    assert server.connections_opened == 1


def test_stopping_the_server_ends_kept_connections(server: MotoServer) -> None:
    conn = _connection(server)
    conn.request("GET", "/_streamline/ping", headers={"Host": f"localhost:{server.port}"})
    conn.getresponse().read()
    port = server.port
    server.stop()
    sock = conn.sock
    sock.settimeout(5)
    try:
        data = sock.recv(1)
    except ConnectionResetError:
        data = b""  # closed by a reset: as good as EOF
    assert data == b""  # the server closed it, not a hang
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


@pytest.mark.parametrize(
    "head",
    [
        b"POST /_streamline/ping HTTP/1.1\r\nContent-Length: banana\r\n",
        b"POST /_streamline/ping HTTP/1.1\r\nContent-Length: -5\r\n",
        b"POST /_streamline/ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\n",
    ],
    ids=["words", "negative", "bad-chunk"],
)
def test_a_malformed_body_gets_a_400_and_the_server_serves_on(
    server: MotoServer, head: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + f"Host: localhost:{server.port}\r\n\r\n".encode() + b"zz\r\nxx")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:100]
    assert b"Connection: close" in answer and b"malformed request body" in answer
    conn = _connection(server)
    conn.request("GET", "/_streamline/ping", headers={"Host": f"localhost:{server.port}"})
    assert json.loads(conn.getresponse().read()) == {"pong": True}


def test_an_idle_connection_is_closed_quietly(
    server: MotoServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from streamline.local.keepalive import KeepAliveHandler

    monkeypatch.setattr(KeepAliveHandler, "timeout", 0.2)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            f"GET /_streamline/ping HTTP/1.1\r\nHost: localhost:{server.port}\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(4096):  # the answer, then EOF once the idle timeout passes
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ") and b"Connection: keep-alive" in answer
    assert not [r for r in caplog.records if "timed out" in r.getMessage()]
