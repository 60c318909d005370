"""`local deploy` runs the user's CDK app on the user's Python, not on Streamline's.

An app venv here is a real ``python -m venv`` whose site-packages reach Streamline's (for
aws-cdk-lib, through a .pth file) plus a module only that venv has, so the app imports only when
its own interpreter runs it. The app reports ``sys.prefix`` as a stack output.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import uuid
from pathlib import Path

import pytest

from streamline.local.cloud import LocalCloud
from streamline.local.deploy import DeployError, app_python, deploy

pytestmark = pytest.mark.slow

APP = """
import sys

import app_only_dependency  # in the app's venv alone
from aws_cdk import App, CfnOutput, Stack
from aws_cdk import aws_sqs as sqs

app = App()
stack = Stack(app, app.node.try_get_context("stack"))
sqs.Queue(stack, "Queue", enforce_ssl=True)
CfnOutput(stack, "Prefix", value=sys.prefix)
CfnOutput(stack, "Marker", value=app_only_dependency.MARKER)
app.synth()
"""


def _venv(where: Path, marker: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    (site,) = where.glob("lib/python*/site-packages")
    deps = where / "app-deps"
    deps.mkdir()
    (deps / "app_only_dependency.py").write_text(f"MARKER = {marker!r}\n")
    # Streamline's site-packages for aws-cdk-lib; the app-only module beside it.
    (site / "streamline.pth").write_text(f"{sysconfig.get_paths()['purelib']}\n{deps}\n")
    return where / "bin" / "python"


def _app(where: Path) -> Path:
    where.mkdir(parents=True)
    (where / "app.py").write_text(APP)
    (where / "cdk.json").write_text(json.dumps({"app": "python3 app.py"}))
    return where


def _stack() -> str:
    return f"own-python-{uuid.uuid4().hex[:6]}"


def test_the_app_dirs_own_venv_runs_the_app(cloud: LocalCloud, tmp_path: Path) -> None:
    app = _app(tmp_path / "app")
    _venv(app / ".venv", "app-venv")
    stack = _stack()
    outputs = deploy(app, cloud.endpoint_url, {"stack": stack})[stack]
    assert Path(outputs["Prefix"]) == app / ".venv"
    assert outputs["Marker"] == "app-venv"


def test_python_flag_wins_over_the_apps_venv(cloud: LocalCloud, tmp_path: Path) -> None:
    app = _app(tmp_path / "app")
    _venv(app / ".venv", "app-venv")
    chosen = _venv(tmp_path / "elsewhere", "chosen")
    stack = _stack()
    outputs = deploy(app, cloud.endpoint_url, {"stack": stack}, python=chosen)[stack]
    assert (Path(outputs["Prefix"]), outputs["Marker"]) == (tmp_path / "elsewhere", "chosen")


def test_streamlines_python_cannot_import_the_apps_dependency(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    # Before: Streamline's venv went first on PATH whatever the app had; now it is only the
    # last resort, and the failure names the Python that ran the app.
    app = _app(tmp_path / "app")
    with pytest.raises(DeployError) as failed:
        deploy(app, cloud.endpoint_url, {"stack": _stack()}, python=sys.executable)
    assert "app_only_dependency" in str(failed.value)
    assert f"app Python: {sys.executable}" in str(failed.value)


def test_interpreter_precedence(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / ".venv" / "bin").mkdir(parents=True)
    (app / ".venv" / "bin" / "python").touch()
    active = tmp_path / "active"
    (active / "bin").mkdir(parents=True)
    (active / "bin" / "python").touch()

    assert app_python(app, None, {}) == app / ".venv" / "bin" / "python"
    assert app_python(app, None, {"VIRTUAL_ENV": str(active)}) == active / "bin" / "python"
    assert app_python(tmp_path / "bare", None, {}) == Path(sys.executable)
    assert app_python(app, sys.executable, {"VIRTUAL_ENV": str(active)}) == Path(sys.executable)


@pytest.mark.parametrize("bad", ["/nonexistent/python", "."])
def test_a_bad_python_is_one_clear_error(tmp_path: Path, bad: str) -> None:
    with pytest.raises(DeployError, match="not an executable file"):
        app_python(tmp_path, bad, {})


def test_an_active_venv_without_python_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="VIRTUAL_ENV"):
        app_python(tmp_path, None, {"VIRTUAL_ENV": str(tmp_path / "gone")})
