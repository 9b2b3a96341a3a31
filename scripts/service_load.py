#!/usr/bin/env python3
"""The token service under load with 100,000 and 1,000,000 stored tokens, on SQLite and PostgreSQL.

For each store (a SQLite file in a temporary directory; a fresh PostgreSQL database, dropped at
the end) and each size, the release `m2m serve`:

1. is started once on the empty store, so that the migrations run and the bootstrap admin
   token is printed (kept for the run), then stopped;
2. the tokens table is filled directly in SQL with synthetic rows (random 32-byte digests for
   the bulk, in one statement; plus `--distinct` rows whose tokens the script generates itself,
   at most half the rows, so that it can present them), then `ANALYZE`d. Every tenth row is a client credential (`cs`,
   with a client id), three in ten bearer tokens minted from it (`cc`), the rest access tokens;
   half the rows belong to the tenant `bulk`, the others to 199 tenants; a fifth of the access
   tokens and credentials are a user's; some are revoked, some never expire;
3. the service is started again, a few real tokens are issued through the API (an introspection
   credential, a client credential), and `wrk` loads it on loopback (`--latency`) with:
   - `introspect: same active token`: `POST /oauth/introspect` of one active token, over and
     over: after the first request every answer comes from the service's in-process cache;
   - `introspect: distinct unknown tokens`: a new well-formed token with a valid checksum per
     request (made by the wrk script), unknown to the store: each one misses the cache and
     costs one lookup by digest that finds nothing (malformed tokens are refused before the
     store, so they would measure nothing);
   - `introspect: distinct stored tokens`: a different stored, active token per request (from
     the `--distinct` rows): each one misses the cache and is looked up by digest in the store,
     and its use is then recorded in the background (`last_used_at`). The run lasts as long as
     the tokens last at the rate of the previous run (at most `--seconds`);
   - `token: client-credentials exchange`: `POST /oauth/token` with HTTP Basic: the credential
     check is cached after the first request, so this measures minting and storing a bearer
     token (an insert into the filled table, under the credential's revocation condition);
   - `list: first page` and `list: last page`: `GET /v1/tenants/bulk/tokens` (50 a page, the
     default), the first page and the page at the end of the tenant's rows, once by `offset=`
     (the store reads every row it skips) and once by `after=` with the cursor the page before
     it gave (the store seeks to it in the listing index);
   the stored-token run stops presenting tokens when they are spent (each is presented once, so
   every request misses the cache): its table row says how many requests it made in how long,
   and a run that spent them all before its end fails;
4. prints the table (store, rows, endpoint, requests/s, p50, p99, non-2xx answers) and the query
   plans of the store's lookups behind these endpoints (token by digest, tenant listing,
   client-credential lookup, the credential check of a minted bearer token, revoked
   credentials, usage update, bearer tokens of a revoked credential), with `EXPLAIN QUERY PLAN`
   on SQLite and `EXPLAIN (ANALYZE, BUFFERS)` on PostgreSQL, on the filled tables. A plan that
   reads the whole table (`SCAN tokens` / `Seq Scan on tokens`) is flagged and fails the run;
   on PostgreSQL, one that drops over 1,000 rows it read (`Rows Removed by Filter`) is marked.

Exits 1 when something fails: the service does not start or answers wrongly, wrk is missing or
sees errors, a plan scans the tokens table.

Usage: scripts/service_load.py [--sizes 100000,1000000] [--seconds 10] [--stores sqlite,postgres]
           [--connections 8] [--threads 2] [--distinct 300000] [--no-build]
           [--postgres postgres://postgres@127.0.0.1:5432/postgres]
Needs: cargo, wrk, psql and PostgreSQL on the given address (admin URL; a database is created and
dropped). Not part of CI: a person runs it and reads the table. On two shared vCPUs, wrk figures
move ±10 % run to run.
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SECRET_LEN, CHECKSUM_LEN = 43, 6
BIG_TENANT = "bulk"
PAGE = 50
NANOS = 1_000_000_000
DAY = 86_400 * NANOS

# ---------------------------------------------------------------------------------------------
# tokens, as core/src/token.rs makes them


def make_token(kind):
    """A well-formed token of this kind (`at`, `cc`, …) with a valid checksum."""
    chars = []
    while len(chars) < SECRET_LEN:
        # Bytes below 248 (4 × 62) map uniformly onto the alphabet, as in the core.
        chars += [BASE62[b % 62] for b in os.urandom(64) if b < 248]
    text = f"m2m_{kind}_" + "".join(chars[:SECRET_LEN])
    value = zlib.crc32(text.encode())
    digits = []
    for _ in range(CHECKSUM_LEN):
        digits.append(BASE62[value % 62])
        value //= 62
    return text + "".join(reversed(digits))


def digest(token):
    return hashlib.sha256(token.encode()).digest()


# ---------------------------------------------------------------------------------------------
# the service


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(port, method, path, headers=None, body=None):
    """(status, parsed JSON or raw bytes) of one exchange."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(answer)
    except ValueError:
        return response.status, answer


