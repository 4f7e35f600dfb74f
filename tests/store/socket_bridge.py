"""Forward connections between a TCP port and a Unix socket (a test helper, standard library only).

    python socket_bridge.py unix-to-tcp SOCKET_PATH HOST:PORT   listen on the socket file
    python socket_bridge.py tcp-to-unix HOST:PORT SOCKET_PATH   listen on HOST:PORT (0: any
                                                                free port; printed on stdout)

The Milvus standalone server of the tests runs in a network namespace of its own, where its
components may listen on every interface of that namespace (Milvus 2.3 binds `*:port`), which
holds only a loopback device. A Unix socket file crosses namespaces: the bridge inside it
connects to the server's port, the bridge outside listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _serve(listener: socket.socket, connect: object) -> None:
    while True:
        client, _ = listener.accept()
        try:
            upstream = connect()  # type: ignore[operator]
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _tcp(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def main(argv: list[str]) -> None:
    mode, listen_at, target = argv
    if mode == "unix-to-tcp":
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(listen_at)

        def connect() -> socket.socket:
            return socket.create_connection(_tcp(target))

    else:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(_tcp(listen_at))

        def connect() -> socket.socket:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(target)
            return sock

    listener.listen(64)
    name = listener.getsockname()
    print(name[1] if isinstance(name, tuple) else name, flush=True)
    _serve(listener, connect)


if __name__ == "__main__":
    main(sys.argv[1:])
