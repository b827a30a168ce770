"""A stand-in for Sign in with Apple, for the tests: Apple's endpoints as documented
(discovery, keys, authorize with response_mode=form_post, token with the client secret in
the body) on a local port. It checks the client secret Tollgate mints with PyJWT, as
Apple would: an ES256 JWT signed by the team's key (kid), iss = team, sub = client,
aud = issuer, at most six months long. Its ID tokens are RS256 with `email_verified` as
the string "true", as Apple's are.

Environment: CLIENT_ID, TEAM_ID, KEY_ID, REDIRECT_URI, EMAIL, SUBJECT. Prints one JSON
line, {"base": ..., "private_key": <the team's .p8 PEM>}, then serves until killed.
GET /stats says what the token endpoint saw.
"""

import base64
import hashlib
import html
import json
import os
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

CLIENT_ID = os.environ["CLIENT_ID"]
TEAM_ID = os.environ["TEAM_ID"]
KEY_ID = os.environ["KEY_ID"]
REDIRECT_URI = os.environ["REDIRECT_URI"]
EMAIL = os.environ["EMAIL"]
SUBJECT = os.environ["SUBJECT"]

# The key the developer account hands out (Tollgate signs client secrets with it).
team_key = ec.generate_private_key(ec.SECP256R1())
team_pem = team_key.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
).decode()
# Apple's own ID-token key.
signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SIGNING_KID = "fake-apple-1"

lock = threading.Lock()
codes = {}  # code -> what the authorization request said
stats = {"token_requests": 0, "issued": 0, "refused": [], "secret_claims": None}


def refuse(why):
    with lock:
        stats["refused"].append(why)
    return 400, {"error": why}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def base(self):
        return f"http://localhost:{self.server.server_port}"

    def send(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        base = self.base()
        if url.path == "/.well-known/openid-configuration":
            self.send(200, {
                "issuer": base,
                "authorization_endpoint": f"{base}/auth/authorize",
                "token_endpoint": f"{base}/auth/token",
                "jwks_uri": f"{base}/auth/keys",
                "response_types_supported": ["code"],
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "name"],
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
                "claims_supported": ["aud", "email", "email_verified", "exp", "iat",
                                     "is_private_email", "iss", "nonce", "sub"],
            })
        elif url.path == "/auth/keys":
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
            jwk.update({"kid": SIGNING_KID, "use": "sig", "alg": "RS256"})
            self.send(200, {"keys": [jwk]})
        elif url.path == "/auth/authorize":
            self.authorize(q)
        elif url.path == "/stats":
            with lock:
                self.send(200, stats)
        else:
            self.send(404, {"error": "not_found"})

    def authorize(self, q):
        # Apple: name and email are only given with response_mode=form_post.
        problems = [
            k for k, ok in [
                ("client_id", q.get("client_id") == CLIENT_ID),
                ("redirect_uri", q.get("redirect_uri") == REDIRECT_URI),
                ("response_type", q.get("response_type") == "code"),
                ("response_mode", q.get("response_mode") == "form_post"),
                ("scope", "email" in q.get("scope", "").split()),
                ("state", bool(q.get("state"))),
                ("nonce", bool(q.get("nonce"))),
            ] if not ok
        ]
        if problems:
            self.send(400, f"invalid_request: {', '.join(problems)}".encode(), "text/plain")
            return
        code = secrets.token_urlsafe(24)
        with lock:
            codes[code] = {
                "nonce": q["nonce"],
                "challenge": q.get("code_challenge"),
                "redirect_uri": q["redirect_uri"],
            }
        user = json.dumps({"name": {"firstName": "Ada", "lastName": "Lovelace"}, "email": EMAIL})
        esc = lambda v: html.escape(v, quote=True)  # noqa: E731
        action, state = esc(REDIRECT_URI), esc(q["state"])
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Sign in with Apple (test)</title></head><body><main>
<h1>Sign in with Apple (test)</h1>
<form method="post" action="{action}">
<input type="hidden" name="code" value="{esc(code)}">
<input type="hidden" name="state" value="{state}">
<input type="hidden" name="user" value="{esc(user)}">
<button type="submit">Continue</button></form>
<form method="post" action="{action}">
<input type="hidden" name="error" value="user_cancelled_authorize">
<input type="hidden" name="state" value="{state}">
<button type="submit">Cancel</button></form>
</main></body></html>"""
        self.send(200, page.encode(), "text/html; charset=utf-8")

    def do_POST(self):
        if urlparse(self.path).path != "/auth/token":
            self.send(404, {"error": "not_found"})
            return
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        with lock:
            stats["token_requests"] += 1
        status, body = self.token(form)
        self.send(status, body)

    def token(self, form):
        base = self.base()
        # Apple takes the client's credentials in the body only.
        if self.headers.get("Authorization"):
            return refuse("invalid_client: credentials in an Authorization header")
        if form.get("client_id") != CLIENT_ID:
            return refuse("invalid_client: client_id")
        secret = form.get("client_secret", "")
        try:
            header = jwt.get_unverified_header(secret)
            claims = jwt.decode(
                secret,
                team_key.public_key(),
                algorithms=["ES256"],
                audience=base,
                issuer=TEAM_ID,
                options={"require": ["iss", "sub", "aud", "iat", "exp"]},
            )
        except jwt.PyJWTError as e:
            return refuse(f"invalid_client: {e}")
        if header.get("kid") != KEY_ID or claims["sub"] != CLIENT_ID:
            return refuse("invalid_client: kid or sub")
        if claims["exp"] - claims["iat"] > 15777000:
            return refuse("invalid_client: longer than six months")
        if form.get("grant_type") != "authorization_code":
            return refuse("unsupported_grant_type")
        with lock:
            stats["secret_claims"] = {"header": header, "claims": claims}
            grant = codes.pop(form.get("code", ""), None)
        if grant is None:
            return refuse("invalid_grant: unknown or spent code")
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return refuse("invalid_grant: redirect_uri")
        if grant["challenge"]:
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["challenge"]:
                return refuse("invalid_grant: code_verifier")
        now = int(time.time())
        id_token = jwt.encode(
            {
                "iss": base, "aud": CLIENT_ID, "sub": SUBJECT, "iat": now, "exp": now + 600,
                "nonce": grant["nonce"], "nonce_supported": True, "auth_time": now,
                "email": EMAIL, "email_verified": "true", "is_private_email": "false",
            },
            signing_key,
            algorithm="RS256",
            headers={"kid": SIGNING_KID},
        )
        with lock:
            stats["issued"] += 1
        return 200, {
            "access_token": secrets.token_urlsafe(24), "token_type": "Bearer",
            "expires_in": 3600, "refresh_token": secrets.token_urlsafe(24),
            "id_token": id_token,
        }


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(json.dumps({"base": f"http://localhost:{server.server_port}", "private_key": team_pem}),
      flush=True)
server.serve_forever()
