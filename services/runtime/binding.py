"""How a service's gRPC server listens: its channel options and its address, and why a bind failed."""

from __future__ import annotations

import errno
import socket

from services.runtime.config import ServiceSettings


def server_options(section: ServiceSettings) -> list[tuple[str, int]]:
    """Options of the grpc.aio server: no SO_REUSEPORT, message size limits, keepalive and its policing."""
    return [
        # Without this, grpc sets SO_REUSEPORT and a second process on the same port starts "fine".
        ("grpc.so_reuseport", 0),
        ("grpc.max_send_message_length", section.max_message_bytes),
        ("grpc.max_receive_message_length", section.max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
        ("grpc.http2.max_ping_strikes", 3),
    ]


def host_port(host: str, port: int) -> str:
    """`host:port`, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_problem(host: str, port: int) -> str:
    """Why `host:port` cannot be bound, found by trying it with a plain socket (grpc does not say)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return f"port {port} on {host} is already in use"
        if exc.errno == errno.EACCES:
            return f"port {port} on {host}: permission denied"
        return f"cannot bind {host_port(host, port)}: {exc.strerror or exc}"
    return f"cannot bind {host_port(host, port)}"
