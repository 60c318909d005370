"""Deploy a CDK app to the local cloud with the pinned CDK CLI, unchanged, then reconcile.

``cdk bootstrap`` runs once per cloud (skipped when the CDKToolkit stack exists); then
``cdk deploy --all --require-approval never`` runs in the app's directory against the endpoint,
and the reconciler applies what moto's CloudFormation skipped.

The app command in the app's cdk.json (``"python app.py"``) runs on the app's own Python, with its
own pinned aws-cdk-lib and dependencies: ``--python PATH`` if given, else the active virtualenv
(``$VIRTUAL_ENV``), else the app directory's ``.venv`` (what ``cdk init`` creates), else the
interpreter running Streamline. ``python`` and ``python3`` on the app's PATH both name that
interpreter. Streamline's own pinned CDK CLI runs the app either way.

Example::

    outputs = deploy(Path("."), "http://localhost:4566", context={"stage": "dev"})
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from streamline.local.server import ACCOUNT_ID, REGION

__all__ = ["DeployError", "app_python", "cdk_env", "deploy", "find_cdk", "stack_outputs"]

# A whole app (several stacks, assets) deploys in well under this on the local cloud.
CDK_TIMEOUT_SECONDS = 900
BOOTSTRAP_STACK = "CDKToolkit"


class DeployError(RuntimeError):
    """The CDK CLI failed, could not be found, or the reconciler refused a template."""


def find_cdk() -> Path:
    """The pinned CDK CLI: ``$STREAMLINE_CDK``, else ``node_modules/.bin/cdk`` above us."""
    override = os.environ.get("STREAMLINE_CDK")
    if override:
        path = Path(override)
        if not path.exists():
            raise DeployError(f"STREAMLINE_CDK={override} does not exist")
        return path
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "node_modules" / ".bin" / "cdk"
        if candidate.exists():
            return candidate
    found = shutil.which("cdk")
    if found:
        return Path(found)
    raise DeployError("the CDK CLI was not found: run `make setup` (npm ci) or set STREAMLINE_CDK")


def app_python(
    app_dir: str | os.PathLike[str],
    python: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The interpreter that runs the app: ``python``, the active venv, the app's ``.venv``, or
    ours (see the module docstring). DeployError when an explicit choice is not a Python."""
    env = os.environ if environ is None else environ
    if python is not None:
        chosen = Path(python).expanduser()
        found = shutil.which(str(chosen)) if chosen.parent == Path() else None
        chosen = Path(found) if found else chosen
        if not (chosen.is_file() and os.access(chosen, os.X_OK)):
            raise DeployError(f"--python {python}: not an executable file")
        return chosen.absolute()
    for venv, why in ((env.get("VIRTUAL_ENV"), "$VIRTUAL_ENV"), (Path(app_dir) / ".venv", "")):
        if not venv:
            continue
        candidate = Path(venv) / "bin" / "python"
        if candidate.exists():
            return candidate.absolute()
        if why:
            raise DeployError(f"{why}={venv} has no bin/python: deactivate it or pass --python")
    return Path(sys.executable)


def cdk_env(
    endpoint_url: str, base: Mapping[str, str] | None = None, *, shims: Path | None = None
) -> dict[str, str]:
    """The environment that points the CDK CLI (and the app it runs) at the local cloud.

    ``shims`` is a directory whose ``python``/``python3`` (see ``_python_shims``) go first on
    PATH so that the app command finds the app's interpreter.
    """
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "CDK_DEFAULT_ACCOUNT": ACCOUNT_ID,
            "CDK_DEFAULT_REGION": REGION,
            # No update checks or notices: the machine may be offline.
            "CDK_DISABLE_VERSION_CHECK": "1",
            "CDK_DISABLE_CLI_TELEMETRY": "1",
            # botocore would otherwise try account-based DynamoDB endpoints when it knows an
            # account id; the local endpoint is one host for every service.
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        }
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        env.pop(name, None)  # a real profile or session must never leak into local deploys
    if shims is not None:
        env["PATH"] = os.pathsep.join([str(shims), env.get("PATH", "")])
    return env


