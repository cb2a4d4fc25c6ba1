"""Every contract in protos/ is documented, routable over HTTP and importable as generated code.

The descriptors come from `buf build` with source info, so the checks see exactly the comments that
`grpcurl describe` and reflection show: every service, RPC, message, field, oneof, enum and enum value needs a
leading comment, and every RPC a `google.api.http` rule (the gateway builds its HTTP routes from them).
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
PROTO_FILES = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))

# Field numbers of the descriptor.proto fields that make up SourceCodeInfo.Location paths.
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE = 4, 5, 6
MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ENUM, MESSAGE_ONEOF = 2, 3, 4, 8
ENUM_VALUE = 2
SERVICE_METHOD = 2

SourcePath = tuple[int, ...]


@dataclass(frozen=True)
class Element:
    """One documentable element of a proto file: its kind, full name and source-info path."""

    kind: str
    name: str
    path: SourcePath


def buf_binary() -> str:
    """The buf CLI of this venv (PyPI buf-bin), else one on PATH."""
    beside_python = Path(sys.executable).parent / "buf"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("buf")
    if found is None:
        pytest.fail("buf not found: install the dev dependencies (pip install -e '.[dev]')")
    return found


def build_descriptor_set(module_dir: Path, out: Path) -> descriptor_pb2.FileDescriptorSet:
    """Runs `buf build` on a module directory and reads the result (source info included, imports not)."""
    result = subprocess.run(
        [
            buf_binary(),
            "build",
            str(module_dir),
            "--as-file-descriptor-set",
            "--exclude-imports",
            "-o",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"buf build failed:\n{result.stderr}"
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def elements(file: descriptor_pb2.FileDescriptorProto) -> Iterator[Element]:
    """Every element of a file that needs a comment (map entries and synthetic oneofs have no source)."""
    prefix = file.package

    def enum_elements(
        enum: descriptor_pb2.EnumDescriptorProto, scope: str, path: SourcePath
    ) -> Iterator[Element]:
        yield Element("enum", f"{scope}.{enum.name}", path)
        for i, value in enumerate(enum.value):
            yield Element("enum value", f"{scope}.{enum.name}.{value.name}", (*path, ENUM_VALUE, i))

    def message_elements(
        message: descriptor_pb2.DescriptorProto, scope: str, path: SourcePath
    ) -> Iterator[Element]:
        if message.options.map_entry:
            return
        name = f"{scope}.{message.name}"
        yield Element("message", name, path)
        for i, field in enumerate(message.field):
            yield Element("field", f"{name}.{field.name}", (*path, MESSAGE_FIELD, i))
        synthetic = {f.oneof_index for f in message.field if f.proto3_optional}
        for i, oneof in enumerate(message.oneof_decl):
            if i not in synthetic:
                yield Element("oneof", f"{name}.{oneof.name}", (*path, MESSAGE_ONEOF, i))
        for i, nested in enumerate(message.nested_type):
            yield from message_elements(nested, name, (*path, MESSAGE_NESTED, i))
        for i, enum in enumerate(message.enum_type):
            yield from enum_elements(enum, name, (*path, MESSAGE_ENUM, i))

    for i, service in enumerate(file.service):
        yield Element("service", f"{prefix}.{service.name}", (FILE_SERVICE, i))
        for j, method in enumerate(service.method):
            yield Element(
                "rpc", f"{prefix}.{service.name}.{method.name}", (FILE_SERVICE, i, SERVICE_METHOD, j)
            )
    for i, message in enumerate(file.message_type):
        yield from message_elements(message, prefix, (FILE_MESSAGE, i))
    for i, enum in enumerate(file.enum_type):
        yield from enum_elements(enum, prefix, (FILE_ENUM, i))


def undocumented(file: descriptor_pb2.FileDescriptorProto) -> list[str]:
    """The elements of a file without a leading comment, as `kind name`."""
    comments = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}
    return [f"{e.kind} {e.name}" for e in elements(file) if not comments.get(e.path, "").strip()]


def http_route(method: descriptor_pb2.MethodDescriptorProto) -> tuple[str, str] | None:
    """The method's `google.api.http` rule as (verb, path template), or None when it has none."""
    if not method.options.HasExtension(annotations_pb2.http):
        return None
    rule: http_pb2.HttpRule = method.options.Extensions[annotations_pb2.http]
    verb = rule.WhichOneof("pattern")
    if verb is None:
        return None
    path: str = rule.custom.path if verb == "custom" else getattr(rule, verb)
    return (verb, path) if path else None


def unrouted(file: descriptor_pb2.FileDescriptorProto) -> list[str]:
    """The RPCs of a file without a `google.api.http` rule that has a path."""
    return [
        f"{file.package}.{service.name}.{method.name}"
        for service in file.service
        for method in service.method
        if http_route(method) is None
    ]


