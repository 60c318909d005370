"""`streamline dashboard` in headless Chromium, after a short run of the deployed pipeline.

Given the dev stage deployed on the local cloud and a short run (valid orders, two poison
records, one recovery execution), when the page is opened in Debian's Chromium (driven by
Playwright, never a downloaded browser), then every widget of the deployed DashboardBody is
drawn in its place with data, the alarm widget lists every deployed alarm with its state, the
series use the body's statistics and periods, and the page logs no error and requests nothing
but its own server. A screenshot is written for the closing note.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from orderflow.events import EventType, OrderEvent
from playwright.sync_api import Route, sync_playwright

from streamline.cli import build_parser
from streamline.local.cloud import LocalCloud
from streamline.ops.dashboard import DashboardServer, DashboardSource, make_server, parse_body
from streamline.ops.dashboard import run as run_dashboard
from streamline.ops.dashboard.body import alarm_names
from streamline.ops.target import Target
from tests.local.cloud.deployed import eventually

pytestmark = pytest.mark.local

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium as root in a container: no sandbox, no GPU, and nothing that phones home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ORDERS = 6
POISON = [
    b'{"order_id": "dash-broken", "version": "not a number"}',
    b"not json at all",
]


def _screenshot_path() -> Path:
    folder = os.environ.get("STREAMLINE_SCREENSHOT_DIR")
    return (Path(folder) if folder else REPO / "tests" / ".artifacts") / "dashboard.png"


def _event(order: str, version: int, kind: EventType) -> bytes:
    event = OrderEvent(
        event_id=str(uuid.uuid4()),
        order_id=order,
        version=version,
        type=kind,
        occurred_at=datetime.now(UTC),
        customer_id="c-dashboard",
        amount_cents=990,
    )
    return event.model_dump_json().encode()


def _effects(cloud: LocalCloud, table: str) -> set[str]:
    pages = cloud.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    return {item["effect_id"]["S"] for page in pages for item in page["Items"]}


@pytest.fixture(scope="module")
def short_run(cloud: LocalCloud, pipeline: dict[str, str]) -> None:
    """Orders through every stage, two poison records, and one recovery execution, sampled."""
    prefix = f"dash-{uuid.uuid4().hex[:6]}"
    orders = [f"{prefix}-{n}" for n in range(ORDERS)]
    kinds = (EventType.ORDER_CREATED, EventType.ORDER_PAID, EventType.ORDER_SHIPPED)
    records = [
        {"Data": _event(order, version, kind), "PartitionKey": order}
        for order in orders
        for version, kind in enumerate(kinds, start=1)
    ]
    records += [{"Data": data, "PartitionKey": "dash-poison"} for data in POISON]
    out = cloud.client("kinesis").put_records(
        StreamName=pipeline["OrderEventsStreamName"], Records=records
    )
    assert out["FailedRecordCount"] == 0
    # Done when every order's last effect is in the sink: the fulfilment, and the notifier's
    # notification for each status (notify batches for up to 5 s, then invokes the notifier).
    effects = {f"fulfil#{o}" for o in orders} | {
        f"notify#{o}#{status}" for o in orders for status in ("CREATED", "PAID", "SHIPPED")
    }
    eventually(lambda: effects <= _effects(cloud, pipeline["EffectsTableName"]), timeout=60)
    cloud.wait_idle(timeout=60)
    cloud.metrics.sample_once()  # queue depths with the poison records in ingest-failures

    # The recovery workflow runs every 15 minutes in AWS; here it is started once, on demand.
    # It also drains the poison records, so later tests find the failure queues as they were.
    sfn = cloud.client("stepfunctions")
    execution = sfn.start_execution(
        stateMachineArn=pipeline["RecoveryStateMachineArn"],
        input=json.dumps({"trigger": "dashboard-test"}),
    )["executionArn"]
    done = eventually(
        lambda: (d := sfn.describe_execution(executionArn=execution))["status"] != "RUNNING" and d,
        timeout=60,
    )
    assert done["status"] == "SUCCEEDED", done
    cloud.wait_idle(timeout=60)
    cloud.metrics.sample_once()  # the execution's counts and the drained queues


@pytest.fixture(scope="module")
def body(cloud: LocalCloud, pipeline: dict[str, str]) -> dict[str, Any]:
    """The deployed DashboardBody, decoded: what the page must draw."""
    raw = cloud.client("cloudwatch").get_dashboard(DashboardName=pipeline["DashboardName"])
    return json.loads(raw["DashboardBody"])


@pytest.fixture(scope="module")
def server(
    cloud: LocalCloud, pipeline: dict[str, str], short_run: None
) -> Iterator[DashboardServer]:
    """The dashboard server on a free port, on the cloud's clock, refreshing every second."""
    del short_run
    target = Target(cloud.endpoint_url, None, None, "dev")
    source = DashboardSource(
        target,
        pipeline["DashboardName"],
        since_seconds=30 * 60,
        refresh_seconds=1,
        clock=cloud.clock.now,  # the local metrics carry the cloud's (possibly advanced) time
    )
    httpd = make_server(source, port=0)
    thread = threading.Thread(target=httpd.serve_forever, name="dashboard", daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _drawn(server: DashboardServer) -> tuple[list[dict[str, Any]], list[str]]:
    """Open the page, wait for its first refresh, screenshot it; its widgets and any problems."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run make setup (installs Debian's chromium)")
    origin = server.url.rstrip("/")
    problems: list[str] = []

    def only_our_server(route: Route) -> None:
        url = route.request.url
        if url.startswith(origin + "/") or url.startswith("data:"):
            route.continue_()
        else:  # anything else would be a fetch from the internet at page load
            problems.append(f"request outside the dashboard server: {url}")
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.on(
                "console", lambda m: m.type == "error" and problems.append(f"console: {m.text}")
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} {r.failure}"))
            page.on(
                "response",
                lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"),
            )
            page.route("**/*", only_our_server)
            page.goto(server.url)
            # the first load, then the first automatic refresh (1 s here)
            page.wait_for_function(
                "() => Number(document.body.dataset.loads || 0) >= 2", timeout=20_000
            )
            shot = _screenshot_path()
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            widgets = page.eval_on_selector_all(
                ".widget",
                """els => els.map(e => ({
                    type: e.dataset.type,
                    title: e.dataset.title,
                    state: e.dataset.state,
                    text: e.innerText,
                    column: e.style.gridColumn,
                    row: e.style.gridRow,
                    alarms: [...e.querySelectorAll('.alarm')].map(
                        a => ({name: a.dataset.name, state: a.dataset.state})),
                    headings: [...e.querySelectorAll('.markdown h1')].map(h => h.textContent),
                    canvases: e.querySelectorAll('canvas').length,
                }))""",
            )
        finally:
            browser.close()
    return widgets, problems


def test_every_widget_is_drawn_with_data_and_the_page_logs_no_error(
    cloud: LocalCloud, server: DashboardServer, body: dict[str, Any]
) -> None:
    widgets, problems = _drawn(server)

    expected = body["widgets"]
    assert [w["type"] for w in widgets] == [w["type"] for w in expected]
    for drawn, spec in zip(widgets, expected, strict=True):
        assert drawn["title"] == spec["properties"].get("title", "")
        assert drawn["column"] == f"{spec['x'] + 1} / span {spec['width']}"
        assert drawn["row"] == f"{spec['y'] + 1} / span {spec['height']}"
    graphs = [
        w
        for w, s in zip(widgets, expected, strict=True)
        if s["type"] == "metric" and s["properties"].get("view", "timeSeries") == "timeSeries"
    ]
    assert graphs and all(w["canvases"] == (w["state"] == "data") for w in graphs)
    text = next(w for w in widgets if w["type"] == "text")
    assert text["headings"] == ["Streamline dev"]

    alarm_widget = next(w for w in widgets if w["type"] == "alarm")
    arns = next(s for s in expected if s["type"] == "alarm")["properties"]["alarms"]
    deployed = {
        a["AlarmName"]: a["StateValue"]
        for a in cloud.client("cloudwatch").describe_alarms(AlarmNames=alarm_names(arns))[
            "MetricAlarms"
        ]
    }
    assert len(deployed) == len(arns)
    assert {a["name"]: a["state"] for a in alarm_widget["alarms"]} == deployed

    assert problems == []
    without_data = {w["title"] or w["type"]: w["text"] for w in widgets if w["state"] != "data"}
    assert not without_data, f"widgets without data after the run: {without_data}"


def test_series_use_the_bodys_statistics_and_periods(
    server: DashboardServer, body: dict[str, Any]
) -> None:
    with urllib.request.urlopen(server.url + "api/dashboard", timeout=30) as response:
        payload = json.loads(response.read())
    parsed = parse_body(body)
    for drawn, widget in zip(payload["widgets"], parsed.widgets, strict=True):
        if widget.type != "metric":
            continue
        assert [s["id"] for s in drawn["series"]] == [m.id for m in widget.metrics]
        for series, metric in zip(drawn["series"], widget.metrics, strict=True):
            assert series["period"] == metric.period
            if series["stat"] != metric.stat:
                # only an extended statistic the local CloudWatch (moto) cannot compute, and
                # then the line says so in its legend and note
                assert metric.extended and series["note"] and metric.stat in series["label"]
            assert all(
                payload["start"] - 60_000 <= t <= payload["end"] for t in series["timestamps"]
            )


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["dashboard", *argv])


def test_an_unknown_dashboard_is_a_one_line_error(
    cloud: LocalCloud, pipeline: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    del pipeline
    target = Target(cloud.endpoint_url, None, None, "dev")
    name = f"no-such-{uuid.uuid4().hex[:6]}"
    assert run_dashboard(_args("--dashboard", name, "--port", "0"), target) == 2
    err = capsys.readouterr().err
    assert err == f"streamline: dashboard {name} is not deployed here\n"


def test_a_taken_port_is_a_one_line_error(
    cloud: LocalCloud, server: DashboardServer, capsys: pytest.CaptureFixture[str]
) -> None:
    target = Target(cloud.endpoint_url, None, None, "dev")
    port = urlsplit(server.url).port
    assert run_dashboard(_args("--port", str(port)), target) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"streamline: cannot listen on 127.0.0.1:{port}") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),
        ({"Host": "evil.example"}, 403),  # DNS rebinding names the attacker's host
        ({"Origin": "http://evil.example"}, 403),  # another page's fetch
    ],
)
def test_the_page_answers_only_its_own_host_and_origin(
    server: DashboardServer, headers: dict[str, str], status: int
) -> None:
    import http.client

    port = server.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    sent = {"Host": f"127.0.0.1:{port}", **headers}
    conn.request("GET", "/index.html", headers=sent)
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == status