def _python_shims(directory: Path, python: Path) -> Path:
    """``python`` and ``python3`` scripts that exec the app's interpreter, in a directory of
    their own: prepending the interpreter's own directory would also bring whatever else lives
    there (``/usr/bin``) and could name another Python ``python3``. Scripts, not symlinks: a
    venv's interpreter finds its ``pyvenv.cfg`` (its site-packages) from the path it is run by.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3"):
        shim = directory / name
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(str(python))} "$@"\n')
        shim.chmod(0o755)
    return directory


def _run_cdk(args: list[str], cwd: Path, env: Mapping[str, str], what: str) -> str:
    cmd = [str(find_cdk()), *args]
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=CDK_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DeployError(f"{what} timed out after {CDK_TIMEOUT_SECONDS} s") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower() or "fail" in ln.lower()]
        tail = "\n".join((errors or lines)[-12:])
        raise DeployError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout + proc.stderr


def _stack_names(endpoint_url: str) -> set[str]:
    from streamline.local.cloud import make_client

    cfn = make_client("cloudformation", endpoint_url)
    names: set[str] = set()
    for page in cfn.get_paginator("describe_stacks").paginate():
        names.update(s["StackName"] for s in page["Stacks"])
    return names


def stack_outputs(endpoint_url: str, stack_name: str) -> dict[str, str]:
    """A deployed stack's outputs as ``{OutputKey: OutputValue}``."""
    from streamline.local.cloud import make_client

    cfn = make_client("cloudformation", endpoint_url)
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _bootstrap(endpoint_url: str, env: Mapping[str, str]) -> None:
    if BOOTSTRAP_STACK in _stack_names(endpoint_url):
        return
    # Run outside any app directory so bootstrap does not synthesize the app first.
    with tempfile.TemporaryDirectory(prefix="streamline-bootstrap-") as cwd:
        _run_cdk(
            ["bootstrap", f"aws://{ACCOUNT_ID}/{REGION}", "--no-notices"],
            Path(cwd),
            env,
            "cdk bootstrap",
        )


def deploy(
    app_dir: str | os.PathLike[str],
    endpoint_url: str,
    context: Mapping[str, str] | None = None,
    *,
    python: str | os.PathLike[str] | None = None,
    reconcile: bool = True,
) -> dict[str, dict[str, str]]:
    """Bootstrap if needed, ``cdk deploy --all``, reconcile; return outputs per deployed stack.

    ``python`` is the interpreter for the app command (default: see ``app_python``).
    """
    app = Path(app_dir).resolve()
    if not (app / "cdk.json").exists():
        raise DeployError(f"{app} has no cdk.json (not a CDK app directory)")
    interpreter = app_python(app, python)
    _bootstrap(endpoint_url, cdk_env(endpoint_url))
    with tempfile.TemporaryDirectory(prefix="streamline-deploy-") as tmp:
        env = cdk_env(endpoint_url, shims=_python_shims(Path(tmp) / "bin", interpreter))
        args = [
            "deploy",
            "--all",
            "--require-approval",
            "never",
            "--no-notices",
            "--progress",
            "events",
            # A private cloud assembly per deploy: concurrent deploys of one app (parallel test
            # workers) must not overwrite each other's cdk.out.
            "--output",
            str(Path(tmp) / "cdk.out"),
        ]
        for key, value in (context or {}).items():
            args += ["-c", f"{key}={value}"]
        _run_cdk(args, app, env, f"cdk deploy of {app} (app Python: {interpreter})")
        # Every stack of the assembly: the outputs file names only the stacks with outputs.
        deployed = assembly_stacks(Path(tmp) / "cdk.out")
    if reconcile:
        from streamline.local.reconciler import reconcile_stacks

        try:
            reconcile_stacks(endpoint_url, deployed)
        except Exception as exc:
            raise DeployError(f"reconciling {', '.join(deployed)} failed: {exc}") from exc
    return {name: stack_outputs(endpoint_url, name) for name in deployed}


def assembly_stacks(cdk_out: Path) -> list[str]:
    """The stack names of a cloud assembly, dependencies first (the manifest's order, which
    is the order ``cdk deploy --all`` deploys them in), nested assemblies (stages) included."""
    manifest = json.loads((cdk_out / "manifest.json").read_text())
    names: list[str] = []
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        kind = artifact.get("type")
        if kind == "aws:cloudformation:stack":
            names.append(artifact.get("properties", {}).get("stackName") or artifact_id)
        elif kind == "cdk:cloud-assembly":
            directory = artifact.get("properties", {}).get("directoryName")
            if directory:
                names += assembly_stacks(cdk_out / directory)
    return names
