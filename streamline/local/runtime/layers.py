"""Where a function's code comes from: its deployed zip, its layers, and the runtime's packages.

- Code zips are extracted once per code SHA-256 under ``state_dir/functions/<sha>/``.
- Layers moto holds (real LayerVersion zips) are extracted under ``state_dir/layers/<sha>/``.
- AWS's public Powertools layers are served from the locally installed distributions: a
  directory of symlinks to exactly the top-level packages of aws-lambda-powertools and its
  dependency closure, so a function sees what the layer holds and nothing else of our venv.
- boto3 and its dependencies are "in the runtime" the same way (AWS's Python runtimes bundle them).

Every directory is built in a temporary sibling and renamed into place, so concurrent cold starts
and crashed builds never leave a half-written tree behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import subprocess
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

from streamline.local.contracts import UnsupportedFunction

#: The SDK clients the local Node.js runtime provides (node_modules of an npm project of ours).
NODE_SDK = Path(__file__).with_name("node") / "node_modules"

__all__ = [
    "POWERTOOLS_LAYER",
    "RUNTIME_DISTRIBUTIONS",
    "CodeStore",
    "is_public_powertools_layer",
]

#: Public Powertools layer ARNs (V1, V2 and V3, any Python version and architecture).
POWERTOOLS_LAYER = re.compile(
    r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:017000801446:layer:AWSLambdaPowertoolsPython[A-Za-z0-9_-]*:\d+$"
)

#: What AWS's Python runtimes bundle: boto3 and its dependency closure.
RUNTIME_DISTRIBUTIONS = ("boto3",)

#: The extras the public Powertools layer is built with (those installed locally are served).
_POWERTOOLS_EXTRAS = frozenset({"all", "tracer", "parser", "validation"})

_SKIP_TOP_LEVEL = frozenset({"__pycache__", "..", "bin", ""})
_REQUIREMENT = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[(?P<extras>[^\]]*)\])?")
# Other markers (python_version, ...) are not evaluated: a requirement that does not apply here
# is normally not installed, and uninstalled requirements are skipped anyway.
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def is_public_powertools_layer(arn: str) -> bool:
    """Whether ``arn`` names one of AWS's public Powertools for AWS Lambda (Python) layers."""
    return POWERTOOLS_LAYER.match(arn) is not None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(roots: Iterable[str], extras: frozenset[str]) -> list[metadata.Distribution]:
    """The installed distributions ``roots`` need, following requirements and chosen extras.

    Requirements that are not installed are skipped: a missing optional extra must not stop a
    function from starting (it would fail at import, exactly as with an incomplete layer).
    """
    seen: dict[str, metadata.Distribution] = {}
    pending = [(root, extras) for root in roots]
    while pending:
        name, wanted = pending.pop()
        key = _canonical(name)
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[key] = dist
        for spec in dist.requires or []:
            name_part, _, marker = spec.partition(";")
            match = _REQUIREMENT.match(name_part)
            if match is None:
                continue
            needed_extras = set(_EXTRA_MARKER.findall(marker))
            if needed_extras and not needed_extras & wanted:
                continue
            # Dependencies' own extras are those the requirement asks for.
            req_extras = frozenset(e.strip() for e in (match["extras"] or "").split(",") if e)
            pending.append((match["name"], req_extras))
    return list(seen.values())


def _top_level_paths(dist: metadata.Distribution) -> set[Path]:
    """The top-level files and directories a distribution installed into site-packages."""
    base = Path(str(dist.locate_file("")))
    names: set[str] = set()
    for file in dist.files or []:
        parts = Path(str(file)).parts
        if not parts or parts[0] in _SKIP_TOP_LEVEL or parts[0].endswith(".pth"):
            continue
        if len(parts) == 1 and not parts[0].endswith((".py", ".so", ".pyd")):
            continue
        names.add(parts[0])
    return {base / name for name in names if (base / name).exists()}


