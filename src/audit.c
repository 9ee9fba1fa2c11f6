/* audit.c - hash-chained audit log (see audit.h). */
#include "exhibit/audit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exhibit/hash.h"
#include "exhibit/util.h"

static const char ZERO_HASH[65] =
    "0000000000000000000000000000000000000000000000000000000000000000";

static ex_rc row_hash(const char *prev, int64_t seq, const char *at, const char *actor,
                      const char *action, const char *subject, const char *detail, char out[65])
{
    sha256_ctx c = {0};
    char num[32];
    uint8_t d[32];
    snprintf(num, sizeof num, "%" PRId64, seq);
    const char *parts[] = {prev, num, at, actor, action, subject, detail};
    ex_rc rc = sha256_init(&c);
    for (size_t i = 0; !rc && i < sizeof parts / sizeof *parts; i++) {
        if (i) rc = sha256_update(&c, "|", 1);
        if (!rc) rc = sha256_update(&c, parts[i], strlen(parts[i]));
    }
    if (!rc) rc = sha256_final(&c, d);
    sha256_release(&c);
    if (!rc) util_hex(d, 32, out);
    return rc;
}

ex_rc audit_append(db *d, const char *actor, const char *action, const char *subject,
                   const char *detail, ex_error *e)
{
    db_stmt *s = NULL;
    char prev[65], hash[65], at[UTIL_TIME_LEN];
    int64_t seq = 1;
    ex_rc rc = db_prepare(d, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", &s, e);
    if (rc) return rc;
    int r = db_step(s, e);
    if (r < 0) {
        db_finalize(s);
        return EX_EDB;
    }
    if (r == DB_ROW) {
        seq = db_col_int(s, 0) + 1;
        snprintf(prev, sizeof prev, "%s", db_col_text(s, 1));
    } else {
        memcpy(prev, ZERO_HASH, sizeof prev);
    }
    db_finalize(s);
    if (!detail) detail = "{}";
    util_time_now(at);
    if (row_hash(prev, seq, at, actor, action, subject, detail, hash))
        return ex_fail(e, EX_EINTERNAL, "internal_error", "audit hashing failed");
    if ((rc = db_prepare(d,
                         "INSERT INTO audit_log(seq, at, actor, action, subject, detail, "
                         "prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)",
                         &s, e)))
        return rc;
    db_bind_int(s, 1, seq);
    db_bind_text(s, 2, at);
    db_bind_text(s, 3, actor);
    db_bind_text(s, 4, action);
    db_bind_text(s, 5, subject);
    db_bind_text(s, 6, detail);
    db_bind_text(s, 7, prev);
    db_bind_text(s, 8, hash);
    rc = db_exec_stmt(s, e);
    db_finalize(s);
    return rc;
}

ex_rc audit_verify(db *d, int64_t *rows, int64_t *bad_seq, ex_error *e)
{
    db_stmt *s = NULL;
    char prev[65], want[65];
    int64_t expect_seq = 1, n = 0;
    ex_rc rc = EX_OK;
    memcpy(prev, ZERO_HASH, sizeof prev);
    db_lock(d);
    if ((rc = db_prepare(d,
                         "SELECT seq, at, actor, action, subject, detail, prev_hash, hash "
                         "FROM audit_log ORDER BY seq",
                         &s, e))) {
        db_unlock(d);
        return rc;
    }
    int r;
    while ((r = db_step(s, e)) == DB_ROW) {
        int64_t seq = db_col_int(s, 0);
        if (seq != expect_seq) {
            *bad_seq = seq;
            rc = ex_fail(e, EX_ECONFLICT, "audit_chain_broken",
                         "row %" PRId64 ": expected seq %" PRId64 " (a row was removed)", seq,
                         expect_seq);
            break;
        }
        if (strcmp(db_col_text(s, 6), prev) != 0) {
            *bad_seq = seq;
            rc = ex_fail(e, EX_ECONFLICT, "audit_chain_broken",
                         "row %" PRId64 ": prev_hash does not match the previous row", seq);
            break;
        }
        if (row_hash(prev, seq, db_col_text(s, 1), db_col_text(s, 2), db_col_text(s, 3),
                     db_col_text(s, 4), db_col_text(s, 5), want)) {
            rc = ex_fail(e, EX_EINTERNAL, "internal_error", "audit hashing failed");
            break;
        }
        if (strcmp(want, db_col_text(s, 7)) != 0) {
            *bad_seq = seq;
            rc = ex_fail(e, EX_ECONFLICT, "audit_chain_broken",
                         "row %" PRId64 ": contents do not match its hash (row was altered)", seq);
            break;
        }
        memcpy(prev, want, sizeof prev);
        expect_seq++;
        n++;
    }
    if (!rc && r < 0) rc = EX_EDB;
    db_finalize(s);
    db_unlock(d);
    if (!rc) *rows = n;
    return rc;
}
