#!/usr/bin/env python3
"""A tiny Docker registry token server (Python stdlib + the openssl CLI).

    token-server.py --key KEY.pem --cert CERT.pem --issuer ISSUER
                    --service SERVICE [--listen 127.0.0.1:0]
                    [--user clip:clip-secret ...] [--anonymous-pull]
                    [--header x5c|kid|both] [--expires-in 60] [--log FILE]

Implements the token endpoint of the Docker registry token-auth spec, the
realm a registry configured with `auth: token:` sends clients to:

  GET /token?service=S&scope=repository:NAME:pull,push[&scope=...]
      Authorization: Basic base64(user:password)
  POST /token   (OAuth2 form: grant_type=password, username, password,
                 service, scope, client_id; as `docker login` does)

Answers 200 with JSON {"token", "access_token", "expires_in", "issued_at"}
(plus "refresh_token" for the OAuth2 POST).  The token is a JWT signed with
RS256; python has no RSA, so the signature comes from
`openssl dgst -sha256 -sign KEY`.  Its header carries the certificate chain
in `x5c` (base64 DER), and/or `kid` = the libtrust key fingerprint of the
public key, which is what docker/distribution 2.8's token access controller
looks up (x5c first, then jwk, then kid against the keys of the
rootcertbundle).  Claims: iss, sub, aud (a string: 2.8 rejects a list),
exp, nbf, iat, jti, access=[{type, name, actions}].

Rules: valid Basic credentials get every action they ask for (pull, push,
delete, "*"); a wrong user or password is 401; a request without
credentials is 401 too unless --anonymous-pull, which then gets "pull"
only (like Docker Hub's anonymous tokens).  A wrong `service` is 400.

Prints "listening on HOST:PORT" as its first stdout line; --log appends one
line per request (method, user, scopes, status).
"""

import argparse
import base64
import hashlib
import http.server
import json
import socketserver
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pem_to_der_chain(pem_text):
    """All certificates of a PEM file as DER bytes."""
    ders, cur = [], None
    for line in pem_text.splitlines():
        line = line.strip()
        if line == "-----BEGIN CERTIFICATE-----":
            cur = []
        elif line == "-----END CERTIFICATE-----":
            ders.append(base64.b64decode("".join(cur)))
            cur = None
        elif cur is not None:
            cur.append(line)
    return ders


def libtrust_kid(public_der):
    """libtrust's key ID: sha256 of the DER SubjectPublicKeyInfo, first 240
    bits, base32 without padding, groups of 4 joined with ':'."""
    digest = hashlib.sha256(public_der).digest()[:30]
    s = base64.b32encode(digest).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


class Signer:
    def __init__(self, key, cert, mode):
        self.key = key
        with open(cert) as f:
            chain = pem_to_der_chain(f.read())
        if not chain:
            raise SystemExit("token-server: no certificate in %s" % cert)
        pub = subprocess.run(["openssl", "pkey", "-in", key, "-pubout",
                              "-outform", "DER"], check=True,
                             stdout=subprocess.PIPE).stdout
        self.header = {"typ": "JWT", "alg": "RS256"}
        if mode in ("x5c", "both"):
            self.header["x5c"] = [base64.b64encode(d).decode() for d in chain]
        if mode in ("kid", "both"):
            self.header["kid"] = libtrust_kid(pub)
        self.lock = threading.Lock()

    def sign(self, claims):
        head = b64url(json.dumps(self.header, separators=(",", ":")).encode())
        body = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = (head + "." + body).encode()
        r = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                           input=signing_input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, check=True)
        return head + "." + body + "." + b64url(r.stdout)


ALL_ACTIONS = ("pull", "push", "delete", "*")


