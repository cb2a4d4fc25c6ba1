"""Generate Python code (+ .pyi stubs) from protos/ into gen/.

`python scripts/gen_protos.py` regenerates gen/; `--check` regenerates into a temporary directory and fails
when gen/ differs (stale or hand-edited generated code). `--third-party-only` only prepares build/third_party
(the google/api and google/rpc protos that buf needs), copied from the installed googleapis-common-protos.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "gen"
THIRD_PARTY = ROOT / "build" / "third_party"


def prepare_third_party() -> None:
    import google.api  # from googleapis-common-protos

    google_root = Path(next(iter(google.api.__path__))).parent
    for sub in ("api", "rpc"):
        dest = THIRD_PARTY / "google" / sub
        dest.mkdir(parents=True, exist_ok=True)
        for proto in sorted((google_root / sub).glob("*.proto")):
            target = dest / proto.name
            if not target.exists() or not filecmp.cmp(proto, target, shallow=False):
                shutil.copyfile(proto, target)


def generate(out: Path) -> None:
    import grpc_tools

    wkt = Path(next(iter(grpc_tools.__path__))) / "_proto"
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    if not sources:
        sys.exit("no .proto files under protos/")
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{THIRD_PARTY}",
        f"-I{wkt}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *sources,
    ]
    subprocess.run(cmd, check=True, cwd=PROTOS)
    # Packages with __init__.py so setuptools, mypy and importers see regular packages.
    for directory in sorted({p.parent for p in out.rglob("*_pb2.py")}):
        d = directory
        while d != out:
            init = d / "__init__.py"
            if not init.exists():
                init.write_text('"""Generated from protos/ by scripts/gen_protos.py; do not edit."""\n')
            d = d.parent
    (out / "foundation" / "py.typed").write_text("")


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if gen/ is not what protos/ generate")
    parser.add_argument("--third-party-only", action="store_true", help="only prepare build/third_party")
    args = parser.parse_args()
    prepare_third_party()
    if args.third_party_only:
        return 0
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp)
            generate(fresh)
            want, have = tree(fresh), tree(GEN)
            stale = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
            if stale:
                print("gen/ is stale or edited by hand; run `make protos`. Differs:", *stale, sep="\n  ")
                return 1
            print("gen/ is up to date")
            return 0
    if GEN.exists():
        shutil.rmtree(GEN)
    generate(GEN)
    print(f"generated {sum(1 for _ in GEN.rglob('*_pb2.py'))} modules into gen/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
