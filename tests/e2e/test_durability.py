#!/usr/bin/env python3
"""test_durability.py - acknowledged uploads survive SIGKILL.

A burst of concurrent uploads of real photos (8 workers x 40 uploads over 4 cases; each upload a
real JPEG made byte-unique with a COM segment, plus some unmodified originals so exact
duplicates across cases happen too) runs against the ASan server; once 30% have been answered
the server gets SIGKILL. It is restarted on the same data dir and then: every upload that got a
2xx is listed on its case with the same evidence_id and sha256, its blob exists and hashes to
that sha256, every listed item has a valid blob, DIR/tmp is empty, the server still works,
SIGTERM exits 0 and `audit verify` passes.
"""

import hashlib
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, Failure, NoResponse, Runner, Server, audit_verify,  # noqa: E402
                     check, expect_status, photo, with_jpeg_comment)

WORKERS = 8
PER_WORKER = 40
KILL_AFTER = int(WORKERS * PER_WORKER * 0.3)
BURST_TIMEOUT = 600.0

PHOTOS = ["drewnoakes_Sony Cybershot (3).jpg", "drewnoakes_FujiFilm FinePixS1Pro (1).jpg",
          "drewnoakes_Sanyo SR6.jpg", "drewnoakes_Kodak DC240.jpg",
          "drewnoakes_Ricoh RDC5300.jpg", "drewnoakes_Samsung GT-I9000 (Galaxy S).jpg",
          "drewnoakes_Nikon D1X.jpg", "drewnoakes_Casio EX-S1.jpg", "drewnoakes_Issue 116.jpg",
          "drewnoakes_Canon EOS D60.jpg", "drewnoakes_HTC Desire.jpg",
          "drewnoakes_Canon EOS REBEL T3i.jpg", "drewnoakes_Olympus PEN E-P3.jpg",
          "recurser_Landscape_3.jpg", "drewnoakes_Apple iPhone 4.jpg"]

R = Runner("e2e")
S = None
ST = {"acked": [], "errors_before_kill": [], "busy": 0, "cut": 0, "cut_shas": set(),
      "cases": []}


def plan():
    """(worker, i) -> (case index, role, bytes). Buyers only upload to their own cases."""
    tasks = {}
    for w in range(WORKERS):
        for i in range(PER_WORKER):
            n = w * PER_WORKER + i
            name = PHOTOS[n % len(PHOTOS)]
            case_ix = (w + i) % 4
            role = ("buyer" if case_ix < 2 else "buyer2") if i % 3 == 0 else \
                ("warehouse" if i % 3 == 1 else "mediator")
            data = photo(name) if n % 16 == 0 else \
                with_jpeg_comment(photo(name), "durability w%d i%d" % (w, i))
            tasks[(w, i)] = (case_ix, role, data)
    return tasks