def parse_scope(scope):
    """'repository:NAME:pull,push' -> (type, name, [actions]).  NAME may
    contain ':' (a registry host with a port), so split from both ends."""
    typ, rest = scope.split(":", 1)
    name, actions = rest.rsplit(":", 1)
    return typ, name, [a for a in actions.split(",") if a]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "clip-token-server/1"

    def log_message(self, fmt, *args):  # quiet: we keep our own log
        pass

    def _log(self, user, scopes, status):
        cfg = self.server.cfg
        if cfg.log:
            with self.server.log_lock, open(cfg.log, "a") as f:
                f.write("%s %s user=%s scopes=%s status=%d\n" % (
                    self.command, self.path.split("?")[0], user or "-",
                    ",".join(scopes) or "-", status))

    def _reply(self, status, obj, extra=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _basic(self):
        h = self.headers.get("Authorization", "")
        if not h.lower().startswith("basic "):
            return None
        try:
            user, _, pw = base64.b64decode(h[6:].strip()).decode().partition(":")
        except Exception:
            return ("", "")
        return (user, pw)

    def _issue(self, creds, service, scopes, oauth):
        cfg = self.server.cfg
        user = None
        if creds is not None:
            if cfg.users.get(creds[0]) != creds[1] or creds[0] == "":
                self._log(creds[0], scopes, 401)
                return self._reply(401, {"errors": [{
                    "code": "UNAUTHORIZED",
                    "message": "authentication failed"}]},
                    {"WWW-Authenticate": 'Basic realm="clip-token-server"'})
            user = creds[0]
        elif not cfg.anonymous_pull:
            self._log(None, scopes, 401)
            return self._reply(401, {"errors": [{
                "code": "UNAUTHORIZED",
                "message": "authentication required"}]},
                {"WWW-Authenticate": 'Basic realm="clip-token-server"'})
        if service != cfg.service:
            self._log(user, scopes, 400)
            return self._reply(400, {"errors": [{
                "code": "DENIED", "message": "unknown service %r" % service}]})
        access = []
        for s in scopes:
            try:
                typ, name, actions = parse_scope(s)
            except ValueError:
                self._log(user, scopes, 400)
                return self._reply(400, {"errors": [{
                    "code": "DENIED", "message": "bad scope %r" % s}]})
            if user is None:
                granted = [a for a in actions if a == "pull"]
            else:
                granted = [a for a in actions if a in ALL_ACTIONS]
            access.append({"type": typ, "name": name, "actions": granted})
        now = int(time.time())
        claims = {
            "iss": cfg.issuer, "sub": user or "", "aud": service,
            "exp": now + cfg.expires_in, "nbf": now - 1, "iat": now,
            "jti": uuid.uuid4().hex, "access": access,
        }
        token = self.server.signer.sign(claims)
        body = {"token": token, "access_token": token,
                "expires_in": cfg.expires_in,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                           time.gmtime(now))}
        if oauth and user is not None:
            body["refresh_token"] = "refresh-" + user
        self._log(user, scopes, 200)
        self._reply(200, body)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path != "/token":
            return self._reply(404, {"errors": [{"code": "NOT_FOUND"}]})
        q = urllib.parse.parse_qs(u.query)
        scopes = []
        for s in q.get("scope", []):
            scopes.extend(s.split(" "))
        self._issue(self._basic(), q.get("service", [""])[0],
                    [s for s in scopes if s], False)

    def do_POST(self):
        u = urllib.parse.urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        if u.path != "/token":
            return self._reply(404, {"errors": [{"code": "NOT_FOUND"}]})
        grant = form.get("grant_type", [""])[0]
        creds = None
        if grant == "password":
            creds = (form.get("username", [""])[0],
                     form.get("password", [""])[0])
        elif grant == "refresh_token":
            tok = form.get("refresh_token", [""])[0]
            user = tok[len("refresh-"):] if tok.startswith("refresh-") else ""
            creds = (user, self.server.cfg.users.get(user, "\0"))
        scopes = []
        for s in form.get("scope", []):
            scopes.extend(s.split(" "))
        self._issue(creds, form.get("service", [""])[0],
                    [s for s in scopes if s], True)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--key", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--user", action="append", default=[],
                    help="USER:PASSWORD (default clip:clip-secret)")
    ap.add_argument("--anonymous-pull", action="store_true")
    ap.add_argument("--header", choices=("x5c", "kid", "both"), default="x5c")
    ap.add_argument("--expires-in", type=int, default=60)
    ap.add_argument("--log")
    cfg = ap.parse_args()
    cfg.users = dict(u.split(":", 1) for u in (cfg.user or ["clip:clip-secret"]))
    host, port = cfg.listen.rsplit(":", 1)
    srv = Server((host, int(port)), Handler)
    srv.cfg = cfg
    srv.signer = Signer(cfg.key, cfg.cert, cfg.header)
    srv.log_lock = threading.Lock()
    print("listening on %s:%d" % srv.server_address[:2], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
