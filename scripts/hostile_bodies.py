#!/usr/bin/env python3
"""Hostile bodies at every endpoint of the token service that reads one, on the release build.

Builds `target/release/m2m`, starts it on a fresh SQLite file on 127.0.0.1, then sends each
body of the table below (oversized, many fields, repeated fields, deep nesting, long lists) and
prints, per case, the status and the slowest and median wall time of the whole exchange
(connect, send, answer) over `--repeat` runs. Exits 1 when an answer is not the one expected
or takes `--limit-ms` or more (default 1000): every such body must be refused in well under a
second.

Usage: scripts/hostile_bodies.py [--repeat 5] [--limit-ms 1000]
Needs: cargo. Not part of CI: a person runs it and reads the table.
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(port, method, path, headers, body):
    """(status, answer bytes, seconds) of one exchange on a fresh connection."""
    start = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        status = response.status
    except (BrokenPipeError, ConnectionResetError):
        # The service answered and closed before the whole body was sent: read what it said.
        status, answer = read_early_answer(connection)
    finally:
        connection.close()
    return status, answer, time.perf_counter() - start


def read_early_answer(connection):
    try:
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return 0, b""


def json_body(value):
    return json.dumps(value, separators=(",", ":")).encode()


def filled(prefix, item, suffix, size):
    """prefix + item, item, ... + suffix, as long as it stays within size bytes."""
    count = (size - len(prefix) - len(suffix)) // (len(item) + 1)
    return prefix + b",".join([item] * count) + suffix, count


class Service:
    def __init__(self):
        subprocess.run(["cargo", "build", "--release", "--bin", "m2m"], cwd=ROOT, check=True)
        self.dir = tempfile.TemporaryDirectory()
        self.port = free_port()
        self.lines = []
        self.proc = subprocess.Popen(
            [os.path.join(ROOT, "target", "release", "m2m"), "serve", "--database-url",
             f"sqlite://{self.dir.name}/m2m.db", "--listen", f"127.0.0.1:{self.port}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        threading.Thread(target=self._read, daemon=True).start()
        self.admin = self.wait_for("m2m_at_")
        self.wait_for("m2m listening on")

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def wait_for(self, prefix, seconds=60):
        deadline = time.time() + seconds
        while time.time() < deadline:
            for line in list(self.lines):
                if line.startswith(prefix):
                    return line
            if self.proc.poll() is not None:
                raise SystemExit(f"m2m exited early: {self.lines[-5:]}")
            time.sleep(0.05)
        raise SystemExit(f"m2m never printed {prefix!r}")

    def create(self, tenant, body):
        status, answer, _ = send(self.port, "POST", f"/v1/tenants/{tenant}/tokens",
                                 {"x-api-key": self.admin, "content-type": JSON},
                                 json_body(body))
        if status != 201:
            raise SystemExit(f"creating a token: {status} {answer[:200]!r}")
        return json.loads(answer)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)
        self.dir.cleanup()


def cases(service):
    introspector = service.create("m2m", {"expires": "1d", "scopes": ["m2m:introspect"]})["token"]
    credential = service.create("acme", {"expires": "1d", "type": "client_credentials"})
    client_id = credential["client_id"].encode()
    admin = {"x-api-key": service.admin}
    resource = {"x-api-key": introspector}
    kib = 1024

    nested = b"[" * (127 * kib)
    scopes, scope_count = filled(b'{"expires":"1d","scopes":[', b'"reports:read"', b"]}", 127 * kib)
    grantable, grantable_count = filled(
        b'{"grantable_scopes":[', b'{"name":"a:b","description":"x"}',
        b'],"api_tokens_visible":true,"personal_tokens_visible":true}', 127 * kib)
    permissions, permission_count = filled(
        b'{"tenant":"acme","user_id":"u","display_name":"U","role":"member","permissions":[',
        b'"reports:read"', b"]}", 127 * kib)
    uses, use_count = filled(b'{"uses":[', b'{"token_id":"tok_aaaaaaaaaaaaaaaaaaaa","used_at":1}',
                             b"]}", 250 * kib)

    return [
        # (endpoint, what, headers, body, statuses expected)
        ("POST /oauth/token", "300,000 empty fields (300 KB)", {"content-type": FORM},
         b"&" * 300_000, {413}),
        ("POST /oauth/token", "one field repeated 585 times (8 KiB)", {"content-type": FORM},
         b"grant_type=xy&" * 585, {400}),
        ("POST /oauth/token", "a 7 KiB client secret", {"content-type": FORM},
         b"grant_type=client_credentials&client_id=" + client_id + b"&client_secret="
         + b"A" * (7 * kib), {400, 401}),
        ("POST /oauth/token", "2 MB of percent escapes", {"content-type": FORM},
         b"%41" * 700_000, {413}),
        ("POST /oauth/introspect", "300,000 empty fields (300 KB)",
         dict(resource, **{"content-type": FORM}), b"&" * 300_000, {413}),
        ("POST /oauth/introspect", "one field repeated 740 times (8 KiB)",
         dict(resource, **{"content-type": FORM}), b"token=xyzw&" * 740, {400}),
        ("POST /oauth/introspect", "a 7 KiB token", dict(resource, **{"content-type": FORM}),
         b"token=m2m_at_" + b"A" * (7 * kib), {200}),
        ("POST /v1/tenants/acme/tokens", "300,000 scopes (4.5 MB)",
         dict(admin, **{"content-type": JSON}),
         json_body({"expires": "1d", "scopes": ["reports:read"] * 300_000}), {413}),
        ("POST /v1/tenants/acme/tokens", f"{scope_count:,} scopes (127 KiB)",
         dict(admin, **{"content-type": JSON}), scopes, {422}),
        ("POST /v1/tenants/acme/tokens", "127 KiB of nested arrays",
         dict(admin, **{"content-type": JSON}), nested, {400, 422}),
        ("POST /v1/tenants/acme/tokens", "a 127 KiB description",
         dict(admin, **{"content-type": JSON}),
         json_body({"expires": "1d", "description": "d" * (127 * kib)}), {422}),
        ("PUT /v1/settings", "127 KiB of nested objects", dict(admin, **{"content-type": JSON}),
         b'{"a":' * (25 * kib), {400, 422}),
        ("PUT /v1/settings", "2 MB body", dict(admin, **{"content-type": JSON}),
         b" " * 2_000_000, {413}),
        ("PUT /v1/tenants/acme/settings", "a 127 KiB token type",
         dict(admin, **{"content-type": JSON}),
         json_body({"token_type": "x" * (127 * kib)}), {422}),
        ("PUT /v1/settings/portal", f"{grantable_count:,} grantable scopes (127 KiB)",
         dict(admin, **{"content-type": JSON}), grantable, {422}),
        ("POST /v1/portal/sessions", f"{permission_count:,} permissions (127 KiB)",
         dict(admin, **{"content-type": JSON}), permissions, {422}),
        ("POST /v1/usage", f"{use_count:,} uses (250 KiB)",
         dict(resource, **{"content-type": JSON}), uses, {422}),
        ("POST /v1/usage", "a 300 KiB report", dict(resource, **{"content-type": JSON}),
         b" " * (300 * kib), {413}),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--limit-ms", type=float, default=1000)
    args = parser.parse_args()
    service = Service()
    failures = []
    try:
        rows = []
        for endpoint, what, headers, body, expected in cases(service):
            statuses, times = set(), []
            for _ in range(args.repeat):
                status, answer, seconds = send(service.port, endpoint.split()[0],
                                               endpoint.split()[1], headers, body)
                statuses.add(status)
                times.append(seconds * 1000)
            slowest, median = max(times), statistics.median(times)
            rows.append((endpoint, what, len(body), ",".join(map(str, sorted(statuses))),
                         slowest, median))
            if not statuses <= expected:
                failures.append(f"{endpoint} {what}: {sorted(statuses)}, expected "
                                f"{sorted(expected)}; last answer {answer[:200]!r}")
            if slowest >= args.limit_ms:
                failures.append(f"{endpoint} {what}: {slowest:.0f} ms")
        print(f"{'endpoint':<30} {'body':<40} {'bytes':>10} {'status':>6} "
              f"{'max ms':>8} {'median ms':>9}")
        for endpoint, what, size, status, slowest, median in rows:
            print(f"{endpoint:<30} {what:<40} {size:>10,} {status:>6} {slowest:>8.1f} "
                  f"{median:>9.1f}")
    finally:
        service.stop()
    for failure in failures:
        print("FAIL", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