@R.test
def burst_of_uploads_then_sigkill():
    cases = ST["cases"]
    for buyer in ("b-alice", "b-alice", "b-bob", "b-bob"):
        cases.append(S.create_case(buyer_id=buyer)["case_id"])
    tasks = plan()
    lock = threading.Lock()
    done = [0]
    killed = threading.Event()
    kill_time = [None]

    def worker(w):
        for i in range(PER_WORKER):
            if killed.is_set():
                return
            case_ix, role, data = tasks[(w, i)]
            cid = cases[case_ix]
            try:
                r = S.upload_raw(cid, data, "image/jpeg", role, timeout=120)
            except NoResponse as ex:
                with lock:
                    if killed.is_set():
                        ST["cut"] += 1
                        ST["cut_shas"].add(hashlib.sha256(data).hexdigest())
                    else:
                        ST["errors_before_kill"].append("w%d i%d: %r" % (w, i, ex))
                return
            with lock:
                done[0] += 1
                if r.status in (200, 201):
                    it = r.json["items"][0]
                    ST["acked"].append((cid, it["evidence_id"], it["sha256"], data, r.status))
                elif r.status in (429, 503):
                    ST["busy"] += 1
                else:
                    ST["errors_before_kill"].append("w%d i%d: %s" % (w, i, r.describe()))

    def killer():
        deadline = time.monotonic() + BURST_TIMEOUT
        while time.monotonic() < deadline:
            with lock:
                if done[0] >= KILL_AFTER:
                    break
            if not any(t.is_alive() for t in threads):
                break  # the burst ended early (errors); kill anyway so the rest can run
            time.sleep(0.01)
        killed.set()
        kill_time[0] = time.monotonic()
        S.kill()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(WORKERS)]
    k = threading.Thread(target=killer)
    for t in threads:
        t.start()
    k.start()
    for t in threads:
        t.join()
    k.join()
    ST["burst_seconds"] = kill_time[0] - t0
    print("# %d answered in %.1f s before SIGKILL (%d acked, %d busy), %d cut off by the kill"
          % (done[0], ST["burst_seconds"], len(ST["acked"]), ST["busy"], ST["cut"]))
    check(not ST["errors_before_kill"], "uploads failed before the kill:\n" +
          "\n".join(ST["errors_before_kill"][:10]))
    check(done[0] >= KILL_AFTER, "only %d uploads answered before the kill (timeout)" % done[0])
    check(len(ST["acked"]) >= KILL_AFTER // 2, "only %d acknowledged uploads" % len(ST["acked"]))
    check(ST["cut"] >= 1, "no upload was in flight at the kill, the test proved little")


@R.test
def restart_on_same_data_dir_and_tmp_empty():
    S.kill()  # no-op unless the burst test failed before its kill
    S.start()
    check(not S.tmp_files(), "DIR/tmp not empty after restart: %s" % S.tmp_files()[:5])
    expect_status(S.get("/healthz"), 200)


def _case_evidence():
    out = {}
    for cid in ST["cases"]:
        r = S.get("/v1/cases/" + cid, "mediator")
        expect_status(r, 200)
        out[cid] = r.json["evidence"]
    return out


@R.test
def every_acknowledged_upload_survived():
    ev = _case_evidence()
    missing = []
    for cid, eid, sha, data, status in ST["acked"]:
        items = [e for e in ev[cid] if e.get("sha256") == sha]
        if len(items) != 1 or items[0].get("evidence_id") != eid:
            missing.append("case %s sha %s id %s: found %r" % (cid, sha[:12], eid,
                                                               [e.get("evidence_id")
                                                                for e in items]))
            continue
        p = S.blob_path(sha)
        if not os.path.exists(p):
            missing.append("blob missing for %s" % sha)
            continue
        with open(p, "rb") as f:
            got = f.read()
        if hashlib.sha256(got).hexdigest() != sha or got != data:
            missing.append("blob %s does not verify (%d bytes, want %d)" % (sha[:12], len(got),
                                                                           len(data)))
    check(not missing, "%d of %d acknowledged uploads lost or damaged:\n%s"
          % (len(missing), len(ST["acked"]), "\n".join(missing[:10])))


@R.test
def every_listed_item_has_a_valid_blob_and_no_duplicates():
    ev = _case_evidence()
    bad, listed = [], 0
    for cid, items in ev.items():
        shas = [e.get("sha256") for e in items]
        if len(shas) != len(set(shas)):
            bad.append("case %s lists the same sha256 twice" % cid)
        for e in items:
            listed += 1
            p = S.blob_path(e["sha256"])
            if not os.path.exists(p):
                bad.append("case %s item %s: no blob" % (cid, e.get("evidence_id")))
                continue
            with open(p, "rb") as f:
                got = f.read()
            if hashlib.sha256(got).hexdigest() != e["sha256"] or len(got) != e.get("bytes"):
                bad.append("case %s item %s: blob does not verify" % (cid, e.get("evidence_id")))
    referenced = {e["sha256"] for items in ev.values() for e in items}
    orphans = {os.path.basename(b) for b in S.blob_files()} - referenced
    print("# %d items listed after restart (%d acked); %d blob files are no item's original "
          "(%d of them uploads cut by the kill, the rest presumably derivatives)"
          % (listed, len(ST["acked"]), len(orphans), len(orphans & ST["cut_shas"])))
    check(not bad, "\n".join(bad[:10]))


@R.test
def server_usable_after_restart():
    cid, eid, sha, data, _ = ST["acked"][0] if ST["acked"] else (None,) * 5
    check(cid, "nothing was acknowledged")
    r = S.upload_raw(cid, data, "image/jpeg", "mediator")
    expect_status(r, 200, "re-upload of an acknowledged file")
    check(r.json["items"][0]["evidence_id"] == eid, "re-upload got a new id")
    new = with_jpeg_comment(photo(PHOTOS[0]), "after restart")
    r = S.upload_raw(cid, new, "image/jpeg", "mediator")
    expect_status(r, 201, "new upload after restart")


@R.test
def sigterm_exit_0_and_audit_verifies():
    S.stop()
    check(not S.tmp_files(), "DIR/tmp not empty after shutdown: %s" % S.tmp_files()[:5])
    r = audit_verify(S.data_dir)
    check(r.rc == 0 and "rows verified" in r.stdout, "audit verify after SIGKILL+restart: "
          + r.describe())


def main():
    global S
    print("# exhibit durability test; binary %s" % BIN)
    S = R.watch(Server("durability"))
    try:
        S.start()
    except Failure as ex:
        R.report_fail("server_start", ex)
        S.cleanup(keep=True)
        return R.finish()
    print("# server %s on port %d, data %s" % (S.name, S.port, S.data_dir))
    for fn in R.tests:
        ok = R.run_one(fn.__name__, fn)
        if not ok and fn is burst_of_uploads_then_sigkill and not ST["acked"]:
            break
    keep = R.failed > 0
    if keep:
        print("# data dir kept: %s" % S.data_dir)
    S.cleanup(keep=keep)
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
