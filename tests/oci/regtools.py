"""Test harness: real docker-registry processes, a self-signed CA, a token server and a fault proxy."""

from __future__ import annotations

import base64
import hashlib
import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pwtool.envoy import free_port  # re-exported for the tests

USER, PASSWORD = "alice", "s3cret-pw"

def compile_test_module(workdir: Path, python: str) -> bytes:
    """A tiny proxy-wasm module (C, raw ABI) compiled with zig's clang."""
    from pwtool_zig import compile_tiny_module

    return compile_tiny_module(workdir).read_bytes()




def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a child by its PID: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass
class CA:
    """A self-signed CA and a server certificate for 127.0.0.1, made with the openssl CLI."""

    dir: Path

    @property
    def ca_pem(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def cert(self) -> Path:
        return self.dir / "server.pem"

    @property
    def key(self) -> Path:
        return self.dir / "server.key"

    @classmethod
    def create(cls, directory: Path) -> "CA":
        directory.mkdir(parents=True, exist_ok=True)
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                "-days", "2", "-subj", "/CN=pwtool test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
                "-subj", "/CN=127.0.0.1", cwd=directory)
        (directory / "ext.cnf").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=directory)
        return cls(directory)


@dataclass
class RegistryProcess:
    """A real ``docker-registry serve`` on 127.0.0.1, stopped by PID."""

    workdir: Path
    port: int = 0
    tls: CA | None = None
    htpasswd: tuple[str, str] | None = None
    token: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "RegistryProcess":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        cfg: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.workdir / "data")}, "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": "pwtool-test"},
        }
        if self.tls is not None:
            cfg["http"]["tls"] = {"certificate": str(self.tls.cert), "key": str(self.tls.key)}
        if self.htpasswd is not None:
            user, password = self.htpasswd
            line = subprocess.run(["htpasswd", "-Bbn", user, password], check=True, capture_output=True,
                                  text=True, timeout=30).stdout.strip()
            (self.workdir / "htpasswd").write_text(line + "\n")
            cfg["auth"] = {"htpasswd": {"realm": "pwtool-test", "path": str(self.workdir / "htpasswd")}}
        if self.token is not None:
            cfg["auth"] = {"token": self.token}
        (self.workdir / "config.yml").write_text(yaml.safe_dump(cfg))
        log = open(self.workdir / "registry.log", "wb")
        self.proc = subprocess.Popen([shutil.which("docker-registry") or "docker-registry", "serve",
                                      str(self.workdir / "config.yml")], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_port(self.port, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


# -- bearer tokens --------------------------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """A tiny Docker token server: Basic-authenticates users and signs RS256 JWTs with x5c."""

    workdir: Path
    users: dict[str, tuple[str, tuple[str, ...]]]  # user -> (password, allowed actions)
    service: str = "pwtool-test-registry"
    issuer: str = "pwtool-test-issuer"
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def cert(self) -> Path:
        return self.workdir / "token.pem"

    def registry_auth(self) -> dict[str, str]:
        return {"realm": f"http://127.0.0.1:{self.port}/token", "service": self.service,
                "issuer": self.issuer, "rootcertbundle": str(self.cert)}

    def _sign(self, payload: bytes) -> bytes:
        proc = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.workdir / "token.key")],
                              input=payload, capture_output=True, check=True, timeout=30)
        return proc.stdout

    def make_token(self, access: list[dict[str, Any]], subject: str) -> str:
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], capture_output=True,
                             check=True, timeout=30).stdout
        header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}".encode()
        return signing_input.decode() + "." + _b64url(self._sign(signing_input))

    def start(self) -> "TokenServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "token.key", "-out", "token.pem",
                "-days", "2", "-subj", "/CN=pwtool token signer", cwd=self.workdir)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                auth = self.headers.get("Authorization", "")
                user = None
                if auth.startswith("Basic "):
                    name, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                    if name in owner.users and owner.users[name][0] == pw:
                        user = name
                    else:
                        self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
                        owner.requests.append({"user": name, "status": 401, "scope": query.get("scope", [])})
                        return
                allowed = owner.users[user][1] if user else ()
                access = []
                for scope in query.get("scope", []):
                    kind, name, actions = scope.split(":")
                    granted = [a for a in actions.split(",") if a in allowed]
                    access.append({"type": kind, "name": name, "actions": granted})
                owner.requests.append({"user": user, "status": 200, "scope": query.get("scope", []),
                                       "service": query.get("service", [None])[0]})
                self._send(200, {"token": owner.make_token(access, user or "")})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


# -- fault injection ---------------------------------------------------------------------------------
Fault = Callable[[str, str, int], str | None]
"""``fault(method, path, nth_request_of_that_kind)`` returns None, ``"503"``, ``"reset"`` or ``"corrupt"``."""


