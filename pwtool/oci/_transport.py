"""HTTP transport for the distribution API: TLS, auth challenges, retries, redirects."""

from __future__ import annotations

import http.client
import json
import re
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from pwtool import __version__
from pwtool.oci._auth import Credentials
from pwtool.oci._errors import AuthError, RegistryError

Progress = Callable[[str, int, int], None]
"""Called as ``progress(label, bytes_done, bytes_total)`` while a body is sent."""

_TRANSIENT = {408, 429, 500, 502, 503, 504}
_SEND_PIECE = 256 * 1024


@dataclass
class Response:
    """A fully read HTTP response."""

    status: int
    headers: dict[str, str]
    body: bytes
    url: str

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def errors(self) -> str:
        """The registry's ``errors`` array as ``CODE: message (detail)`` text."""
        try:
            data = json.loads(self.body)
            parts = []
            for err in data.get("errors", []):
                text = f"{err.get('code', '?')}: {err.get('message', '')}"
                if err.get("detail"):
                    text += f" ({json.dumps(err['detail'])[:200]})"
                parts.append(text)
            return "; ".join(parts)
        except (ValueError, AttributeError, TypeError):
            return self.body[:200].decode("utf-8", "replace").strip()

    def error_codes(self) -> list[str]:
        try:
            return [str(e.get("code")) for e in json.loads(self.body).get("errors", [])]
        except (ValueError, AttributeError, TypeError):
            return []


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split ``Bearer realm="x",service="y"`` into ``("bearer", {...})``."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


