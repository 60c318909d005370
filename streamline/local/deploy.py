"""Deploy a CDK app to the local cloud with the pinned CDK CLI, unchanged, then reconcile.

``cdk bootstrap`` runs once per cloud (skipped when the CDKToolkit stack exists); then
``cdk deploy --all --require-approval never`` runs in the app's directory against the endpoint,
and the reconciler applies what moto's CloudFormation skipped.

The app command in the app's cdk.json runs with this interpreter's directory first on PATH, so
``"app": "python app.py"`` uses the same virtualenv as Streamline (with aws-cdk-lib installed).

Example::

    outputs = deploy(Path("."), "http://localhost:4566", context={"stage": "dev"})
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from streamline.local.server import ACCOUNT_ID, REGION

__all__ = ["DeployError", "cdk_env", "deploy", "find_cdk", "stack_outputs"]

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


def cdk_env(endpoint_url: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment that points the CDK CLI (and the app it runs) at the local cloud."""
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
    # The app command ("python app.py") resolves to the interpreter running Streamline.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


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
    reconcile: bool = True,
) -> dict[str, dict[str, str]]:
    """Bootstrap if needed, ``cdk deploy --all``, reconcile; return outputs per deployed stack."""
    app = Path(app_dir).resolve()
    if not (app / "cdk.json").exists():
        raise DeployError(f"{app} has no cdk.json (not a CDK app directory)")
    env = cdk_env(endpoint_url)
    _bootstrap(endpoint_url, env)
    with tempfile.TemporaryDirectory(prefix="streamline-deploy-") as tmp:
        outputs_file = Path(tmp) / "outputs.json"
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
            "--outputs-file",
            str(outputs_file),
        ]
        for key, value in (context or {}).items():
            args += ["-c", f"{key}={value}"]
        _run_cdk(args, app, env, f"cdk deploy of {app}")
        deployed: dict[str, dict[str, str]] = (
            json.loads(outputs_file.read_text()) if outputs_file.exists() else {}
        )
    if reconcile:
        from streamline.local.reconciler import reconcile_stacks

        try:
            reconcile_stacks(endpoint_url, list(deployed))
        except Exception as exc:
            raise DeployError(f"reconciling {', '.join(deployed)} failed: {exc}") from exc
    return {name: stack_outputs(endpoint_url, name) for name in deployed}