@dataclass
class FaultProxy:
    """An HTTP reverse proxy in front of a registry that injects 5xx, resets and corrupted bodies."""

    upstream_port: int
    fault: Fault = lambda method, path, n: None
    port: int = 0
    log: list[tuple[str, str, int]] = field(default_factory=list)
    injected: list[tuple[str, str, str]] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None
    _counts: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> "FaultProxy":
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                kind = self.path.split("?")[0]
                kind = "blobs" if "/blobs/" in kind and "/uploads/" not in kind else (
                    "uploads" if "/uploads/" in kind else ("manifests" if "/manifests/" in kind else kind))
                with owner._lock:
                    n = owner._counts.get((self.command, kind), 0) + 1
                    owner._counts[(self.command, kind)] = n
                action = owner.fault(self.command, kind, n)
                if action == "reset":
                    owner.injected.append((self.command, kind, action))
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if action == "503":
                    owner.injected.append((self.command, kind, action))
                    data = b'{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}'
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", owner.upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if action == "corrupt" and data:
                    owner.injected.append((self.command, kind, action))
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                owner.log.append((self.command, self.path, resp.status))
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data) if self.command != "HEAD" else
                                                       int(resp.getheader("Content-Length") or 0)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    """Run skopeo (a registry client we did not write); raise with its stderr on failure."""
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed: {proc.stderr}")
    return proc


# -- a scripted, misbehaving registry ------------------------------------------------------------------
class FakeHandler(http.server.BaseHTTPRequestHandler):
    """One request to a ``FakeRegistry``; ``answer`` functions use ``send``/``drain`` and these fields."""

    protocol_version = "HTTP/1.1"
    registry: "FakeRegistry"

    def log_message(self, *args: Any) -> None:
        pass

    @property
    def route(self) -> str:
        """The path without the query string."""
        return self.path.split("?")[0]

    def drain(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        owner = self.registry
        with owner._lock:
            owner.requests.append((self.command, self.path))
        if owner.answer is not None and owner.answer(self):
            return
        self.serve_default()

    def serve_default(self) -> None:
        """What a working registry answers, from ``manifests`` and ``blobs``."""
        owner, route = self.registry, self.route
        if route == "/v2/":
            return self.send(200, b"{}")
        kind, _, ident = route.rpartition("/")
        kind = kind.rsplit("/", 1)[-1]
        if self.command == "POST" and route.endswith("/blobs/uploads/"):
            self.drain()
            return self.send(202, headers={"Location": route + "u1"})
        if self.command in ("PUT", "PATCH") and "/blobs/uploads/" in route:
            data = self.drain()
            if self.command == "PATCH":
                return self.send(202, headers={"Location": route, "Range": f"0-{max(len(data) - 1, 0)}"})
            digest = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("digest", [""])[0]
            owner.blobs[digest] = data
            return self.send(201, headers={"Location": route.replace("uploads/u1", digest)})
        if self.command == "PUT" and kind == "manifests":
            data = self.drain()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            owner.manifests[ident] = (self.headers.get("Content-Type", ""), data)
            return self.send(201, headers={"Docker-Content-Digest": digest})
        if kind == "manifests" and ident in owner.manifests:
            media_type, data = owner.manifests[ident]
            return self.send(200, data, {"Content-Type": media_type,
                                         "Docker-Content-Digest": "sha256:" + hashlib.sha256(data).hexdigest()})
        if kind == "blobs" and ident in owner.blobs:
            return self.send(200, owner.blobs[ident])
        code = "MANIFEST_UNKNOWN" if kind == "manifests" else "BLOB_UNKNOWN"
        return self.send(404, json.dumps({"errors": [{"code": code, "message": "unknown"}]}).encode())

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up on a misbehaving answer is the point of these tests, not an error."""


Answer = Callable[[FakeHandler], bool | None]
"""``answer(request)`` answers a request itself and returns True, or returns None for the default answer."""


@dataclass
class FakeRegistry:
    """A tiny threaded registry on 127.0.0.1 (plain HTTP, no auth) serving ``manifests`` and ``blobs``, whose
    ``answer`` hook can break any request: huge or endless bodies, silence, redirect loops, 5xx. Handlers
    that stall should wait on ``stopping`` so that ``stop()`` ends them."""

    answer: Answer | None = None
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    port: int = 0
    _server: http.server.ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add_blob(self, data: bytes) -> dict[str, Any]:
        """Store ``data``; returns its descriptor (without a media type)."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    def add_manifest(self, tag: str, manifest: dict[str, Any] | bytes,
                     media_type: str = "application/vnd.oci.image.manifest.v1+json") -> str:
        """Serve ``manifest`` under ``tag`` and its digest; returns the digest."""
        data = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.manifests[tag] = self.manifests[digest] = (media_type, data)
        return digest

    def add_cncf_image(self, tag: str, module: bytes, **manifest_fields: Any) -> str:
        """A cncf wasm image (config + one application/wasm layer); ``manifest_fields`` override fields."""
        manifest: dict[str, Any] = {
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.wasm.config.v0+json", **self.add_blob(b"{}")},
            "layers": [{"mediaType": "application/wasm", **self.add_blob(module)}],
        }
        manifest.update(manifest_fields)
        return self.add_manifest(tag, manifest)

    def start(self) -> "FakeRegistry":
        handler = type("Handler", (FakeHandler,), {"registry": self})
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "FakeRegistry":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
