"""A client in another language (grpc-js on Node) talks to a real limiter process and reads its error details.

The npm packages are pinned in `tests/e2e/node/package-lock.json` and installed with `npm ci` into the
git-ignored `build/e2e-node/` once (again only when the lock file changes). Without node/npm, or when the
registry cannot be reached, the test is skipped, except with CI=true where it must run.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from services.runtime.child_output import ReadyLine
from tests.e2e.processes import clean_environment, start

ROOT = Path(__file__).resolve().parents[2]
NODE_PROJECT = Path(__file__).resolve().parent / "node"
INSTALL_DIR = ROOT / "build" / "e2e-node"
THIRD_PARTY = ROOT / "build" / "third_party"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(message + " (CI=true: the cross-language test must run)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """`build/e2e-node/node_modules` with the locked packages installed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are needed")
    lock = (NODE_PROJECT / "package-lock.json").read_bytes()
    installed_lock = INSTALL_DIR / "package-lock.json"
    modules = INSTALL_DIR / "node_modules"
    if not (modules.is_dir() and installed_lock.is_file() and installed_lock.read_bytes() == lock):
        INSTALL_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(NODE_PROJECT / name, INSTALL_DIR / name)
        done = subprocess.run(
            [str(npm), "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=INSTALL_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            _unavailable(f"npm ci failed: {done.stderr.strip().splitlines()[-1:]}")
    if not (THIRD_PARTY / "google" / "rpc" / "status.proto").is_file():
        subprocess.run([sys.executable, "scripts/gen_protos.py", "--third-party-only"], cwd=ROOT, check=True)
    return modules


async def test_a_grpc_js_client_gets_health_and_status_details(
    node_modules: Path, sqlite_url: str, tmp_path: Path
) -> None:
    env = clean_environment(FOUNDATION_DATABASE_URL=sqlite_url)
    proc = start(["serve", "limiter", "--port", "0"], tmp_path, env, name="limiter")
    try:
        ready = ReadyLine.parse((await proc.wait_for_stdout("\n")).splitlines()[0])
        assert ready is not None, proc.describe()
        node = await asyncio.create_subprocess_exec(
            "node",
            str(NODE_PROJECT / "client.js"),
            ready.address,
            str(ROOT / "protos"),
            str(THIRD_PARTY),
            env={**os.environ, "NODE_PATH": str(node_modules)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            out, err = await node.communicate()
    finally:
        proc.kill()
    assert node.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["health"] == "SERVING"
    check = result["check"]
    # Whatever the limiter answers for a limiter that does not exist (UNIMPLEMENTED today, NOT_FOUND once it
    # is implemented), a non-Python client reads a proper status: never UNKNOWN, exactly one ErrorInfo.
    assert check["code"] not in ("UNKNOWN", "INTERNAL", "OK"), check
    assert len(check["error_infos"]) == 1, check
    assert check["error_infos"][0]["domain"] == "limiter.foundation", check
    assert check["error_infos"][0]["reason"].isupper(), check
