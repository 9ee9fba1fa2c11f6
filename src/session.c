/* session.c - browser sessions (see session.h). */
#include "exhibit/session.h"

#include <stdio.h>
#include <string.h>

#include "exhibit/audit.h"
#include "exhibit/hash.h"
#include "exhibit/util.h"

ex_rc session_create(db *d, const key_info *k, int ttl_s, char token[SESSION_TOKEN_LEN],
                     session_info *out, ex_error *e)
{
    char hash[65], csrf[SESSION_TOKEN_LEN], now[UTIL_TIME_LEN], who[64], detail[96];
    db_stmt *s = NULL;
    ex_rc rc;
    if (util_random_id("", 32, token, SESSION_TOKEN_LEN) ||
        util_random_id("", 32, csrf, sizeof csrf) || sha256_hex(token, strlen(token), hash))
        return ex_fail(e, EX_EINTERNAL, "internal_error", "no randomness available");
    time_t expires = time(NULL) + ttl_s;
    util_time_now(now);
    snprintf(who, sizeof who, "%s:%lld", key_role_name(k->role), (long long)k->id);
    snprintf(detail, sizeof detail, "{\"key_id\":%lld,\"ttl_s\":%d}", (long long)k->id, ttl_s);
    db_lock(d);
    if ((rc = db_begin(d, e))) goto out;
    if ((rc = db_prepare(d, "DELETE FROM sessions WHERE expires_at < ?", &s, e))) goto fail;
    db_bind_int(s, 1, (int64_t)time(NULL));
    rc = db_exec_stmt(s, e);
    db_finalize(s);
    if (rc) goto fail;
    if ((rc = db_prepare(d,
                         "INSERT INTO sessions(token_hash, key_ref, csrf_token, created_at, "
                         "expires_at) VALUES (?,?,?,?,?)",
                         &s, e)))
        goto fail;
    db_bind_text(s, 1, hash);
    db_bind_int(s, 2, k->id);
    db_bind_text(s, 3, csrf);
    db_bind_text(s, 4, now);
    db_bind_int(s, 5, (int64_t)expires);
    rc = db_exec_stmt(s, e);
    db_finalize(s);
    if (rc) goto fail;
    /* Sessions are audited by key, never by token. */
    if ((rc = audit_append(d, who, "session.created", who, detail, e))) goto fail;
    if ((rc = db_commit(d, e))) goto out;
    out->key = *k;
    memcpy(out->csrf, csrf, sizeof out->csrf);
    out->expires_at = expires;
    goto out;
fail:
    db_rollback(d);
out:
    db_unlock(d);
    return rc;
}

ex_rc session_lookup(db *d, const char *token, session_info *out, ex_error *e)
{
    char hash[65];
    db_stmt *s = NULL;
    ex_rc rc = EX_OK;
    if (!token || strlen(token) != SESSION_TOKEN_LEN - 1)
        return ex_fail(e, EX_EAUTH, "session_expired", "sign in again: the session is not valid");
    if (sha256_hex(token, strlen(token), hash))
        return ex_fail(e, EX_EINTERNAL, "internal_error", "hashing failed");
    db_lock(d);
    if ((rc = db_prepare(d,
                         "SELECT k.id, k.role, k.subject, s.csrf_token, s.expires_at "
                         "FROM sessions s JOIN keys k ON k.id = s.key_ref "
                         "WHERE s.token_hash = ? AND k.revoked_at IS NULL AND s.expires_at > ?",
                         &s, e)))
        goto out;
    db_bind_text(s, 1, hash);
    db_bind_int(s, 2, (int64_t)time(NULL));
    int r = db_step(s, e);
    if (r == DB_ROW) {
        out->key.id = db_col_int(s, 0);
        out->key.role = key_role_parse(db_col_text(s, 1));
        snprintf(out->key.subject, sizeof out->key.subject, "%s", db_col_text(s, 2));
        snprintf(out->csrf, sizeof out->csrf, "%s", db_col_text(s, 3));
        out->expires_at = (time_t)db_col_int(s, 4);
    } else if (r == DB_DONE) {
        rc = ex_fail(e, EX_EAUTH, "session_expired",
                     "the session has ended or expired: sign in again");
    } else {
        rc = EX_EDB;
    }
    db_finalize(s);
out:
    db_unlock(d);
    return rc;
}

ex_rc session_end(db *d, const char *token, ex_error *e)
{
    char hash[65];
    db_stmt *s = NULL;
    if (!token || sha256_hex(token, strlen(token), hash)) return EX_OK;
    db_lock(d);
    ex_rc rc = db_prepare(d, "DELETE FROM sessions WHERE token_hash = ?", &s, e);
    if (!rc) {
        db_bind_text(s, 1, hash);
        rc = db_exec_stmt(s, e);
    }
    db_finalize(s);
    db_unlock(d);
    return rc;
}

int session_token_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la && i < lb; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}
