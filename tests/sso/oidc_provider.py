"""A small but real OpenID Connect provider for tests, served over HTTP on 127.0.0.1 in a thread.

It implements discovery, JWKS, an authorization endpoint (no UI: it signs in ``provider.user`` at once
and redirects back with a code) and a token endpoint that checks the client's credentials
(client_secret_basic or client_secret_post), the code, the redirect URI and the PKCE verifier, then
returns an RS256 ID token signed with PyJWT.

Attributes are knobs that make it misbehave for one test; set them before the request they affect:

- ``sign_with_other_key``: sign with a key that is not in the JWKS (same ``kid``);
- ``kid_override``: put this ``kid`` in the token header (one the JWKS does not have);
- ``alg``: ``"RS256"``/``"PS256"``/``"ES256"`` (the JWKS has an RSA and a P-256 key), ``"none"`` (unsigned)
  or ``"HS256"`` (HMAC keyed with the public key PEM, the classic key-confusion forgery);
- ``claim_overrides``: claims replacing the defaults (``iss``, ``aud``, ``nonce``, ``azp``...); ``DROP`` removes one;
- ``clock_offset``: seconds added to "now" for ``iat``/``exp``; ``lifetime``: seconds from ``iat`` to ``exp``;
- ``include_jti``; ``reuse_codes`` (a code may be redeemed again and yields the same ID token, for replays);
- ``discovery_omit``, ``discovery_overrides``, ``discovery_html``; ``delays`` (path → seconds before answering);
- ``token_error`` (answer the token request with this OAuth error); ``authorize_error`` (redirect with it);
- ``auth_methods``: token endpoint authentication methods accepted and advertised;
- ``send_iss``: add RFC 9207 ``iss`` to the authorization response.

``requests_seen`` lists (method, path) of every request; ``token_auth_used`` the client authentication of each
token request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

DROP = object()  # in claim_overrides: leave this claim out

CLIENT_ID = "bastion-web"
CLIENT_SECRET = "s3cret value/with+specials"  # exercises RFC 6749 form-encoding of basic auth


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class OIDCProvider:
    """An OpenID Connect provider on ``http://127.0.0.1:<port>``; use as a context manager."""

    def __init__(self, *, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = _new_key()
        self.kid = "key-1"
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        self.ec_kid = "ec-key-1"
        self.user: dict[str, Any] = {
            "sub": "00u1abcd",
            "email": "ada@acme.example",
            "email_verified": True,
            "given_name": "Ada",
            "family_name": "Lovelace",
            "groups": ["engineering", "admins"],
            "amr": ["pwd"],
        }
        # knobs
        self.sign_with_other_key = False
        self.kid_override: str | None = None
        self.alg = "RS256"
        self.claim_overrides: dict[str, Any] = {}
        self.clock_offset = 0
        self.lifetime = 300
        self.include_jti = True
        self.reuse_codes = False
        self.discovery_omit: set[str] = set()
        self.discovery_overrides: dict[str, Any] = {}
        self.discovery_html = False
        self.delays: dict[str, float] = {}
        self.token_error: str | None = None
        self.authorize_error: str | None = None
        self.auth_methods = ["client_secret_basic", "client_secret_post"]
        self.send_iss = False
        # records
        self.requests_seen: list[tuple[str, str]] = []
        self.token_auth_used: list[str] = []
        self._codes: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._other_key: rsa.RSAPrivateKey | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> OIDCProvider:
        handler = type("Handler", (_Handler,), {"provider": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="oidc-provider", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a "slow" knob
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OIDCProvider:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def issuer(self) -> str:
        assert self._server is not None, "start the provider first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def rotate_key(self) -> None:
        """Replace the signing key (and its kid): the JWKS only publishes the new one."""
        self.key = _new_key()
        self.kid = f"key-{secrets.token_hex(4)}"

    # --- documents -----------------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        document = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "PS256", "ES256"],
            "token_endpoint_auth_methods_supported": list(self.auth_methods),
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "email", "profile", "groups"],
        }
        document.update(self.discovery_overrides)
        for name in self.discovery_omit:
            document.pop(name, None)
        return document

    def jwks(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update(kid=self.kid, use="sig", alg="PS256" if self.alg == "PS256" else "RS256")
        ec_jwk = ECAlgorithm.to_jwk(self.ec_key.public_key(), as_dict=True)
        ec_jwk.update(kid=self.ec_kid, use="sig")
        return {"keys": [jwk, ec_jwk]}

    def id_token(self, *, nonce: str | None) -> str:
        """An ID token for ``self.user``, shaped by the knobs."""
        now = int(time.time()) + self.clock_offset
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + self.lifetime,
            "auth_time": now,
            **self.user,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if self.include_jti:
            claims["jti"] = secrets.token_hex(16)
        for name, value in self.claim_overrides.items():
            if value is DROP:
                claims.pop(name, None)
            else:
                claims[name] = value
        kid = self.kid_override or (self.ec_kid if self.alg == "ES256" else self.kid)

        if self.alg == "none":
            header = {"alg": "none", "typ": "JWT", "kid": kid}
            return f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}."
        if self.alg == "HS256":
            # Key confusion: HMAC keyed with the public key a careless verifier would pass as the "secret".
            header = {"alg": "HS256", "typ": "JWT", "kid": kid}
            signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
            public_pem = self.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{_b64url(signature)}"
        if self.alg == "ES256":
            return jwt.encode(claims, self.ec_key, algorithm="ES256", headers={"kid": kid})
        if self.sign_with_other_key:
            if self._other_key is None:
                self._other_key = _new_key()
            key = self._other_key
        else:
            key = self.key
        return jwt.encode(claims, key, algorithm=self.alg, headers={"kid": kid})

    # --- endpoints -----------------------------------------------------------------------------------

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or not redirect_uri:
            return 400, {"Content-Type": "text/plain"}, b"unknown client or no redirect_uri"
        if query.get("response_type") != "code" or "openid" not in query.get("scope", "").split():
            return 400, {"Content-Type": "text/plain"}, b"unsupported request"
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return 400, {"Content-Type": "text/plain"}, b"PKCE S256 required"
        answer: dict[str, str] = {}
        if self.authorize_error:
            answer["error"] = self.authorize_error
            answer["error_description"] = "The user cancelled the sign-in."
        else:
            code = secrets.token_urlsafe(24)
            with self._lock:
                self._codes[code] = {
                    "redirect_uri": redirect_uri,
                    "nonce": query.get("nonce"),
                    "code_challenge": query["code_challenge"],
                    "id_token": None,
                }
            answer["code"] = code
        if "state" in query:
            answer["state"] = query["state"]
        if self.send_iss:
            answer["iss"] = self.issuer
        parts = urlsplit(redirect_uri)
        location = urlunsplit(parts._replace(query=urlencode([*parse_qsl(parts.query), *answer.items()])))
        return 302, {"Location": location}, b""

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        # Client authentication: exactly one method, and one we advertise.
        if authorization.startswith("Basic "):
            method = "client_secret_basic"
            try:
                decoded = base64.b64decode(authorization[6:], validate=True).decode()
                raw_id, raw_secret = decoded.split(":", 1)
            except ValueError:
                return 401, {"error": "invalid_client"}
            client_id, client_secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        elif "client_secret" in form:
            method = "client_secret_post"
            client_id, client_secret = form.get("client_id", ""), form["client_secret"]
        else:
            method = "none"
            client_id, client_secret = form.get("client_id", ""), ""
        self.token_auth_used.append(method)
        if (
            method not in self.auth_methods
            or client_id != self.client_id
            or not hmac.compare_digest(client_secret, self.client_secret)
        ):
            return 401, {"error": "invalid_client", "error_description": "Client authentication failed."}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        if self.token_error:
            return 400, {"error": self.token_error, "error_description": "Refused by the test provider."}
        with self._lock:
            grant = self._codes.get(form.get("code", ""))
            if grant is not None and not self.reuse_codes:
                del self._codes[form["code"]]
        if grant is None:
            return 400, {"error": "invalid_grant", "error_description": "Unknown or used code."}
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri does not match."}
        verifier = form.get("code_verifier", "")
        if not verifier or _b64url(hashlib.sha256(verifier.encode()).digest()) != grant["code_challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed."}
        if grant["id_token"] is None or not self.reuse_codes:
            grant["id_token"] = self.id_token(nonce=grant["nonce"])
        return 200, {
            "access_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "expires_in": 3600,
            "id_token": grant["id_token"],
        }


class _Handler(BaseHTTPRequestHandler):
    provider: OIDCProvider

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _pause(self, path: str) -> None:
        delay = self.provider.delays.get(path)
        if delay:
            self.provider._stopping.wait(delay)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self.provider.requests_seen.append(("GET", parts.path))
        self._pause(parts.path)
        if parts.path == "/.well-known/openid-configuration":
            if self.provider.discovery_html:
                self._send(200, {"Content-Type": "text/html"}, b"<!doctype html><html><body>Sign in</body></html>")
            else:
                self._send_json(200, self.provider.discovery())
        elif parts.path == "/jwks":
            self._send_json(200, self.provider.jwks())
        elif parts.path == "/authorize":
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            self._send(*self.provider.authorize(query))
        else:
            self._send(404, {"Content-Type": "text/plain"}, b"not found")

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        self.provider.requests_seen.append(("POST", parts.path))
        self._pause(parts.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        if parts.path != "/token":
            self._send(404, {"Content-Type": "text/plain"}, b"not found")
            return
        form = dict(parse_qsl(body, keep_blank_values=True))
        self._send_json(*self.provider.token(form, self.headers.get("Authorization", "")))


def follow_authorize(url: str) -> dict[str, str]:
    """Play the browser: open the authorization URL and return the query of the redirect back to us."""
    response = requests.get(url, allow_redirects=False, timeout=5)
    assert response.status_code == 302, response.text
    return dict(parse_qsl(urlsplit(response.headers["Location"]).query))