@dataclass
class Transport:
    """Talks to one registry host for one repository scope.

    ``insecure`` allows plain HTTP and unverified TLS; ``ca_file`` adds a trusted CA.
    """

    registry: str
    repository: str
    actions: tuple[str, ...] = ("pull",)
    credentials: Credentials | None = None
    ca_file: str | None = None
    insecure: bool = False
    retries: int = 4
    backoff: float = 0.5
    timeout: float = 60.0
    describe: str = ""
    scheme: str = "https"
    _conns: dict[tuple[str, str], http.client.HTTPConnection] = field(default_factory=dict)
    _auth: str | None = None
    _challenge: tuple[str, dict[str, str]] | None = None
    _ctx: ssl.SSLContext | None = None
    sleep: Callable[[float], None] = time.sleep

    # -- plumbing -----------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        if self._ctx is None:
            if self.insecure:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            else:
                ctx = ssl.create_default_context()
                if self.ca_file:
                    try:
                        ctx.load_verify_locations(cafile=self.ca_file)
                    except (OSError, ssl.SSLError) as exc:
                        raise RegistryError(
                            f"cannot load CA file {self.ca_file}: {exc}; pass a PEM file with --ca-file"
                        ) from exc
            self._ctx = ctx
        return self._ctx

    def _conn(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        key = (scheme, netloc)
        conn = self._conns.get(key)
        if conn is None:
            if scheme == "https":
                conn = http.client.HTTPSConnection(netloc, timeout=self.timeout, context=self._ssl_context())
            else:
                conn = http.client.HTTPConnection(netloc, timeout=self.timeout)
            self._conns[key] = conn
        return conn

    def _drop(self, scheme: str, netloc: str) -> None:
        conn = self._conns.pop((scheme, netloc), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close all pooled connections."""
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.scheme}://{self.registry}{path}"

    def _send_once(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None,
        progress: Progress | None, label: str,
    ) -> Response:
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn = self._conn(parts.scheme, parts.netloc)
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            hdrs = {"User-Agent": f"pwtool/{__version__}", **headers}
            if body is not None or method in ("PUT", "POST", "PATCH"):
                hdrs["Content-Length"] = str(len(body or b""))
            for k, v in hdrs.items():
                conn.putheader(k, v)
            conn.endheaders()
            if body:
                total = len(body)
                for start in range(0, total, _SEND_PIECE):
                    conn.send(body[start:start + _SEND_PIECE])
                    if progress is not None:
                        progress(label, min(start + _SEND_PIECE, total), total)
            resp = conn.getresponse()
            data = resp.read()  # empty for HEAD; reading completes the response for keep-alive
            out = Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data, url)
            if resp.will_close:
                self._drop(parts.scheme, parts.netloc)
            return out
        except BaseException:
            self._drop(parts.scheme, parts.netloc)
            raise

    def _network_error(self, exc: Exception, url: str) -> RegistryError:
        host = urllib.parse.urlsplit(url).netloc
        if isinstance(exc, ssl.SSLCertVerificationError):
            return RegistryError(
                f"TLS certificate of {host} is not trusted ({exc.verify_message}) while accessing {self.describe}; "
                "pass --ca-file CA.pem to trust its CA, or --insecure to skip verification"
            )
        if isinstance(exc, ConnectionRefusedError):
            return RegistryError(
                f"cannot connect to registry {host} for {self.describe}: connection refused; "
                "check the host and port and that the registry is running"
            )
        return RegistryError(f"network error talking to {host} for {self.describe}: {exc}; retried {self.retries} times")

    # -- one request with redirects, auth and retries ------------------------------------
    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None,
        body: bytes | None = None, progress: Progress | None = None, label: str = "",
    ) -> Response:
        """Send a request; handles 401 challenges, redirects, and transient errors."""
        url = self.url(path)
        attempt = 0
        authed_once = False
        redirects = 0
        while True:
            hdrs = dict(headers or {})
            same_host = urllib.parse.urlsplit(url).netloc == self.registry
            if self._auth and same_host:
                hdrs["Authorization"] = self._auth
            try:
                resp = self._send_once(method, url, hdrs, body, progress, label)
            except ssl.SSLCertVerificationError as exc:
                raise self._network_error(exc, url) from exc
            except ssl.SSLError as exc:
                if same_host and self.scheme == "https" and self.insecure and attempt == 0:
                    # The registry speaks plain HTTP: --insecure allows falling back.
                    self.scheme = "http"
                    url = url.replace("https://", "http://", 1)
                    attempt += 1
                    continue
                if same_host and self.scheme == "https" and "WRONG_VERSION_NUMBER" in str(exc):
                    raise RegistryError(
                        f"registry {self.registry} answers plain HTTP, not HTTPS, for {self.describe}; "
                        "pass --insecure to use plain HTTP"
                    ) from exc
                raise self._network_error(exc, url) from exc
            except ConnectionRefusedError as exc:
                raise self._network_error(exc, url) from exc
            except (OSError, http.client.HTTPException) as exc:
                if attempt < self.retries:
                    self.sleep(self.backoff * (2 ** attempt))
                    attempt += 1
                    continue
                raise self._network_error(exc, url) from exc
            if resp.status in (301, 302, 303, 307, 308) and resp.header("location") and redirects < 5:
                url = urllib.parse.urljoin(url, resp.header("location"))
                if resp.status == 303:
                    method, body = "GET", None
                redirects += 1
                continue
            if resp.status == 401 and same_host and not authed_once:
                authed_once = True
                self._authenticate(resp)
                continue
            if resp.status in _TRANSIENT and attempt < self.retries:
                delay = self.backoff * (2 ** attempt)
                retry_after = resp.header("retry-after")
                if retry_after.isdigit():
                    delay = max(delay, min(float(retry_after), 30.0))
                self.sleep(delay)
                attempt += 1
                continue
            if resp.status == 401:
                raise self._auth_refused(resp)
            return resp

    # -- authentication ------------------------------------------------------------
    def _auth_refused(self, resp: Response) -> AuthError:
        who = f"as {self.credentials.username!r} (from {self.credentials.source})" if self.credentials else "anonymously"
        if self.credentials is None:
            fix = ("pass --username/--password, set PWTOOL_REGISTRY_USERNAME and PWTOOL_REGISTRY_PASSWORD, "
                   f"or run `docker login {self.registry}`")
            return AuthError(
                f"registry {self.registry} requires authentication for {self.describe} "
                f"(HTTP {resp.status} {resp.errors()}); {fix}", status=resp.status, code="UNAUTHORIZED",
            )
        return AuthError(
            f"registry {self.registry} refused access to {self.describe} {who} "
            f"(HTTP {resp.status} {resp.errors()}); check the username and password and that the account "
            f"may {'/'.join(self.actions)} {self.repository}",
            status=resp.status, code="UNAUTHORIZED",
        )

    def _authenticate(self, resp: Response) -> None:
        header = resp.header("www-authenticate")
        if not header:
            raise self._auth_refused(resp)
        scheme, params = parse_challenge(header)
        self._challenge = (scheme, params)
        if scheme == "basic":
            if self.credentials is None:
                raise self._auth_refused(resp)
            self._auth = self.credentials.basic()
        elif scheme == "bearer":
            self._auth = "Bearer " + self._fetch_token(params)
        else:
            raise AuthError(f"registry {self.registry} asks for unsupported auth scheme {scheme!r} for {self.describe}")

    def _fetch_token(self, params: dict[str, str]) -> str:
        realm = params.get("realm")
        if not realm:
            raise AuthError(f"registry {self.registry} sent a Bearer challenge without a realm for {self.describe}")
        scopes = [f"repository:{self.repository}:{','.join(self.actions)}"]
        challenge_scope = params.get("scope")
        if challenge_scope and challenge_scope not in scopes:
            scopes.append(challenge_scope)
        query = [("scope", s) for s in scopes]
        if params.get("service"):
            query.insert(0, ("service", params["service"]))
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        hdrs = {"Accept": "application/json"}
        if self.credentials is not None:
            hdrs["Authorization"] = self.credentials.basic()
        attempt = 0
        while True:
            try:
                resp = self._send_once("GET", url, hdrs, None, None, "")
            except ssl.SSLError as exc:
                raise self._network_error(exc, url) from exc
            except (OSError, http.client.HTTPException) as exc:
                if attempt < self.retries and not isinstance(exc, ConnectionRefusedError):
                    self.sleep(self.backoff * (2 ** attempt))
                    attempt += 1
                    continue
                raise self._network_error(exc, url) from exc
            if resp.status in _TRANSIENT and attempt < self.retries:
                self.sleep(self.backoff * (2 ** attempt))
                attempt += 1
                continue
            break
        if resp.status != 200:
            err = self._auth_refused(resp)
            raise AuthError(f"token server {realm}: {err}", status=resp.status, code="UNAUTHORIZED")
        try:
            data = json.loads(resp.body)
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token:
            raise AuthError(f"token server {realm} answered without a token for {self.describe}")
        return str(token)

