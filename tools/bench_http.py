#!/usr/bin/env python3
"""bench_http.py - uploads per second against a real `exhibit serve`, for `make bench`.

For each concurrency level: a fresh data directory, a platform key and a buyer key made with
`exhibit key create`, the server started on 127.0.0.1:0 (the port is read from its first
line), one case opened, then N uploader threads post raw image bodies to the case for a fixed
time. Every body is a corpus photo made unique by a small edit that leaves the image decodable
(a JPEG COM segment, a PNG tEXt chunk, an unknown RIFF chunk, a top-level ISO-BMFF `free`
box), so content addressing never turns an upload into a lookup. Reports req/s, latency
percentiles, errors by status, the server's peak RSS (VmHWM) and CPU, and this client's CPU (to
show whether the client could be the bottleneck). Only the server this script started is
stopped, by its pid.

usage: bench_http.py --exhibit PATH --files LIST [--seconds S] [--concurrency 2,8] [--tmp DIR]
                     [--log-dir DIR]
"""
import argparse
import http.client
import itertools
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

BUYER = "b-bench"


def uniquify(data, tag):
    """The image with `tag` embedded where every decoder skips it; None for unknown formats."""
    if data[:3] == b"\xff\xd8\xff":
        if len(tag) > 65533:
            return None
        seg = b"\xff\xfe" + struct.pack(">H", len(tag) + 2) + tag
        return data[:2] + seg + data[2:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        ihdr_end = 8 + 8 + struct.unpack(">I", data[8:12])[0] + 4
        body = b"tEXt" + b"Comment\x00" + tag
        chunk = (struct.pack(">I", len(body) - 4) + body +
                 struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF))
        return data[:ihdr_end] + chunk + data[ihdr_end:]
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        chunk = b"XBNC" + struct.pack("<I", len(tag)) + tag + (b"\x00" if len(tag) % 2 else b"")
        out = data + chunk
        return out[:4] + struct.pack("<I", len(out) - 8) + out[8:]
    if data[4:8] == b"ftyp":
        return data + struct.pack(">I", 8 + len(tag)) + b"free" + tag
    return None


def media_type(data):
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF":
        return "image/webp"
    if b"avif" in data[8:32]:
        return "image/avif"
    return "image/heic"


def kind(data):
    return {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP",
            "image/avif": "AVIF", "image/heic": "HEIC"}[media_type(data)]


def proc_status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def proc_cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return -1.0


def make_key(exhibit, data_dir, role, subject=None):
    cmd = [exhibit, "key", "create", "--data", data_dir, "--role", role]
    if subject:
        cmd += ["--subject", subject]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60)
    return out.stdout.strip().splitlines()[-1]


def start_server(exhibit, data_dir, log_path):
    log = open(log_path, "w")
    proc = subprocess.Popen([exhibit, "serve", "--data", data_dir, "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    log.close()
    deadline = time.monotonic() + 30
    port = None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("listening on http://"):
            port = int(line.strip().rsplit(":", 1)[1])
            break
    if port is None:
        stop_server(proc)
        raise RuntimeError(f"server did not start; see {log_path}")
    # keep draining stdout so the server can never block on a full pipe
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, port


def stop_server(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def request(port, method, path, key, body, ctype):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=body,
                     headers={"Authorization": "Bearer " + key, "Content-Type": ctype})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def pct(sorted_ms, p):
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * p / 100))]