def generated_module(file: descriptor_pb2.FileDescriptorProto, suffix: str) -> str:
    """`foundation/cache/v1/cache.proto` → `foundation.cache.v1.cache<suffix>`."""
    return file.name.removesuffix(".proto").replace("/", ".") + suffix


@pytest.fixture(scope="module")
def contracts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """The files of protos/, built by buf with source info, by path."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--third-party-only"], cwd=ROOT, check=True
    )
    out = tmp_path_factory.mktemp("contracts") / "contracts.binpb"
    built = build_descriptor_set(PROTOS, out)
    return {f.name: f for f in built.file}


def test_every_proto_file_is_built(contracts: dict[str, descriptor_pb2.FileDescriptorProto]) -> None:
    assert PROTO_FILES, "no .proto files under protos/"
    assert sorted(contracts) == PROTO_FILES


@pytest.mark.parametrize("proto", PROTO_FILES)
def test_every_element_has_a_leading_comment(
    proto: str, contracts: dict[str, descriptor_pb2.FileDescriptorProto]
) -> None:
    file = contracts[proto]
    assert file.service, f"{proto} defines no service"
    missing = undocumented(file)
    assert not missing, f"{proto}: no leading comment on\n  " + "\n  ".join(missing)


@pytest.mark.parametrize("proto", PROTO_FILES)
def test_every_rpc_has_an_http_rule(
    proto: str, contracts: dict[str, descriptor_pb2.FileDescriptorProto]
) -> None:
    missing = unrouted(contracts[proto])
    assert not missing, f"{proto}: no google.api.http rule on\n  " + "\n  ".join(missing)


@pytest.mark.parametrize("proto", PROTO_FILES)
def test_http_routes_are_unique(proto: str, contracts: dict[str, descriptor_pb2.FileDescriptorProto]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for service in contracts[proto].service:
        for method in service.method:
            route = http_route(method)
            if route is None:
                continue  # reported by test_every_rpc_has_an_http_rule
            assert route not in seen, f"{method.name} and {seen[route]} share {route}"
            seen[route] = method.name


@pytest.mark.parametrize("proto", PROTO_FILES)
def test_generated_code_matches_the_contract(
    proto: str, contracts: dict[str, descriptor_pb2.FileDescriptorProto]
) -> None:
    file = contracts[proto]
    messages = importlib.import_module(generated_module(file, "_pb2"))
    stubs = importlib.import_module(generated_module(file, "_pb2_grpc"))
    channel = grpc.insecure_channel("127.0.0.1:1")  # never connects: stubs only bind method names
    try:
        for service in file.service:
            generated = messages.DESCRIPTOR.services_by_name[service.name]
            assert [m.name for m in generated.methods] == [m.name for m in service.method], (
                f"gen/ is stale for {service.name}: run `make protos`"
            )
            stub = getattr(stubs, f"{service.name}Stub")(channel)
            servicer = getattr(stubs, f"{service.name}Servicer")
            assert callable(getattr(stubs, f"add_{service.name}Servicer_to_server"))
            for method, described in zip(service.method, generated.methods, strict=True):
                assert callable(getattr(stub, method.name)), f"{service.name}Stub.{method.name}"
                assert callable(getattr(servicer, method.name)), f"{service.name}Servicer.{method.name}"
                assert f".{described.input_type.full_name}" == method.input_type
                assert f".{described.output_type.full_name}" == method.output_type
                assert described.client_streaming == method.client_streaming
                assert described.server_streaming == method.server_streaming
    finally:
        channel.close()


UNDOCUMENTED_PROTO = """\
syntax = "proto3";

package probe.v1;

// A service.
service ProbeService {
  // An RPC without an HTTP rule.
  rpc Ping(PingRequest) returns (PingResponse);
}

// Request of Ping.
message PingRequest {
  // A documented field.
  string documented = 1;
  string undocumented = 2;
  // The way the request is sent.
  enum Mode {
    // Not set.
    MODE_UNSPECIFIED = 0;
    MODE_FAST = 1;
  }
}

message PingResponse {}
"""


def test_the_checks_catch_missing_comments_and_routes(tmp_path: Path) -> None:
    module = tmp_path / "module"
    (module / "probe" / "v1").mkdir(parents=True)
    (module / "probe" / "v1" / "probe.proto").write_text(UNDOCUMENTED_PROTO)
    (file,) = build_descriptor_set(module, tmp_path / "probe.binpb").file
    assert undocumented(file) == [
        "field probe.v1.PingRequest.undocumented",
        "enum value probe.v1.PingRequest.Mode.MODE_FAST",
        "message probe.v1.PingResponse",
    ]
    assert unrouted(file) == ["probe.v1.ProbeService.Ping"]