class CodeStore:
    """Builds (once) and returns the directories that go on a function's ``sys.path``."""

    def __init__(self, state_dir: Path) -> None:
        self._state_dir = Path(state_dir)
        self._lock = threading.Lock()
        self._ready: dict[Path, list[Path]] = {}
        # Resolving the installed distributions costs ~27 ms CPU; the venv does not change
        # while the cloud runs, so each package directory is resolved once, not per cold start.
        self._package_dirs: dict[tuple[str, tuple[str, ...], frozenset[str]], Path] = {}

    def function_code(self, code_sha: str, code_bytes: bytes) -> Path:
        """The task root for a code zip (``LAMBDA_TASK_ROOT``), extracted on first use."""
        target = self._state_dir / "functions" / code_sha
        self._build(target, lambda tmp: _extract(code_bytes, tmp))
        return target

    def moto_layer(self, layer_sha: str, layer_bytes: bytes, *, node: bool = False) -> list[Path]:
        """The ``sys.path`` entries of a layer zip (its ``python/`` and site-packages dirs), or
        with ``node`` its ``NODE_PATH`` entries (``nodejs/node_modules`` and versioned ones)."""
        target = self._state_dir / "layers" / layer_sha
        self._build(target, lambda tmp: _extract(layer_bytes, tmp))
        return _layer_node_dirs(target) if node else _layer_python_dirs(target)

    def node_sdk(self) -> Path:
        """The AWS SDK for JavaScript v3 that AWS's Node.js runtimes bundle (``make setup``
        installs the pinned clients; see streamline/local/runtime/node/package.json)."""
        if not (NODE_SDK / "@aws-sdk").is_dir():
            raise UnsupportedFunction(
                f"the Node.js runtime's AWS SDK is not installed in {NODE_SDK}: run `make setup`"
            )
        # ES modules ignore NODE_PATH: they find bare imports in node_modules directories
        # above the importing file, so the SDK also goes above every task root (a function's
        # own node_modules, inside its task root, still comes first).
        link = self._state_dir / "functions" / "node_modules"
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # another environment linked it
                link.symlink_to(NODE_SDK, target_is_directory=True)
        return NODE_SDK

    def no_npm(self) -> Path:
        """A directory whose ``npm`` fails at once (functions cannot install packages here)."""
        target = self._state_dir / "runtime-bin" / "no-npm"

        def build(tmp: Path) -> None:
            stub = tmp / "npm"
            stub.write_text(
                "#!/bin/sh\necho 'npm is not available in the local Lambda runtime' >&2\nexit 1\n"
            )
            stub.chmod(0o755)

        self._build(target, build)
        return target

    def powertools_layer(self) -> list[Path]:
        """The local stand-in for the public Powertools layer."""
        return [self._symlink_dir("powertools", ["aws-lambda-powertools"], _POWERTOOLS_EXTRAS)]

    def runtime_packages(self) -> Path:
        """The packages AWS's Python runtime bundles (boto3, botocore, ...)."""
        return self._symlink_dir("runtime", RUNTIME_DISTRIBUTIONS, frozenset())

    def _symlink_dir(self, name: str, roots: Iterable[str], extras: frozenset[str]) -> Path:
        key = (name, tuple(roots), extras)
        known = self._package_dirs.get(key)
        if known is not None and known.exists():
            return known
        dists = _closure(key[1], extras)
        # Versions are part of the name so upgrading the venv rebuilds the directory.
        label = "-".join(sorted(f"{_canonical(d.metadata['Name'])}={d.version}" for d in dists))
        target = self._state_dir / "layers" / f"{name}-{_short_hash(label)}"

        def build(tmp: Path) -> None:
            for dist in dists:
                for source in _top_level_paths(dist):
                    link = tmp / source.name
                    if not link.exists():
                        link.symlink_to(source)

        self._build(target, build)
        self._package_dirs[key] = target
        return target

    def _build(self, target: Path, fill: Callable[[Path], None]) -> None:
        if target.exists():
            return
        with self._lock:
            if target.exists():
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
            try:
                fill(tmp)
                os.replace(tmp, target)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                if not target.exists():  # another process won the race: that is fine
                    raise
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _extract(zip_bytes: bytes, target: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        for info in archive.infolist():
            archive.extract(info, target)
            # Keep the executable bits a zip built on Unix recorded (scripts, binaries).
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                (target / info.filename).chmod(mode | 0o400)


def _layer_node_dirs(root: Path) -> list[Path]:
    """AWS's NODE_PATH for a layer: ``/opt/nodejs/node<NN>/node_modules``, then
    ``/opt/nodejs/node_modules``."""
    major = _node_major()
    dirs = [root / "nodejs" / f"node{major}" / "node_modules"] if major else []
    dirs.append(root / "nodejs" / "node_modules")
    return [d for d in dirs if d.is_dir()]


def _node_major() -> str | None:
    node = shutil.which("node")
    if node is None:
        return None
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return version.strip().lstrip("v").split(".")[0] or None


def _layer_python_dirs(root: Path) -> list[Path]:
    """AWS puts ``/opt/python/lib/python3.X/site-packages`` and ``/opt/python`` on sys.path."""
    dirs = sorted((root / "python" / "lib").glob("python3*/site-packages"))
    if (root / "python").is_dir():
        dirs.append(root / "python")
    return dirs