class Service:
    """`m2m serve` on one database URL; `admin` is the bootstrap token when this start made it."""

    def __init__(self, database_url):
        self.port = free_port()
        self.lines = []
        self.proc = subprocess.Popen(
            [os.path.join(ROOT, "target", "release", "m2m"), "serve", "--database-url",
             database_url, "--listen", f"127.0.0.1:{self.port}"],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for("m2m listening on")
        self.admin = next((l for l in self.lines if l.startswith("m2m_at_")), None)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def wait_for(self, prefix, seconds=120):
        deadline = time.time() + seconds
        while time.time() < deadline:
            for line in list(self.lines):
                if line.startswith(prefix):
                    return line
            if self.proc.poll() is not None:
                raise Failure(f"m2m exited early: {self.lines[-5:]}")
            time.sleep(0.05)
        raise Failure(f"m2m never printed {prefix!r}")

    def create(self, admin, tenant, body):
        status, answer = send(self.port, "POST", f"/v1/tenants/{tenant}/tokens",
                              {"x-api-key": admin, "content-type": JSON},
                              json.dumps(body).encode())
        if status != 201:
            raise Failure(f"creating a token in {tenant}: {status} {answer!r:.200}")
        return answer

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


class Failure(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# stores: schema-true synthetic rows, ANALYZE, and the plans of the store's lookups


def synthetic_columns(dialect):
    """SQL expressions of the columns of synthetic row `i` (1-based) of `n`, as
    stores/sql/migrations define them. Row i is in decade d = (i - 1) / 10; the decade's first row
    is a client credential, the next three bearer tokens minted from it, the rest access
    tokens; even decades belong to the tenant `bulk`."""
    sqlite = dialect == "sqlite"
    pad = (lambda v, w: f"printf('%0{w}d', {v})") if sqlite \
        else (lambda v, w: f"lpad(({v})::text, {w}, '0')")
    d = "((i - 1) / 10)"
    slot = "((i - 1) % 10)"
    kind = f"CASE WHEN {slot} = 0 THEN 'cs' WHEN {slot} <= 3 THEN 'cc' ELSE 'at' END"
    created = f"(:now - (:n - i) * {NANOS})"
    credential = f"'tok_L' || {pad(f'{d} * 10 + 1', 19)}"
    client_id = f"'m2m_ci_L' || {pad(d, 48)}"
    return {
        "id": f"'tok_L' || {pad('i', 19)}",
        "digest": "randomblob(32)" if sqlite
        else "sha256(convert_to(i::text || ':' || random()::text, 'UTF8'))",
        "stub": f"'m2m_' || ({kind}) || '_Load…'",
        "kind": kind,
        "tenant": f"CASE WHEN {d} % 2 = 0 THEN '{BIG_TENANT}' ELSE 'tenant-' || ({d} % 199) END",
        "user_id": f"CASE WHEN {slot} NOT IN (1, 2, 3) AND {d} % 5 = 4 "
                   f"THEN 'user-' || ({d} % 1000) END",
        "description": "'load ' || i",
        "scopes": "'[\"reports:read\"]'",
        "created_at": created,
        "expires_at": f"CASE WHEN {slot} BETWEEN 1 AND 3 THEN {created} + {3600 * NANOS} "
                      f"WHEN i % 4 = 0 THEN NULL ELSE {created} + {365 * DAY} END",
        "revoked_at": f"CASE WHEN i % 20 = 0 OR ({slot} = 0 AND {d} % 7 = 3) "
                      f"THEN {created} + {NANOS} END",
        "last_used_at": f"CASE WHEN i % 3 = 0 THEN {created} + {NANOS} END",
        "client_id": f"CASE WHEN {slot} <= 3 THEN {client_id} END",
        "credential_id": f"CASE WHEN {slot} BETWEEN 1 AND 3 THEN {credential} END",
        "created_by": "'load'",
        "rate_limit": "NULL",
        "rate_window": "NULL",
    }


class SqliteStore:
    name = "sqlite"

    def __init__(self, directory, rows):
        self.path = os.path.join(directory, f"m2m-{rows}.db")
        self.url = f"sqlite://{self.path}"

    def fill(self, rows, known_digests, now):
        """`rows` rows in all: the bulk in one recursive statement, then the known digests."""
        bulk = rows - len(known_digests)
        columns = synthetic_columns("sqlite")
        names = ", ".join(columns)
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA cache_size = -262144")
            db.execute("BEGIN")
            db.execute(
                f"INSERT INTO tokens ({names}) WITH RECURSIVE n(i) AS "
                f"(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n) "
                f"SELECT {', '.join(columns.values())} FROM n",
                {"n": bulk, "now": now - 3600 * NANOS})
            db.executemany(
                "INSERT INTO tokens (id, digest, stub, kind, tenant, description, scopes, "
                "created_at, expires_at, created_by) "
                "VALUES (?, ?, 'm2m_at_Know…', 'at', ?, 'known', '[\"reports:read\"]', ?, ?, "
                "'load')",
                ((f"tok_K{k:019d}", d, BIG_TENANT if k % 2 else "tenant-7",
                  now - 3600 * NANOS + k, now + 30 * DAY)
                 for k, d in enumerate(known_digests)))
            db.execute("COMMIT")
            db.execute("ANALYZE")
        finally:
            db.close()

    def count(self, tenant=None):
        db = sqlite3.connect(self.path)
        try:
            if tenant:
                return db.execute("SELECT count(*) FROM tokens WHERE tenant = ?",
                                  (tenant,)).fetchone()[0]
            return db.execute("SELECT count(*) FROM tokens").fetchone()[0]
        finally:
            db.close()

    def explain(self, sql):
        db = sqlite3.connect(self.path)
        try:
            rows = db.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
        finally:
            db.close()
        return [f"{'  ' * depth(rows, r)}{r[3]}" for r in rows]

    @staticmethod
    def blob(data):
        return f"X'{data.hex()}'"

    @staticmethod
    def scans(plan):
        return [line for line in plan if re.search(r"\bSCAN (tokens|credential)\b", line)]

    @staticmethod
    def waste(plan):
        """EXPLAIN QUERY PLAN names the index but not the rows read: see PostgreSQL's plan."""
        return []

    def drop(self):
        for suffix in ("", "-wal", "-shm"):
            try:
                os.remove(self.path + suffix)
            except FileNotFoundError:
                pass


def depth(rows, row):
    """Nesting depth of an EXPLAIN QUERY PLAN row (id, parent, notused, detail)."""
    parents = {r[0]: r[1] for r in rows}
    level, parent = 0, row[1]
    while parent in parents:
        level, parent = level + 1, parents[parent]
    return level


class PostgresStore:
    name = "postgres"

    def __init__(self, admin_url, rows):
        base, _, _ = admin_url.rpartition("/")
        self.admin_url = admin_url
        self.database = f"m2m_load_{rows}_{os.getpid()}"
        self.url = f"{base}/{self.database}"
        psql(admin_url, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        psql(admin_url, f'CREATE DATABASE "{self.database}"')

    def fill(self, rows, known_digests, now):
        bulk = rows - len(known_digests)
        columns = synthetic_columns("postgres")
        names = ", ".join(columns)
        values = ", ".join(v.replace(":now", str(now - 3600 * NANOS)).replace(":n", str(bulk))
                           for v in columns.values())
        psql(self.url, f"INSERT INTO tokens ({names}) SELECT {values} "
                       f"FROM generate_series(1::bigint, {bulk}) AS g(i)")
        copy = "".join(
            f"tok_K{k:019d}\t\\\\x{d.hex()}\tm2m_at_Know…\tat\t"
            f"{BIG_TENANT if k % 2 else 'tenant-7'}\tknown\t[\"reports:read\"]\t"
            f"{now - 3600 * NANOS + k}\t{now + 30 * DAY}\tload\n"
            for k, d in enumerate(known_digests))
        subprocess.run(
            ["psql", self.url, "-qX", "-v", "ON_ERROR_STOP=1", "-c",
             "COPY tokens (id, digest, stub, kind, tenant, description, scopes, created_at, "
             "expires_at, created_by) FROM STDIN"],
            input=copy, text=True, check=True)
        psql(self.url, "VACUUM ANALYZE tokens")

    def count(self, tenant=None):
        where = f" WHERE tenant = '{tenant}'" if tenant else ""
        return int(psql(self.url, f"SELECT count(*) FROM tokens{where}").strip())

    def explain(self, sql):
        analyze = f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"
        if sql.lstrip().upper().startswith("UPDATE"):
            # Run for the plan's figures, but change nothing.
            analyze = f"BEGIN;\n{analyze};\nROLLBACK"
        return [line for line in psql(self.url, analyze).splitlines() if line.strip()]

    @staticmethod
    def blob(data):
        return f"'\\x{data.hex()}'::bytea"

    @staticmethod
    def scans(plan):
        return [line for line in plan if "Seq Scan on tokens" in line]

    @staticmethod
    def waste(plan):
        """Lines of a plan that read over 1,000 rows only to drop them."""
        return [line for line in plan
                if int((re.search(r"Rows Removed by Filter: (\d+)", line) or [0, 0])[1]) > 1000]

    def drop(self):
        psql(self.admin_url, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


def psql(url, sql):
    done = subprocess.run(["psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1"], input=sql,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise Failure(f"psql: {done.stderr.strip()}")
    return done.stdout


# The statements of stores/sql/src/store.rs behind the endpoints loaded, with the values of this
# run in place of their parameters.
TOKEN_COLUMNS = ("id, digest, stub, kind, tenant, user_id, description, scopes, created_at, "
                 "expires_at, revoked_at, last_used_at, client_id, credential_id, created_by, "
                 "rate_limit, rate_window")


def lookups(store, known_digest, client_id, credential_id, big_rows, now):
    last = max(0, big_rows - PAGE)
    since = now - 61 * 60 * NANOS
    values = ", ".join(f"('tok_L{i:019d}', {now})" for i in range(1, 400, 7))
    return [
        ("token by digest (introspection, every verifier miss): find",
         f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE digest = {store.blob(known_digest)}"),
        ("unknown digest (introspection of an unknown token): find",
         f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE digest = {store.blob(os.urandom(32))}"),
        (f"tenant listing, first page: list_page('{BIG_TENANT}', 0, {PAGE + 1})",
         f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE tenant = '{BIG_TENANT}' "
         f"ORDER BY created_at, id LIMIT {PAGE + 1} OFFSET 0"),
        (f"tenant listing, last page: list_page('{BIG_TENANT}', {last}, {PAGE + 1})",
         f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE tenant = '{BIG_TENANT}' "
         f"ORDER BY created_at, id LIMIT {PAGE + 1} OFFSET {last}"),
        ("tenant's API tokens (owner=tenant, a member's view): list_api_page",
         f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE tenant = '{BIG_TENANT}' "
         f"AND user_id IS NULL AND kind <> 'cc' ORDER BY created_at, id LIMIT {PAGE + 1} OFFSET 0"),
        ("a user's tokens: list_user_page",
         f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE tenant = '{BIG_TENANT}' "
         f"AND user_id = 'user-4' ORDER BY created_at, id LIMIT {PAGE + 1} OFFSET 0"),
        ("client-credential lookup (token endpoint, after the exchange load): find_client",
         f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE client_id = '{client_id}' AND kind = 'cs' "
         f"ORDER BY created_at, id LIMIT 1"),
        ("credential still unrevoked (token endpoint, each minted bearer token): insert_derived",
         f"SELECT 1 FROM tokens AS credential WHERE credential.id = '{credential_id}' "
         f"AND credential.kind = 'cs' AND credential.revoked_at IS NULL"),
        ("revoked credentials (revocation followers that lost track): revoked_credentials",
         f"SELECT id, digest FROM tokens WHERE kind = 'cs' AND revoked_at IS NOT NULL "
         f"AND revoked_at > {since} ORDER BY revoked_at, id"),
        ("usage update (last_used_at, in batches): record_usage",
         f"UPDATE tokens SET last_used_at = used.column2 FROM (VALUES {values}) AS used "
         f"WHERE tokens.id = used.column1 "
         f"AND (tokens.last_used_at IS NULL OR tokens.last_used_at < used.column2)"),
        ("bearer tokens of a revoked credential: revoke",
         f"UPDATE tokens SET revoked_at = {now} WHERE credential_id = '{credential_id}' "
         f"AND revoked_at IS NULL AND EXISTS (SELECT 1 FROM tokens AS credential "
         f"WHERE credential.id = '{credential_id}' AND credential.kind = 'cs') "
         f"RETURNING id, digest"),
    ]


# ---------------------------------------------------------------------------------------------
# wrk


CYCLE_LUA = """
-- Presents a different token of the file per request, each thread its own share, and stops
-- the thread once its share is spent (the few requests then in flight repeat its last token).
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  tokens = {}
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  step = tonumber(args[2])
  index = id + 1
  spent = false
end
function request()
  local token = tokens[index]
  if index + step <= #tokens then index = index + step else spent = true end
  return wrk.format(nil, nil, nil, "token=" .. token)
end
function response(status, headers, body)
  if spent then wrk.thread:stop() end
end
"""


RANDOM_LUA = """
-- Presents a new well-formed token with a valid checksum per request: base62 secret, CRC32
-- checksum in 6 base62 digits, as core/src/token.rs makes them. Prints a few for the caller
-- to check.
local bit = require("bit")
local alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if bit.band(c, 1) == 1 then c = bit.bxor(bit.rshift(c, 1), 0xEDB88320)
    else c = bit.rshift(c, 1) end
  end
  crc_table[i] = c
end
local function crc32(s)
  local c = bit.bnot(0)
  for i = 1, #s do
    c = bit.bxor(bit.rshift(c, 8), crc_table[bit.band(bit.bxor(c, s:byte(i)), 0xFF)])
  end
  c = bit.bnot(c)
  if c < 0 then c = c + 4294967296 end
  return c
end
local function token()
  local chars = {}
  for i = 1, 43 do
    local k = math.random(62)
    chars[i] = alphabet:sub(k, k)
  end
  local text = "m2m_at_" .. table.concat(chars)
  local value, digits = crc32(text), {}
  for i = 6, 1, -1 do
    local k = value % 62
    digits[i] = alphabet:sub(k + 1, k + 1)
    value = math.floor(value / 62)
  end
  return text .. table.concat(digits)
end
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  math.randomseed(os.time() * 1000 + id)
  for _ = 1, 3 do io.write("sample " .. token() .. "\\n") end
end
function request()
  return wrk.format(nil, nil, nil, "token=" .. token())
end
"""


def checksum_ok(token):
    text, digits = token[:-CHECKSUM_LEN], token[-CHECKSUM_LEN:]
    value = 0
    for c in digits:
        value = value * 62 + BASE62.index(c)
    return zlib.crc32(text.encode()) == value and len(token) == 7 + SECRET_LEN + CHECKSUM_LEN


def lua_fixed(method, headers, body):
    lines = [f'wrk.method = "{method}"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    if body is not None:
        lines.append(f'wrk.body = "{body}"')
    return "\n".join(lines) + "\n"


def lua_cycle(headers):
    return lua_fixed("POST", headers, None) + CYCLE_LUA


def lua_random(headers):
    return lua_fixed("POST", headers, None) + RANDOM_LUA


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_ms(text):
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(match.group(1)) * UNITS[match.group(2)]


def run_wrk(args, port, path, lua, lua_args, workdir, seconds=None):
    script = os.path.join(workdir, "load.lua")
    with open(script, "w") as out:
        out.write(lua)
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds or args.seconds}s",
               "--timeout", "30s", "--latency", "-s", script, f"http://127.0.0.1:{port}{path}"]
    if lua_args:
        command += ["--"] + lua_args
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise Failure(f"wrk failed: {done.stderr.strip() or done.stdout[-500:]}")
    out = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = parse_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = parse_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    requests, elapsed = re.search(r"(\d+) requests in ([\d.]+\w+)", out).groups()
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    samples = re.findall(r"^sample (\S+)$", out, re.M)
    if any(not checksum_ok(t) for t in samples):
        raise Failure(f"the generated tokens have wrong checksums: {samples}")
    return {"rps": rps, "p50": p50, "p99": p99, "requests": int(requests), "elapsed": elapsed,
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "errors": errors.group(1) if errors else ""}


# ---------------------------------------------------------------------------------------------
# one store at one size


def one(args, store_name, rows, workdir, results, plans, failures):
    print(f"== {store_name}, {rows:,} rows", flush=True)
    store = SqliteStore(workdir, rows) if store_name == "sqlite" \
        else PostgresStore(args.postgres, rows)
    try:
        # 1. the migrations, and the bootstrap admin token
        service = Service(store.url)
        service.stop()
        admin = service.admin
        if not admin:
            raise Failure("the first start printed no admin token")

        # 2. the rows
        known = [make_token("at") for _ in range(min(args.distinct, rows // 2))]
        now = time.time_ns()
        started = time.time()
        store.fill(rows - store.count(), [digest(t) for t in known], now)
        print(f"   filled to {store.count():,} rows in {time.time() - started:.1f} s "
              f"(tenant {BIG_TENANT}: {store.count(BIG_TENANT):,})", flush=True)
        known_file = os.path.join(workdir, "known.txt")
        with open(known_file, "w") as out:
            out.write("\n".join(known) + "\n")

        # 3. the service under load
        service = Service(store.url)
        try:
            measure(args, store, service, admin, rows, known, known_file, workdir,
                    results, plans, failures, now)
        finally:
            service.stop()
    finally:
        store.drop()


def measure(args, store, service, admin, rows, known, known_file, workdir,
            results, plans, failures, now):
    port = service.port
    introspector = service.create(admin, "m2m", {"expires": "1d", "scopes": ["m2m:introspect"],
                                                 "description": "load: resource server"})["token"]
    active = service.create(admin, BIG_TENANT, {"expires": "1d", "scopes": ["reports:read"],
                                                "description": "load: introspected"})["token"]
    credential = service.create(admin, BIG_TENANT, {"expires": "1d", "type":
                                                    "client_credentials",
                                                    "description": "load: exchanged"})
    basic = base64.b64encode(
        f"{credential['client_id']}:{credential['client_secret']}".encode()).decode()
    form = {"x-api-key": introspector, "content-type": FORM}

    # Each path answers as expected before it is loaded.
    checks = [
        ("introspect an active token", send(port, "POST", "/oauth/introspect", form,
                                            f"token={active}".encode()), True),
        ("introspect a stored token", send(port, "POST", "/oauth/introspect", form,
                                           f"token={known[-1]}".encode()), True),
        ("introspect an unknown token", send(port, "POST", "/oauth/introspect", form,
                                             f"token={make_token('at')}".encode()), False),
    ]
    for what, (status, answer), expected in checks:
        if status != 200 or not isinstance(answer, dict) or answer.get("active") is not expected:
            raise Failure(f"{what}: {status} {answer!r:.200}")
    status, answer = send(port, "POST", "/oauth/token",
                          {"authorization": f"Basic {basic}", "content-type": FORM},
                          b"grant_type=client_credentials")
    if status != 200 or "access_token" not in answer:
        raise Failure(f"client-credentials exchange: {status} {answer!r:.200}")
    big_rows = store.count(BIG_TENANT)
    last = max(0, big_rows - PAGE)
    for offset in (0, last):
        status, answer = send(port, "GET", f"/v1/tenants/{BIG_TENANT}/tokens?offset={offset}",
                              {"x-api-key": admin})
        if status != 200 or not answer.get("items"):
            raise Failure(f"listing at offset {offset}: {status} {answer!r:.200}")
    # The cursor that leads to the same last page, as a client paging with `after=` holds it.
    status, answer = send(port, "GET",
                          f"/v1/tenants/{BIG_TENANT}/tokens?offset={max(0, last - PAGE)}",
                          {"x-api-key": admin})
    cursor = answer.get("next_after") if status == 200 else None
    if not cursor:
        raise Failure(f"no next_after before the last page: {status} {answer!r:.200}")
    status, answer = send(port, "GET", f"/v1/tenants/{BIG_TENANT}/tokens?after={cursor}",
                          {"x-api-key": admin})
    if status != 200 or not answer.get("items"):
        raise Failure(f"listing after a cursor: {status} {answer!r:.200}")

    runs = [
        ("introspect: same active token (cache hit)", "/oauth/introspect",
         lua_fixed("POST", form, f"token={active}"), None, None),
        ("introspect: distinct unknown tokens (store miss)", "/oauth/introspect",
         lua_random(form), None, None),
        ("introspect: distinct stored tokens (store hit)", "/oauth/introspect",
         lua_cycle(form), [known_file, str(args.threads)], len(known)),
        ("token: client-credentials exchange", "/oauth/token",
         lua_fixed("POST", {"authorization": f"Basic {basic}", "content-type": FORM},
                   "grant_type=client_credentials"), None, None),
        (f"list: first page of {BIG_TENANT}", f"/v1/tenants/{BIG_TENANT}/tokens",
         lua_fixed("GET", {"x-api-key": admin}, None), None, None),
        (f"list: last page of {BIG_TENANT} (offset {last:,})",
         f"/v1/tenants/{BIG_TENANT}/tokens?offset={last}",
         lua_fixed("GET", {"x-api-key": admin}, None), None, None),
        (f"list: last page of {BIG_TENANT} (after a cursor)",
         f"/v1/tenants/{BIG_TENANT}/tokens?after={cursor}",
         lua_fixed("GET", {"x-api-key": admin}, None), None, None),
    ]
    miss_rps = None
    for endpoint, path, lua, lua_args, distinct in runs:
        seconds, note = args.seconds, ""
        if distinct is not None:
            # The stored tokens are finite: a run long enough to spend about 80 % of them at
            # the rate of the store misses, so that every request misses the cache.
            seconds = max(1, min(args.seconds, int(distinct / (miss_rps * 1.25))))
        result = run_wrk(args, port, path, lua, lua_args, workdir, seconds)
        if endpoint.startswith("introspect: distinct unknown"):
            miss_rps = result["rps"]
        if distinct is not None:
            note = f"{result['requests']:,} requests in {result['elapsed']}"
            if result["requests"] >= distinct:
                note += ": tokens spent before the end, req/s too low"
                failures.append(f"{store.name} {rows:,} {endpoint}: the {distinct:,} stored "
                                f"tokens were spent before the end of the run")
        if result["non2xx"] or result["errors"]:
            failures.append(f"{store.name} {rows:,} {endpoint}: {result['non2xx']} non-2xx, "
                            f"socket errors: {result['errors'] or 'none'}")
        results.append((store.name, rows, endpoint, result, note))
        print(f"   {endpoint}: {result['rps']:,.0f} req/s, p50 {result['p50']:.2f} ms, "
              f"p99 {result['p99']:.2f} ms", flush=True)

    # 4. the plans, on the filled table (and the bearer tokens the exchange load added)
    status, answer = send(port, "GET", f"/v1/tenants/{BIG_TENANT}/tokens?limit=1",
                          {"x-api-key": admin})
    minted = store.count() - rows
    header = f"{store.name}, {rows:,} rows (+{minted:,} made by the run)"
    plans.append((header, []))
    for what, sql in lookups(store, digest(known[0]), credential["client_id"],
                             credential["id"], big_rows, now):
        plan = store.explain(sql)
        scans = store.scans(plan)
        if scans:
            failures.append(f"{store.name} {rows:,} {what}: scans the table: {scans}")
        plans[-1][1].append((what, plan, bool(scans), bool(store.waste(plan))))


# ---------------------------------------------------------------------------------------------


def print_report(results, plans):
    print()
    print(f"{'store':<9} {'rows':>10}  {'endpoint':<52} {'req/s':>9} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'non-2xx':>7}")
    for store, rows, endpoint, r, note in results:
        print(f"{store:<9} {rows:>10,}  {endpoint:<52} {r['rps']:>9,.0f} {r['p50']:>8.2f} "
              f"{r['p99']:>8.2f} {r['non2xx']:>7}" + (f"  ({note})" if note else ""))
    print()
    print("What the figures measure: 'same active token' is the service's cache; 'distinct "
          "stored tokens' a cache miss, one lookup by digest that finds the row, and the usage "
          "write it causes; 'distinct unknown tokens' a cache miss and one lookup by digest that "
          "finds nothing; the exchange a cached credential check and one insert of a bearer "
          "token; the listings one page of 50 (the last page through OFFSET, then after a cursor).")
    ratios = {}
    for store, rows, endpoint, r, _ in results:
        if endpoint.startswith("introspect"):
            ratios.setdefault((store, endpoint), {})[rows] = r["rps"]
    for (store, endpoint), by_rows in ratios.items():
        if len(by_rows) > 1:
            small, large = min(by_rows), max(by_rows)
            print(f"{store} {endpoint}: {large:,} rows / {small:,} rows = "
                  f"{by_rows[large] / by_rows[small]:.2f}× the requests/s")
    for header, entries in plans:
        print(f"\n== query plans: {header}")
        for what, plan, scans, waste in entries:
            mark = "   <-- SCANS THE TABLE" if scans else \
                "   <-- reads rows it does not return" if waste else ""
            print(f"-- {what}{mark}")
            for line in plan:
                print(f"   {line}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000",
                        help="stored token counts, comma-separated")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--distinct", type=int, default=300_000,
                        help="most stored tokens presented by the store-hit run (at most half "
                             "the rows)")
    parser.add_argument("--postgres", default=os.environ.get(
        "M2M_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--no-build", action="store_true",
                        help="use target/release/m2m as it is")
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    stores = [s for s in args.stores.split(",") if s]
    if not shutil.which("wrk"):
        print("wrk is missing", file=sys.stderr)
        return 1
    if "postgres" in stores and not shutil.which("psql"):
        print("psql is missing", file=sys.stderr)
        return 1
    if any(s not in ("sqlite", "postgres") for s in stores):
        print(f"unknown store in {args.stores}: sqlite, postgres", file=sys.stderr)
        return 1
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--bin", "m2m"], cwd=ROOT, check=True)
    results, plans, failures = [], [], []
    with tempfile.TemporaryDirectory() as workdir:
        for store in stores:
            for rows in sizes:
                try:
                    one(args, store, rows, workdir, results, plans, failures)
                except (Failure, subprocess.CalledProcessError, OSError) as error:
                    failures.append(f"{store} {rows:,}: {error}")
                    print(f"   FAILED: {error}", flush=True)
    print_report(results, plans)
    for failure in failures:
        print("FAIL", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
