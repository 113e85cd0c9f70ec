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

Notify = Callable[[str], None]
"""Called with a one-line notice (a retry, a fallback) that a CLI prints on stderr."""

_TRANSIENT = {408, 429, 500, 502, 503, 504}
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5
_SEND_PIECE = 256 * 1024
_READ_PIECE = 256 * 1024

MAX_RESPONSE = 4 * 1024 * 1024
"""The most a manifest, an index or any non-blob answer may hold (registries refuse larger manifests)."""
_MAX_ERROR_BODY = 64 * 1024
"""An error page is read up to this much (its first 200 characters end up in the message)."""

DEADLINE_FACTOR = 5
"""Each request (with its retries) must finish within this many times the idle ``timeout``..."""
DEADLINE_BYTES_PER_SECOND = 64 * 1024
"""... plus one second for each this many bytes it sends or expects to receive."""


class _DeadlineExceeded(Exception):
    """The request's overall deadline passed (raised between socket operations)."""


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:g} s"


@dataclass
class Response:
    """A fully read HTTP response."""

    status: int
    headers: dict[str, str]
    body: bytes
    url: str
    oversize: bool = False
    """A 2xx answer longer than the caller's limit: ``body`` is empty or cut after limit + 1 bytes."""
    length: int | None = None
    """The Content-Length the registry announced, if any."""

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def errors(self) -> str:
        """The registry's ``errors`` array as ``CODE: message (detail)`` text."""
        if self.body.lstrip()[:1] == b"<":  # a proxy's or load balancer's error page
            title = re.search(rb"<title[^>]*>([^<]{1,120})", self.body, re.IGNORECASE)
            return "an HTML page" + (f" titled {title.group(1).decode('utf-8', 'replace').strip()!r}" if title else "")
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
    notify: Notify | None = None
    """Receives retry notices; None keeps them quiet."""

    def deadline_for(self, nbytes: int = 0) -> float:
        """Seconds a request moving ``nbytes`` may take in all, retries included."""
        return DEADLINE_FACTOR * self.timeout + nbytes / DEADLINE_BYTES_PER_SECOND

    def _notice(self, message: str) -> None:
        if self.notify is not None:
            self.notify(message)

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

    def _arm(self, sock: object, deadline: float) -> None:
        """Give the next socket operation the idle timeout, but never beyond the deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise _DeadlineExceeded()
        settimeout = getattr(sock, "settimeout", None)
        if settimeout is not None:
            settimeout(min(self.timeout, left))

    def _send_once(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None,
        progress: Progress | None, label: str, *, deadline: float, limit: int = MAX_RESPONSE,
    ) -> Response:
        """One HTTP exchange. The answer is read up to ``limit`` bytes (a 2xx answer that is longer comes
        back with ``oversize`` set and the connection dropped); every socket operation waits at most
        ``timeout`` and nothing runs past ``deadline`` (``_DeadlineExceeded``)."""
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn = self._conn(parts.scheme, parts.netloc)
        try:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _DeadlineExceeded()
            conn.timeout = min(self.timeout, left)  # used when it connects
            if conn.sock is not None:
                self._arm(conn.sock, deadline)
            conn.putrequest(method, target, skip_accept_encoding=True)
            hdrs = {"User-Agent": f"pwtool/{__version__}", **headers}
            if body is not None or method in ("PUT", "POST", "PATCH"):
                hdrs["Content-Length"] = str(len(body or b""))
            for k, v in hdrs.items():
                conn.putheader(k, v)
            conn.endheaders()
            sock = conn.sock  # the response keeps reading from it even if the connection lets go of it
            if body:
                total = len(body)
                for start in range(0, total, _SEND_PIECE):
                    self._arm(sock, deadline)
                    conn.send(body[start:start + _SEND_PIECE])
                    if progress is not None:
                        progress(label, min(start + _SEND_PIECE, total), total)
            self._arm(sock, deadline)
            resp = conn.getresponse()
            headers_out = {k.lower(): v for k, v in resp.getheaders()}
            length = resp.length if method != "HEAD" else None
            ok = 200 <= resp.status < 300
            cap = limit if ok else min(limit, _MAX_ERROR_BODY)
            if length is not None and length > cap and ok:
                # Refuse at once: do not read a body larger than we can use.
                self._drop(parts.scheme, parts.netloc)
                resp.close()
                return Response(resp.status, headers_out, b"", url, oversize=True, length=length)
            chunks: list[bytes] = []
            got = 0
            cut = False
            while True:
                self._arm(sock, deadline)
                piece = resp.read1(min(_READ_PIECE, cap + 1 - got))  # empty for HEAD
                if not piece:
                    break
                chunks.append(piece)
                got += len(piece)
                if got > cap:
                    cut = True
                    break
            data = b"".join(chunks)
            if not cut and length is not None and got < length:
                raise http.client.IncompleteRead(data, length - got)  # the registry hung up mid-body
            if not cut:
                data += resp.read()  # empty: this only marks the response complete, so the connection is reusable
            if cut:
                self._drop(parts.scheme, parts.netloc)
                resp.close()
                if not ok:
                    data = data[:cap]
            elif resp.will_close:
                self._drop(parts.scheme, parts.netloc)
            return Response(resp.status, headers_out, data, url, oversize=cut and ok, length=length)
        except BaseException:
            self._drop(parts.scheme, parts.netloc)
            raise

    def _network_error(self, exc: Exception, url: str, what: str = "", attempts: int = 0) -> RegistryError:
        host = _host(url)
        doing = f" ({what})" if what else ""
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
        tries = f"; tried {attempts} time{'s' if attempts != 1 else ''}" if attempts else ""
        if isinstance(exc, TimeoutError):
            return RegistryError(
                f"registry {host} did not answer within {_seconds(self.timeout)} for {self.describe}{doing}{tries}; "
                "check that the registry is up and reachable, or raise --timeout"
            )
        return RegistryError(f"network error talking to {host} for {self.describe}{doing}: {exc}{tries}")

    def _too_slow(self, url: str, what: str, budget: float, last: str) -> RegistryError:
        cause = f"; last problem: {last}" if last else ""
        return RegistryError(
            f"registry {_host(url)} did not finish {what or 'a request'} for {self.describe} within "
            f"{_seconds(budget)} (it is stalled or sending too slowly{cause}); check the network and the "
            f"registry, or raise --timeout (each request may take {DEADLINE_FACTOR} x --timeout, plus 1 s per "
            f"{DEADLINE_BYTES_PER_SECOND // 1024} KiB of a blob)"
        )

    def _retry_notice(self, url: str, what: str, cause: str, attempt: int, delay: float) -> None:
        doing = f" ({what})" if what else ""
        wait = f" in {_seconds(delay)}" if delay >= 1 else ""
        self._notice(f"registry {_host(url)}{doing}: {cause}; retrying{wait} ({attempt + 1} of {self.retries})")

    def _pause(self, delay: float, deadline: float) -> None:
        self.sleep(max(0.0, min(delay, deadline - time.monotonic())))

    # -- one request with redirects, auth and retries ------------------------------------
    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None,
        body: bytes | None = None, progress: Progress | None = None, label: str = "",
        limit: int = MAX_RESPONSE, what: str = "", expect: int = 0,
    ) -> Response:
        """Send a request; handles 401 challenges, redirects, and transient errors.

        ``limit`` bounds the answer's body (see ``Response.oversize``); ``what`` names the request in
        notices and errors. The whole request, retries included, must finish within
        ``deadline_for(len(body) + expect)`` seconds.
        """
        url = self.url(path)
        budget = self.deadline_for(len(body or b"") + expect)
        deadline = time.monotonic() + budget
        attempt = 0
        authed_once = False
        redirects = 0
        last = ""
        while True:
            hdrs = dict(headers or {})
            same_host = _host(url) == self.registry
            if self._auth and same_host:
                hdrs["Authorization"] = self._auth
            try:
                resp = self._send_once(method, url, hdrs, body, progress, label, limit=limit, deadline=deadline)
            except _DeadlineExceeded:
                raise self._too_slow(url, what, budget, last) from None
            except ssl.SSLCertVerificationError as exc:
                raise self._network_error(exc, url, what) from exc
            except ssl.SSLError as exc:
                if same_host and self.scheme == "https" and self.insecure and url.startswith("https://"):
                    # The registry speaks plain HTTP: --insecure allows falling back (not a retry).
                    self.scheme = "http"
                    url = url.replace("https://", "http://", 1)
                    continue
                if same_host and self.scheme == "https" and "WRONG_VERSION_NUMBER" in str(exc):
                    raise RegistryError(
                        f"registry {self.registry} answers plain HTTP, not HTTPS, for {self.describe}; "
                        "pass --insecure to use plain HTTP"
                    ) from exc
                raise self._network_error(exc, url, what) from exc
            except ConnectionRefusedError as exc:
                raise self._network_error(exc, url, what) from exc
            except (OSError, http.client.HTTPException) as exc:
                timed_out = isinstance(exc, TimeoutError)
                last = (f"no answer within {_seconds(self.timeout)}" if timed_out
                        else f"network error: {exc or type(exc).__name__}")
                if time.monotonic() >= deadline:
                    raise self._too_slow(url, what, budget, last) from exc
                if attempt < self.retries:
                    delay = self.backoff * (2 ** attempt)
                    cause = f"did not answer within {_seconds(self.timeout)}" if timed_out else last
                    self._retry_notice(url, what, cause, attempt, delay)
                    self._pause(delay, deadline)
                    attempt += 1
                    continue
                raise self._network_error(exc, url, what, attempt + 1) from exc
            if resp.status in _REDIRECTS:
                location = resp.header("location")
                if not location:
                    raise RegistryError(
                        f"registry {_host(url)} answered HTTP {resp.status} (a redirect) without a Location header "
                        f"for {self.describe}{f' ({what})' if what else ''}: a redirect without a Location header "
                        "leads nowhere; the registry or a proxy in front of it is misconfigured",
                        status=resp.status)
                if redirects >= _MAX_REDIRECTS:
                    raise RegistryError(
                        f"too many redirects ({redirects + 1}) from {self.registry} for {self.describe}"
                        f"{f' ({what})' if what else ''}; the last one pointed to {location[:200]}; the registry "
                        "or a proxy in front of it is misconfigured (a redirect loop?)", status=resp.status)
                url = urllib.parse.urljoin(url, location)
                if resp.status == 303:
                    method, body = "GET", None
                redirects += 1
                continue
            if resp.status == 401 and same_host and not authed_once:
                authed_once = True
                self._authenticate(resp, deadline, budget, last)
                continue
            if resp.status in _TRANSIENT and attempt < self.retries:
                delay = self.backoff * (2 ** attempt)
                retry_after = resp.header("retry-after")
                if retry_after.isdigit():
                    delay = max(delay, min(float(retry_after), 30.0))
                last = f"HTTP {resp.status}"
                if time.monotonic() + delay >= deadline:
                    return resp  # no time left to retry: report this answer
                self._retry_notice(url, what, f"answered HTTP {resp.status}", attempt, delay)
                self._pause(delay, deadline)
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

    def _authenticate(self, resp: Response, deadline: float, budget: float, last: str) -> None:
        """Answer a 401's challenge, within the request's ``deadline`` (``budget`` and ``last``, its last
        problem so far, are for the message if the deadline passes)."""
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
            self._auth = "Bearer " + self._fetch_token(params, deadline, budget, last)
        else:
            raise AuthError(f"registry {self.registry} asks for unsupported auth scheme {scheme!r} for {self.describe}")

    def _fetch_token(self, params: dict[str, str], deadline: float, budget: float, last: str) -> str:
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
        what = "fetching a token"
        while True:
            try:
                resp = self._send_once("GET", url, hdrs, None, None, "", deadline=deadline)
            except _DeadlineExceeded:
                raise self._too_slow(url, what, budget, last) from None
            except ssl.SSLError as exc:
                raise self._network_error(exc, url, what) from exc
            except (OSError, http.client.HTTPException) as exc:
                if attempt < self.retries and not isinstance(exc, ConnectionRefusedError):
                    delay = self.backoff * (2 ** attempt)
                    last = f"network error: {exc or type(exc).__name__}"
                    self._retry_notice(url, what, last, attempt, delay)
                    self._pause(delay, deadline)
                    attempt += 1
                    continue
                raise self._network_error(exc, url, what, attempt + 1) from exc
            if resp.status in _TRANSIENT and attempt < self.retries:
                delay = self.backoff * (2 ** attempt)
                last = f"HTTP {resp.status}"
                self._retry_notice(url, what, f"answered HTTP {resp.status}", attempt, delay)
                self._pause(delay, deadline)
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

