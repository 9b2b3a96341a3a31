#!/usr/bin/env python3
"""Soak and fault run of the whole suite on this machine, for a person to run (not part of CI).

Starts two `m2m serve` instances on one fresh PostgreSQL database, the axum example on the
remote store (asking instance A) and the actix example on the SQL store (the same database),
drives mixed load at both examples while tokens are issued and revoked continuously through
both instances, and meanwhile restarts PostgreSQL, kills and restarts instance B, and cuts the
event stream (restarts instance A, which the axum example follows). Then it reports:

- requests served, by target and status;
- revoked tokens accepted after the bound (the examples' cache TTL plus a margin): must be 0;
- 401s for tokens that were active (a store failure must be a 503, never a 401): must be 0;
- the longest time a revocation took to be refused by both examples;
- 5xx by target, status and the fault under way;
- resident memory and open file descriptors of every process at the start and at the end.

Usage: scripts/soak.py [--minutes 10] [--postgres postgres://postgres@127.0.0.1:5432/postgres]
Needs: cargo, PostgreSQL on the given address (admin URL; a database is created and dropped),
psql, and `pg_ctlcluster` to restart PostgreSQL. Exits 1 when a must-be-zero count is not.
"""

import argparse
import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE_TTL_SECS = 10
BOUND = CACHE_TTL_SECS + 5
WORKERS = 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, headers=None, body=None, timeout=10):
    """(status, parsed JSON or None); status 0 when nothing answered."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
            try:
                return response.status, (json.loads(text) if text else None)
            except ValueError:
                return response.status, None
    except urllib.error.HTTPError as error:
        return error.code, None
    except (urllib.error.URLError, OSError, TimeoutError):
        return 0, None


class Process:
    """A child process whose stdout is read line by line in the background."""

    def __init__(self, name, args, env=None):
        self.name, self.args, self.env = name, args, env
        self.lines = []
        self.start()

    def start(self):
        env = dict(os.environ, **(self.env or {}))
        self.proc = subprocess.Popen(
            self.args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc):
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix, seconds=60):
        deadline = time.time() + seconds
        while time.time() < deadline:
            for line in list(self.lines):
                if line.strip().startswith(prefix):
                    return line.strip()
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited early: {self.lines[-5:]}")
            time.sleep(0.05)
        raise SystemExit(f"{self.name} never printed {prefix!r}")

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def restart(self, sig=signal.SIGKILL):
        self.kill(sig)
        self.lines = []
        self.start()

    def usage(self):
        pid = self.proc.pid
        try:
            with open(f"/proc/{pid}/status") as status:
                rss = next(l.split()[1] for l in status if l.startswith("VmRSS:"))
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            return f"{int(rss) // 1024} MiB, {fds} fds"
        except (OSError, StopIteration):
            return "not running"


def wait_healthy(url, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if http("GET", url)[0] == 200:
            return
        time.sleep(0.1)
    raise SystemExit(f"{url} never became healthy")


class Soak:
    def __init__(self, minutes, postgres):
        self.minutes = minutes
        self.lock = threading.Lock()
        self.active = {}  # token -> issued at
        self.revoked = {}  # token -> revoked at
        self.revoking = set()  # tokens whose revocation was asked for, whatever the answer
        self.ids = {}  # token -> (tenant, id)
        self.counts = collections.Counter()
        self.errors = collections.Counter()
        self.revoked_accepted = []
        self.wrong_401 = []
        self.longest_revocation = 0.0
        self.fault = "none"
        self.stop = threading.Event()
        admin_base, _, _ = postgres.rpartition("/")
        self.database = f"m2m_soak_{int(time.time())}"
        self.admin_url = postgres
        self.database_url = f"{admin_base}/{self.database}"

    # -- setup -------------------------------------------------------------------------------

    def start(self):
        subprocess.run(["cargo", "build", "--release", "--bin", "m2m", "--example", "axum",
                        "--example", "actix"], cwd=ROOT, check=True)
        subprocess.run(["psql", self.admin_url, "-qc", f'CREATE DATABASE "{self.database}"'],
                       check=True)
        release = os.path.join(ROOT, "target", "release")
        self.ports = {name: free_port() for name in ("a", "b", "axum", "actix")}
        serve = lambda port: [os.path.join(release, "m2m"), "serve", "--database-url",
                              self.database_url, "--listen", f"127.0.0.1:{port}"]
        self.processes = []
        self.a = Process("m2m A", serve(self.ports["a"]))
        self.processes.append(self.a)
        self.admin = self.a.wait_for("m2m_at_")
        self.a.wait_for("m2m listening on")
        self.b = Process("m2m B", serve(self.ports["b"]))
        self.processes.append(self.b)
        self.b.wait_for("m2m listening on")
        self.base = {n: f"http://127.0.0.1:{self.ports[n]}" for n in self.ports}
        status, body = http("POST", f"{self.base['a']}/v1/tenants/m2m/tokens",
                            {"x-api-key": self.admin},
                            {"expires": "7d", "scopes": ["m2m:introspect"],
                             "description": "soak resource server"})
        assert status == 201, status
        example_env = {"M2M_CACHE_TTL_SECS": str(CACHE_TTL_SECS)}
        self.axum = Process("axum example", [os.path.join(release, "examples", "axum")], dict(
            example_env, M2M_STORE=self.base["a"], M2M_INTROSPECT_TOKEN=body["token"],
            M2M_LISTEN=f"127.0.0.1:{self.ports['axum']}"))
        self.actix = Process("actix example", [os.path.join(release, "examples", "actix")], dict(
            example_env, M2M_STORE=self.database_url,
            M2M_LISTEN=f"127.0.0.1:{self.ports['actix']}"))
        self.processes += [self.axum, self.actix]
        for name in ("axum", "actix"):
            wait_healthy(f"{self.base[name]}/health")
        self.usage_at_start = {p.name: p.usage() for p in self.processes}

    def stop_all(self):
        for process in self.processes:
            process.kill(signal.SIGTERM)
        subprocess.run(["psql", self.admin_url, "-qc",
                        f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'], check=False)

    # -- the load ----------------------------------------------------------------------------

    def issue(self):
        instance = random.choice(["a", "b"])
        status, body = http("POST", f"{self.base[instance]}/v1/tenants/acme/tokens",
                            {"x-api-key": self.admin},
                            {"expires": "1d", "scopes": ["reports:read"]})
        if status != 201:
            return None
        with self.lock:
            self.active[body["token"]] = time.time()
            self.ids[body["token"]] = body["id"]
        return body["token"]

    def revoke(self, token):
        # From the moment it is asked for, a revocation may take effect: a 401 is then right.
        with self.lock:
            self.revoking.add(token)
        instance = random.choice(["a", "b"])
        status, _ = http("DELETE", f"{self.base[instance]}/v1/tenants/acme/tokens/"
                         f"{self.ids[token]}", {"x-api-key": self.admin})
        if status == 204:
            with self.lock:
                self.active.pop(token, None)
                self.revoked[token] = time.time()
            return True
        return False

    def use(self, target, token):
        started = time.time()
        status, _ = http("GET", f"{self.base[target]}/v1/reports", {"x-api-key": token})
        ended = time.time()
        with self.lock:
            self.counts[(target, status)] += 1
            revoked_at = self.revoked.get(token)
            if status == 200 and revoked_at is not None and started - revoked_at > BOUND:
                self.revoked_accepted.append((target, round(started - revoked_at, 1), self.fault))
            if status == 401 and revoked_at is None and token not in self.revoking:
                self.wrong_401.append((target, self.fault))
            if status >= 500 or status == 0:
                self.errors[(target, status, self.fault)] += 1
        return status, ended

    def worker(self):
        while not self.stop.is_set():
            with self.lock:
                pool = list(self.active) + random.sample(list(self.revoked),
                                                          min(3, len(self.revoked)))
            if not pool:
                time.sleep(0.05)
                continue
            self.use(random.choice(["axum", "actix"]), random.choice(pool))

    def churn(self):
        while not self.stop.is_set():
            token = self.issue()
            with self.lock:
                too_many = len(self.active) > 200
                victim = random.choice(list(self.active)) if too_many or random.random() < 0.4 \
                    and self.active else None
            if victim:
                self.revoke(victim)
            time.sleep(0.02 if token else 0.5)

    def prober(self):
        """Times how long a revocation takes to be refused by both examples."""
        while not self.stop.is_set():
            token = self.issue()
            if not token:
                time.sleep(1)
                continue
            for target in ("axum", "actix"):
                self.use(target, token)
            if not self.revoke(token):
                time.sleep(1)
                continue
            revoked_at = self.revoked[token]
            pending = {"axum", "actix"}
            while pending and time.time() - revoked_at < 60 and not self.stop.is_set():
                for target in list(pending):
                    status, ended = self.use(target, token)
                    if status == 401:
                        pending.discard(target)
                        with self.lock:
                            self.longest_revocation = max(self.longest_revocation,
                                                          ended - revoked_at)
                time.sleep(0.05)
            time.sleep(2)

    def faults(self):
        total = self.minutes * 60
        plan = [
            (0.25, "PostgreSQL restart", self.restart_postgres),
            (0.50, "instance B killed and restarted", self.restart_b),
            (0.75, "event stream cut (instance A restarted)", self.restart_a),
        ]
        start = time.time()
        for at, name, action in plan:
            while time.time() - start < at * total:
                if self.stop.wait(0.5):
                    return
            print(f"[{int(time.time() - start)} s] fault: {name}", flush=True)
            self.fault = name
            action()
            self.fault = "none"

    def restart_postgres(self):
        clusters = os.listdir("/etc/postgresql")
        for version in clusters:
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main",
                            "restart"], check=False)
        time.sleep(5)

    def restart_b(self):
        self.b.restart(signal.SIGKILL)
        self.b.wait_for("m2m listening on")
        time.sleep(5)

    def restart_a(self):
        self.a.restart(signal.SIGTERM)
        self.a.wait_for("m2m listening on")
        time.sleep(5)

    # -- the run -----------------------------------------------------------------------------

    def run(self):
        self.processes = []
        try:
            self.start()
            threads = [threading.Thread(target=self.worker) for _ in range(WORKERS)]
            threads += [threading.Thread(target=self.churn), threading.Thread(target=self.prober),
                        threading.Thread(target=self.faults)]
            for thread in threads:
                thread.start()
            self.stop.wait(self.minutes * 60)
            self.stop.set()
            for thread in threads:
                thread.join()
            self.usage_at_end = {p.name: p.usage() for p in self.processes}
        finally:
            self.stop.set()
            self.stop_all()
        return self.report()

    def report(self):
        served = sum(n for (_, status), n in self.counts.items() if status != 0)
        print(f"\n== soak report: {self.minutes} min, cache TTL {CACHE_TTL_SECS} s, "
              f"bound {BOUND} s")
        print(f"requests served: {served}")
        for (target, status), n in sorted(self.counts.items()):
            print(f"  {target:6} {status or 'no answer'}: {n}")
        print(f"tokens issued: {len(self.ids)}, revoked: {len(self.revoked)}")
        print(f"revoked tokens accepted after the bound: {len(self.revoked_accepted)}"
              f" {self.revoked_accepted[:5]}")
        print(f"401s that should have been 503s: {len(self.wrong_401)} {self.wrong_401[:5]}")
        print(f"longest revocation until refused by both examples: "
              f"{self.longest_revocation:.2f} s")
        print("5xx (and no answer) by target, status and fault:")
        for (target, status, fault), n in sorted(self.errors.items()):
            print(f"  {target:6} {status or 'no answer'} during {fault}: {n}")
        print("memory and file descriptors (start -> end):")
        for name in self.usage_at_start:
            print(f"  {name}: {self.usage_at_start[name]} -> {self.usage_at_end.get(name)}")
        return 0 if not self.revoked_accepted and not self.wrong_401 else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--postgres", default=os.environ.get(
        "M2M_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    sys.exit(Soak(args.minutes, args.postgres).run())


if __name__ == "__main__":
    main()
