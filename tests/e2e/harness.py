"""harness.py - black-box test harness for the exhibit server (Python 3 stdlib only).

Starts the real binary on a fresh temporary data directory and an ephemeral port
(`serve --listen 127.0.0.1:0`, the port is read from the "listening on" line), talks to it
over HTTP (http.client for well-formed requests, raw sockets for cut-off bodies and
disconnects), and stops it with SIGTERM (exit 0 expected) or SIGKILL. Only the pids this
harness started are ever signalled.

Sanitizers: every process the harness starts writes stderr to a log under tests/artifacts/.
After each test the runner scans the new part of every log for AddressSanitizer, LeakSanitizer
and UBSan reports and fails that test if one appeared. A server that died on its own fails the
running test and is restarted on the same data directory so later tests can still run.

Environment: EXHIBIT_BIN (default build/asan/exhibit under the repo root), EXHIBIT_TESTDATA
(default tests/data), EXHIBIT_E2E_KEEP=1 keeps data directories of passing runs.
"""

import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("EXHIBIT_BIN") or os.path.join(REPO, "build", "asan", "exhibit")
if not os.path.isabs(BIN):
    BIN = os.path.join(REPO, BIN)
TESTDATA = os.environ.get("EXHIBIT_TESTDATA") or os.path.join(REPO, "tests", "data")
PHOTOS = os.path.join(TESTDATA, "photos")
ARTIFACTS = os.path.join(REPO, "tests", "artifacts")

DEFAULT_MAX_BODY = 26214400
START_TIMEOUT = 60.0  # ASan start-up on a shared 2-core machine can be slow
STOP_TIMEOUT = 30.0
HTTP_TIMEOUT = 120.0

SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

# Keys created for every server: name -> (role, subject).
DEFAULT_KEYS = {
    "admin": ("admin", None),
    "platform": ("platform", None),
    "warehouse": ("warehouse", None),
    "mediator": ("mediator", None),
    "buyer": ("buyer", "b-alice"),
    "buyer2": ("buyer", "b-bob"),
}


class Failure(Exception):
    """A test expectation that did not hold; the message is what gets reported."""


class NoResponse(Failure):
    """The connection failed or closed before a complete response arrived."""


class Skip(Exception):
    """The behaviour under test is optional and absent (e.g. image decoding not built yet)."""


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def check_each(cases, fn, what=lambda c: repr(c)[:60]):
    """Runs fn(case) for every case of a table and fails once with every mismatch, so one
    report shows all of them rather than the first."""
    problems = []
    for c in cases:
        try:
            fn(c)
        except Failure as ex:
            problems.append("[%s] %s" % (what(c), ex))
    if problems:
        raise Failure("%d of %d cases failed:\n%s" % (len(problems), len(cases),
                                                      "\n".join(problems)))


def child_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1")
    env.setdefault("LSAN_OPTIONS", "suppressions=%s:print_suppressions=0"
                   % os.path.join(REPO, "tests", "lsan.supp"))
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env.setdefault("VIPS_WARNING", "0")
    return env


# ---------------------------------------------------------------------------------------------
# Sanitizer log registry: every log file a child writes, with how far it has been scanned.

_logs = {}
_logs_lock = threading.Lock()


def register_log(path):
    """Starts watching path from its current end (older runs' reports are not ours)."""
    with _logs_lock:
        if path not in _logs:
            _logs[path] = os.path.getsize(path) if os.path.exists(path) else 0


def new_sanitizer_reports():
    """Returns sanitizer report lines that appeared in any log since the last call."""
    found = []
    with _logs_lock:
        for path, offset in list(_logs.items()):
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except OSError:
                continue
            _logs[path] = offset + len(data)
            text = data.decode("utf-8", "replace")
            lines = text.splitlines()
            for i, line in enumerate(lines):
                if any(p in line for p in SANITIZER_PATTERNS):
                    ctx = lines[i:i + 8]
                    found.append("%s: %s" % (os.path.relpath(path, REPO), " | ".join(ctx)))
    return found