def run_level(args, files, conc, run_id):
    data_dir = tempfile.mkdtemp(prefix="exhibit-http-", dir=args.tmp)
    log_path = os.path.join(args.log_dir, f"server-c{conc}.log")
    proc = None
    try:
        platform = make_key(args.exhibit, data_dir, "platform")
        buyer = make_key(args.exhibit, data_dir, "buyer", BUYER)
        proc, port = start_server(args.exhibit, data_dir, log_path)
        delivered = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))
        status, body = request(port, "POST", "/v1/cases", platform, json.dumps({
            "order_id": "BENCH-HTTP", "buyer_id": BUYER, "seller_id": "s-bench",
            "reason": "damaged", "category": "electronics", "delivered_at": delivered,
        }).encode(), "application/json")
        if status != 201:
            raise RuntimeError(f"case creation answered {status}: {body[:200]!r}")
        case_id = json.loads(body)["case_id"]
        path = f"/v1/cases/{case_id}/evidence"

        counter = itertools.count()
        lock = threading.Lock()
        lat_ok, statuses, exc_count = [], {}, [0]
        first_exc = []
        hwm_before = proc_status_kib(proc.pid, "VmHWM:")
        cpu_before = proc_cpu_s(proc.pid)
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.monotonic()
        deadline = start + args.seconds

        def worker():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            while time.monotonic() < deadline:
                i = next(counter)
                data = files[i % len(files)]
                tag = f"exhibit-bench {os.getpid()} {run_id} {conc} {i}".encode()
                payload = uniquify(data, tag)
                t0 = time.monotonic()
                try:
                    conn.request("POST", path, body=payload, headers={
                        "Authorization": "Bearer " + buyer,
                        "Content-Type": media_type(data)})
                    resp = conn.getresponse()
                    resp.read()
                    ms = (time.monotonic() - t0) * 1e3
                    with lock:
                        statuses[resp.status] = statuses.get(resp.status, 0) + 1
                        if resp.status == 201:
                            lat_ok.append(ms)
                    if resp.getheader("Connection", "").lower() == "close":
                        conn.close()
                except (OSError, http.client.HTTPException) as e:
                    with lock:
                        exc_count[0] += 1
                        if not first_exc:
                            first_exc.append(repr(e))
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.close()

        threads = [threading.Thread(target=worker) for _ in range(conc)]
        for t in threads:
            t.start()
        next_note = start + 5
        while any(t.is_alive() for t in threads):
            time.sleep(0.2)
            if time.monotonic() >= next_note and time.monotonic() < deadline:
                with lock:
                    done = sum(statuses.values())
                print(f"    [{conc} uploaders] {time.monotonic() - start:4.0f} s: {done} responses, "
                      f"{exc_count[0]} connection errors", flush=True)
                next_note += 5
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu_after = proc_cpu_s(proc.pid)
        hwm = proc_status_kib(proc.pid, "VmHWM:")
        rss = proc_status_kib(proc.pid, "VmRSS:")
        alive = proc.poll() is None
        stop_server(proc)
        proc = None

        ok = len(lat_ok)
        lat_ok.sort()
        errors = sum(v for k, v in statuses.items() if k != 201) + exc_count[0]
        err_text = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()) if k != 201)
        if exc_count[0]:
            err_text += (", " if err_text else "") + f"connection: {exc_count[0]} ({first_exc[0]})"
        client_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        server_cpu = cpu_after - cpu_before if cpu_before >= 0 and cpu_after >= 0 else -1
        print(f"  {conc} concurrent uploaders, {elapsed:.1f} s:")
        print(f"    {ok / elapsed:7.2f} req/s ({ok} stored)   latency p50 {pct(lat_ok, 50):7.1f} ms"
              f"   p99 {pct(lat_ok, 99):7.1f} ms   max {lat_ok[-1] if lat_ok else float('nan'):7.1f} ms")
        print(f"    errors: {errors}" + (f" ({err_text})" if errors else "")
              + ("" if alive else "   SERVER DIED during the run"))
        print(f"    server peak RSS VmHWM {hwm / 1024:7.1f} MiB (at start {hwm_before / 1024:.1f} MiB,"
              f" resident after {rss / 1024:.1f} MiB); server CPU {server_cpu:.1f} s"
              f" = {server_cpu / ok * 1e3 if ok else float('nan'):.0f} ms/upload")
        print(f"    client CPU {client_cpu:.1f} s ({100 * client_cpu / elapsed:.0f}% of one core)"
              f"; server log: {log_path}", flush=True)
        return {"conc": conc, "rps": ok / elapsed, "errors": errors, "hwm_mib": hwm / 1024}
    finally:
        if proc is not None:
            stop_server(proc)
        shutil.rmtree(data_dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exhibit", required=True)
    ap.add_argument("--files", required=True, help="file with one image path per line")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--concurrency", default="2,8")
    ap.add_argument("--tmp", default=os.environ.get("TMPDIR") or "/tmp")
    ap.add_argument("--log-dir", default=None)
    args = ap.parse_args()
    args.log_dir = args.log_dir or args.tmp
    os.makedirs(args.log_dir, exist_ok=True)

    files, kinds, skipped = [], {}, 0
    with open(args.files) as f:
        for line in f:
            p = line.rstrip("\n")
            if not p:
                continue
            with open(p, "rb") as img:
                data = img.read()
            if uniquify(data, b"probe") is None:
                skipped += 1
                continue
            files.append(data)
            kinds[kind(data)] = kinds.get(kind(data), 0) + 1
    if not files:
        print("  no usable files for the HTTP benchmark; skipped")
        return 0
    print(f"  uploads cycle through {len(files)} accepted corpus photos ("
          + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
          + f"; {sum(map(len, files)) / len(files) / 1024:.0f} KiB average), each made unique"
          f" per request; {args.seconds:.0f} s per level; raw image bodies as a buyer key")
    if skipped:
        print(f"  ({skipped} listed files could not be made unique and are not uploaded)")
    sys.stdout.flush()
    run_id = int(time.time())
    for conc in [int(c) for c in args.concurrency.split(",") if c.strip()]:
        run_level(args, files, conc, run_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