def artifact_path(name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    return os.path.join(ARTIFACTS, name)


# ---------------------------------------------------------------------------------------------
# CLI

class CliResult:
    def __init__(self, argv, rc, stdout, stderr):
        self.argv, self.rc, self.stdout, self.stderr = argv, rc, stdout, stderr

    def describe(self):
        return "`exhibit %s` -> exit %s, stdout %r, stderr %r" % (
            " ".join(self.argv), self.rc, self.stdout[-400:], self.stderr[-600:])


_cli_seq = [0]


def run_cli(args, log_name=None, timeout=120):
    """Runs the binary with args; stderr is also appended to tests/artifacts/<log_name>.log."""
    check(os.path.exists(BIN), "binary not found: %s" % BIN)
    proc = subprocess.run([BIN] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, env=child_env(), timeout=timeout)
    log = artifact_path("%s.log" % (log_name or "e2e-cli.%d" % os.getpid()))
    register_log(log)
    with open(log, "ab") as f:
        f.write(("$ exhibit %s (exit %d)\n" % (" ".join(args), proc.returncode)).encode())
        f.write(proc.stderr)
    return CliResult(list(args), proc.returncode, proc.stdout.decode("utf-8", "replace"),
                     proc.stderr.decode("utf-8", "replace"))


def create_key(data_dir, role, subject=None, log_name=None):
    args = ["key", "create", "--data", data_dir, "--role", role]
    if subject is not None:
        args += ["--subject", subject]
    r = run_cli(args, log_name)
    check(r.rc == 0, "key create failed: " + r.describe())
    lines = r.stdout.splitlines()
    check(lines and lines[0].strip(), "key create printed no key: " + r.describe())
    return lines[0].strip()


def audit_verify(data_dir, log_name=None):
    return run_cli(["audit", "verify", "--data", data_dir], log_name)


# ---------------------------------------------------------------------------------------------
# HTTP

class Response:
    def __init__(self, req, status, headers, body):
        self.req = req  # "METHOD /path (as role)" for failure messages
        self.status = status
        self.headers = headers  # lower-cased name -> value (last one wins)
        self.body = body

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def text(self, limit=500):
        t = self.body[:limit].decode("utf-8", "replace")
        return t + ("..." if len(self.body) > limit else "")

    @property
    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as ex:
            raise Failure("%s: status %d, body is not JSON (%s): %r"
                          % (self.req, self.status, ex, self.text()))

    def describe(self):
        return "%s -> %d %s" % (self.req, self.status, self.text())


def expect_status(resp, status, what=""):
    want = status if isinstance(status, (tuple, list, set)) else (status,)
    check(resp.status in want, "%sexpected status %s, got %s" % (
        what + ": " if what else "", "/".join(map(str, want)), resp.describe()))
    return resp


def expect_error(resp, status, code, field=None, what=""):
    """Checks status, the exact error body shape, the code (str or set) and, when given, that
    the message names the field."""
    expect_status(resp, status, what)
    body = resp.json
    pre = "%s%s: " % (what + ": " if what else "", resp.req)
    check(isinstance(body, dict) and set(body) == {"error"},
          pre + "error body must be exactly {\"error\":{...}}, got %s" % resp.text())
    err = body["error"]
    check(isinstance(err, dict) and set(err) == {"code", "message"},
          pre + "error object must have exactly code and message, got %s" % resp.text())
    codes = code if isinstance(code, (tuple, list, set)) else (code,)
    check(err["code"] in codes, pre + "expected code %s, got %r (%s)"
          % ("/".join(codes), err["code"], resp.text()))
    check(isinstance(err["message"], str) and err["message"].strip(),
          pre + "error message is empty")
    if field is not None:
        check(field in err["message"],
              pre + "message should name the field %r: %r" % (field, err["message"]))
    ct = resp.header("content-type", "")
    check(ct.startswith("application/json"), pre + "error Content-Type is %r" % ct)
    return err


def http_request(port, method, path, body=None, headers=None, key=None, json_body=None,
                 label=None, timeout=HTTP_TIMEOUT):
    """One request on a fresh connection. json_body is serialized (and typed) for you."""
    hdrs = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    if key is not None:
        hdrs["Authorization"] = "Bearer " + key
    req = "%s %s%s" % (method, path[:120], " (as %s)" % label if label else "")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        headers_out = {k.lower(): v for k, v in r.getheaders()}
        return Response(req, r.status, headers_out, data)
    except (OSError, http.client.HTTPException) as ex:
        raise NoResponse("%s (body %d bytes%s): no response: %r"
                         % (req, len(body or b""), ", starts %r" % body[:24] if body else "", ex))
    finally:
        conn.close()


class Part:
    def __init__(self, name, data, filename=None, content_type=None):
        self.name, self.data, self.filename, self.content_type = name, data, filename, content_type


def file_part(photo_name, data=None, field="file", content_type=None):
    data = photo(photo_name) if data is None else data
    return Part(field, data, filename=photo_name,
                content_type=content_type or media_type_for(photo_name))


def multipart_encode(parts, boundary=None, closing=True):
    """Returns (body, content_type). closing=False omits the final boundary (a truncated
    multipart body that is otherwise complete)."""
    boundary = boundary or "exhibit-e2e-" + uuid.uuid4().hex
    out = []
    for p in parts:
        if isinstance(p.data, str):
            p = Part(p.name, p.data.encode(), p.filename, p.content_type)
        disp = 'form-data; name="%s"' % p.name
        if p.filename is not None:
            disp += '; filename="%s"' % p.filename.replace('"', "%22")
        out.append(b"--" + boundary.encode() + b"\r\n")
        out.append(b"Content-Disposition: " + disp.encode() + b"\r\n")
        if p.content_type:
            out.append(b"Content-Type: " + p.content_type.encode() + b"\r\n")
        out.append(b"\r\n" + p.data + b"\r\n")
    if closing:
        out.append(b"--" + boundary.encode() + b"--\r\n")
    return b"".join(out), "multipart/form-data; boundary=" + boundary


def request_head(method, path, headers, port=0):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1:%d" % port]
    lines += ["%s: %s" % kv for kv in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawConn:
    """A plain TCP connection for requests http.client will not send: headers without a body,
    bodies cut short, abrupt resets."""

    def __init__(self, port, timeout=30.0):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        """Sends data; returns False when the server already closed/reset the connection."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def read_response(self, timeout=15.0):
        """Reads one response. Returns (status, headers, body), or None when the connection
        closed (or reset) before a status line arrived. Raises Failure on timeout."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while b"\r\n\r\n" not in self.buf:
                if time.monotonic() > deadline:
                    raise socket.timeout()
                chunk = self.sock.recv(65536)
                if not chunk:
                    return None
                self.buf += chunk
            head, rest = self.buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
            check(m, "bad status line %r" % lines[0])
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            status = int(m.group(1))
            body = rest
            if status in (204, 304) or 100 <= status < 200:
                self.buf = rest
                return status, headers, b""
            if "content-length" in headers:
                n = int(headers["content-length"])
                while len(body) < n:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                self.buf = body[n:]
                return status, headers, body[:n]
            if headers.get("transfer-encoding", "").lower() == "chunked":
                while not body.endswith(b"0\r\n\r\n"):
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                return status, headers, dechunk(body)
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            return status, headers, body
        except socket.timeout:
            raise Failure("no response within %.0f s on a raw connection" % timeout)
        except ConnectionResetError:
            return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Closes with RST (SO_LINGER 0), the way a client that vanished looks to the server."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()


def dechunk(data):
    out, i = b"", 0
    while True:
        j = data.find(b"\r\n", i)
        if j < 0:
            return out
        n = int(data[i:j].split(b";")[0] or b"0", 16)
        if n == 0:
            return out
        out += data[j + 2:j + 2 + n]
        i = j + 2 + n + 2


# ---------------------------------------------------------------------------------------------
# Server

class Server:
    """One exhibit server process on its own data directory (fresh temp dir by default)."""

    _seq = 0

    def __init__(self, name, data_dir=None, args=(), keys=None):
        Server._seq += 1
        self.name = "%s-%d" % (name, Server._seq)
        self.owns_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="exhibit-e2e-%s-" % name)
        self.args = list(args)
        self.key_spec = DEFAULT_KEYS if keys is None else keys
        self.keys = {}
        self.proc = None
        self.port = None
        self.expect_running = False
        self.starts = 0
        # The pid keeps concurrent runs (a developer and `make test`) from sharing log files.
        self.log = artifact_path("e2e-%s.%d.stderr.log" % (self.name, os.getpid()))
        self.out = artifact_path("e2e-%s.%d.stdout.log" % (self.name, os.getpid()))
        for p in (self.log, self.out):
            if os.path.exists(p):
                os.unlink(p)
        register_log(self.log)

    # -- lifecycle

    def make_keys(self):
        for label, (role, subject) in self.key_spec.items():
            self.keys[label] = create_key(self.data_dir, role, subject,
                                          log_name="e2e-%s.%d.cli" % (self.name, os.getpid()))
        return self.keys

    def start(self, timeout=START_TIMEOUT):
        check(os.path.exists(BIN), "binary not found: %s" % BIN)
        if not self.keys and self.key_spec:
            self.make_keys()
        self.starts += 1
        argv = [BIN, "serve", "--data", self.data_dir, "--listen", "127.0.0.1:0"] + self.args
        out = open(self.out, "ab")
        err = open(self.log, "ab")
        err.write(("== start %d: %s\n" % (self.starts, " ".join(argv))).encode())
        err.flush()
        out_start = out.tell()
        try:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         env=child_env())
        finally:
            out.close()
            err.close()
        deadline = time.monotonic() + timeout
        while True:
            with open(self.out, "rb") as f:
                f.seek(out_start)
                text = f.read().decode("utf-8", "replace")
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", text)
            if m:
                self.port = int(m.group(1))
                self.expect_running = True
                return self
            rc = self.proc.poll()
            if rc is not None:
                raise Failure("server exited with %d before listening; stderr tail: %s"
                              % (rc, self.log_tail()))
            if time.monotonic() > deadline:
                self.kill()
                raise Failure("no 'listening on' line within %.0f s; stdout %r; stderr tail: %s"
                              % (timeout, text, self.log_tail()))
            time.sleep(0.02)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait, and require exit status 0."""
        self.expect_running = False
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure("server did not exit within %.0f s of SIGTERM (killed)" % timeout)
        check(rc == 0, "server exited with %d after SIGTERM (expected 0); stderr tail: %s"
              % (rc, self.log_tail()))
        return rc

    def kill(self):
        """SIGKILL our own pid only."""
        self.expect_running = False
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=2000):
        try:
            with open(self.log, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - n))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def cleanup(self, keep=False):
        if self.alive():
            self.kill()
        if self.owns_dir and not keep and not os.environ.get("EXHIBIT_E2E_KEEP"):
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- HTTP

    def request(self, method, path, as_=None, **kw):
        """as_ names one of self.keys (or None for no Authorization header)."""
        key = self.keys[as_] if as_ is not None else None
        return http_request(self.port, method, path, key=key, label=as_, **kw)

    def get(self, path, as_=None, **kw):
        return self.request("GET", path, as_, **kw)

    def post_json(self, path, obj, as_=None, **kw):
        return self.request("POST", path, as_, json_body=obj, **kw)

    def upload_raw(self, case_id, data, content_type, as_="buyer", **kw):
        return self.request("POST", "/v1/cases/%s/evidence" % case_id, as_, body=data,
                            headers={"Content-Type": content_type}, **kw)

    def upload_multipart(self, case_id, parts, as_="buyer", **kw):
        body, ctype = multipart_encode(parts)
        return self.request("POST", "/v1/cases/%s/evidence" % case_id, as_, body=body,
                            headers={"Content-Type": ctype}, **kw)

    def raw(self, timeout=30.0):
        return RawConn(self.port, timeout)

    def create_case(self, as_="platform", **overrides):
        """Creates a valid case (201 required) and returns its JSON."""
        r = self.post_json("/v1/cases", case_body(**overrides), as_)
        expect_status(r, 201, "create case")
        return r.json

    def healthy(self):
        try:
            r = self.get("/healthz", timeout=10)
            return r.status == 200
        except OSError:
            return False

    # -- data directory

    def blob_files(self):
        root = os.path.join(self.data_dir, "blobs")
        found = set()
        for dirpath, _, files in os.walk(root):
            for f in files:
                found.add(os.path.relpath(os.path.join(dirpath, f), root))
        return found

    def tmp_files(self):
        root = os.path.join(self.data_dir, "tmp")
        found = []
        for dirpath, dirs, files in os.walk(root):
            for f in files + dirs:
                found.append(os.path.relpath(os.path.join(dirpath, f), root))
        return sorted(found)

    def blob_path(self, sha):
        return os.path.join(self.data_dir, "blobs", sha[0:2], sha[2:4], sha)

    def table_counts(self, exclude=("audit_log",)):
        return db_table_counts(os.path.join(self.data_dir, "exhibit.db"), exclude)


def db_table_counts(db_path, exclude=()):
    conn = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True, timeout=30)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
        return {n: conn.execute('SELECT count(*) FROM "%s"' % n.replace('"', '""')).fetchone()[0]
                for n in names if n not in exclude}
    finally:
        conn.close()


class StorageSnapshot:
    """Blob files and table row counts at one moment; `unchanged()` waits briefly for the server
    to finish cleaning up and then reports any difference (plus any file left in DIR/tmp)."""

    def __init__(self, srv):
        self.srv = srv
        self.blobs = srv.blob_files()
        self.counts = srv.table_counts()

    def diff(self):
        problems = []
        new_blobs = self.srv.blob_files() - self.blobs
        if new_blobs:
            problems.append("new blob files %s" % sorted(new_blobs)[:5])
        counts = self.srv.table_counts()
        changed = {t: (self.counts.get(t), n) for t, n in counts.items()
                   if self.counts.get(t) != n}
        if changed:
            problems.append("row counts changed (before, after): %s" % changed)
        tmp = self.srv.tmp_files()
        if tmp:
            problems.append("DIR/tmp not empty: %s" % tmp[:5])
        return problems

    def unchanged(self, what, wait=5.0):
        deadline = time.monotonic() + wait
        while True:
            problems = self.diff()
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        check(not problems, "%s: something was stored: %s" % (what, "; ".join(problems)))


def wait_until(pred, timeout=5.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Test data

MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
               ".webp": "image/webp", ".heic": "image/heic", ".heif": "image/heic",
               ".avif": "image/avif", ".gif": "image/gif", ".tif": "image/tiff",
               ".tiff": "image/tiff"}


def media_type_for(name):
    return MEDIA_TYPES.get(os.path.splitext(name)[1].lower(), "application/octet-stream")


_photo_cache = {}


def photo(name):
    if name not in _photo_cache:
        with open(os.path.join(PHOTOS, name), "rb") as f:
            _photo_cache[name] = f.read()
    return _photo_cache[name]


def load_expected():
    """tests/data/photos/expected.tsv (exiftool's reference answers) keyed by file name."""
    rows = {}
    with open(os.path.join(PHOTOS, "expected.tsv"), encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            vals = line.rstrip("\n").split("\t")
            rows[vals[0]] = dict(zip(header, vals))
    return rows


EXPECTED = load_expected()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def with_jpeg_comment(data, text):
    """A real JPEG made byte-distinct by a COM segment right after SOI (decoders ignore it)."""
    assert data[:2] == b"\xff\xd8"
    payload = text.encode()
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def jpeg_info(data):
    """(width, height, [marker names]) of a baseline/progressive JPEG, or None if not a JPEG."""
    if data[:2] != b"\xff\xd8":
        return None
    i, markers, size = 2, [], None
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        m = data[i + 1]
        if m == 0xFF:
            i += 1
            continue
        if m in (0xD9, 0xDA):
            markers.append("%02X" % m)
            break
        seglen = struct.unpack(">H", data[i + 2:i + 4])[0]
        seg = data[i + 4:i + 2 + seglen]
        name = "%02X" % m
        if m == 0xE1 and seg.startswith(b"Exif"):
            name = "APP1-Exif"
        elif m == 0xE1 and b"adobe" in seg[:40].lower():
            name = "APP1-XMP"
        elif m == 0xE2 and seg.startswith(b"ICC_PROFILE"):
            name = "APP2-ICC"
        elif m == 0xED:
            name = "APP13-IPTC"
        markers.append(name)
        if m in (0xC0, 0xC1, 0xC2, 0xC3) and len(seg) >= 5:
            h, w = struct.unpack(">HH", seg[1:5])
            size = (w, h)
        i += 2 + seglen
    if size is None:
        return None
    return size[0], size[1], markers


# ---------------------------------------------------------------------------------------------
# Time and case bodies

def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def rfc3339(dt):
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


RFC3339_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def parse_rfc3339(s):
    check(isinstance(s, str) and RFC3339_RE.match(s), "not an RFC 3339 UTC time: %r" % (s,))
    base = s[:19]
    return datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)


def case_body(**overrides):
    """A valid case body (delivered 3 days ago, opened 1 day ago); override=None drops a key."""
    now = utcnow()
    body = {"order_id": "PDD-E2E-" + uuid.uuid4().hex[:10], "buyer_id": "b-alice",
            "seller_id": "s-9", "reason": "damaged", "category": "electronics",
            "delivered_at": rfc3339(now - datetime.timedelta(days=3)),
            "opened_at": rfc3339(now - datetime.timedelta(days=1)),
            "description": "screen cracked on arrival"}
    for k, v in overrides.items():
        if v is None:
            body.pop(k, None)
        else:
            body[k] = v
    return body


# ---------------------------------------------------------------------------------------------
# Runner

class Runner:
    """Runs registered tests in order. Each prints `ok NAME`, `ok NAME # skip why` or
    `not ok NAME - reason`; the run ends with `<suite>: N passed, N failed[, N skipped]`."""

    def __init__(self, suite="e2e"):
        self.suite = suite
        self.tests = []
        self.servers = []
        self.passed = self.failed = self.skipped = 0

    def test(self, fn):
        self.tests.append(fn)
        return fn

    def watch(self, srv):
        """Servers whose unexpected death fails the running test (and gets them restarted)."""
        self.servers.append(srv)
        return srv

    def report_fail(self, name, reason):
        self.failed += 1
        lines = str(reason).splitlines() or ["(no reason)"]
        print("not ok %s - %s" % (name, lines[0]))
        for line in lines[1:]:
            print("    " + line)
        sys.stdout.flush()

    def run_one(self, name, fn, *args):
        t0 = time.monotonic()
        reason, skip = None, None
        try:
            fn(*args)
        except Failure as ex:
            reason = str(ex)
        except Skip as ex:
            skip = str(ex)
        except Exception:  # an exception in a test is a failure with its traceback
            reason = "exception:\n" + traceback.format_exc().rstrip()
        extra = []
        for srv in self.servers:
            if srv.expect_running and not srv.alive():
                rc = srv.proc.poll() if srv.proc else None
                extra.append("server %s died (exit %s); stderr tail:\n%s"
                             % (srv.name, rc, srv.log_tail(1500)))
                try:
                    srv.start()
                    extra.append("(restarted %s on the same data dir)" % srv.name)
                except Failure as ex:
                    extra.append("restart failed: %s" % ex)
        reports = new_sanitizer_reports()
        if reports:
            extra.append("sanitizer report(s) in server/CLI logs:\n" + "\n".join(reports[:5]))
        if extra:
            reason = "\n".join(([reason] if reason else []) + extra)
        dt = time.monotonic() - t0
        if reason:
            self.report_fail(name, reason)
        elif skip is not None:
            self.skipped += 1
            print("ok %s # skip %s" % (name, skip))
        else:
            self.passed += 1
            print("ok %s (%.2fs)" % (name, dt))
        sys.stdout.flush()
        return reason is None

    def run(self, *args):
        for fn in self.tests:
            self.run_one(fn.__name__, fn, *args)

    def finish(self):
        line = "%s: %d passed, %d failed" % (self.suite, self.passed, self.failed)
        if self.skipped:
            line += ", %d skipped" % self.skipped
        print(line)
        sys.stdout.flush()
        return 1 if self.failed else 0


def main_with_server(runner, name, module_globals):
    """Runs a test file's tests against one fresh server bound to the module's global S."""
    srv = runner.watch(Server(name))
    module_globals["S"] = srv
    try:
        srv.start()
        runner.run()
        srv.stop()
    finally:
        srv.cleanup()
    return runner.finish()
