/* keys.c - API keys (see keys.h). */
#include "exhibit/keys.h"

#include <stdio.h>
#include <string.h>

#include "exhibit/audit.h"
#include "exhibit/hash.h"
#include "exhibit/util.h"

static const char *const role_names[] = {"", "admin", "platform", "buyer", "warehouse", "mediator"};

const char *key_role_name(key_role r)
{
    return (unsigned)r < sizeof role_names / sizeof *role_names ? role_names[r] : "";
}

key_role key_role_parse(const char *s)
{
    for (int i = 1; s && i < (int)(sizeof role_names / sizeof *role_names); i++)
        if (strcmp(s, role_names[i]) == 0) return (key_role)i;
    return ROLE_NONE;
}

ex_rc keys_create(db *d, key_role role, const char *subject, const char *actor,
                  char secret[KEY_SECRET_LEN], key_info *out, ex_error *e)
{
    char hash[65], now[UTIL_TIME_LEN], detail[256];
    db_stmt *s = NULL;
    ex_rc rc;
    if (role == ROLE_NONE)
        return ex_fail(e, EX_EINVAL, "invalid_role",
                       "role must be one of admin, platform, buyer, warehouse, mediator");
    if (subject && !*subject) subject = NULL;
    if (role == ROLE_BUYER && !subject)
        return ex_fail(e, EX_EINVAL, "missing_subject", "a buyer key needs --subject BUYER_ID");
    if (subject && strlen(subject) >= KEY_SUBJECT_MAX)
        return ex_fail(e, EX_EINVAL, "invalid_subject", "subject is longer than %d bytes",
                       KEY_SUBJECT_MAX - 1);
    if (util_random_id("exk_", 24, secret, KEY_SECRET_LEN))
        return ex_fail(e, EX_EINTERNAL, "internal_error", "no randomness available");
    if (sha256_hex(secret, strlen(secret), hash))
        return ex_fail(e, EX_EINTERNAL, "internal_error", "hashing failed");
    util_time_now(now);
    db_lock(d);
    if ((rc = db_begin(d, e))) goto out;
    if ((rc = db_prepare(d,
                         "INSERT INTO keys(key_hash, role, subject, created_at) "
                         "VALUES (?,?,?,?)",
                         &s, e)))
        goto fail;
    db_bind_text(s, 1, hash);
    db_bind_text(s, 2, key_role_name(role));
    db_bind_text(s, 3, subject);
    db_bind_text(s, 4, now);
    rc = db_exec_stmt(s, e);
    db_finalize(s);
    if (rc) goto fail;
    int64_t id = db_last_rowid(d);
    /* The detail names the key by id and role only: the secret never reaches the log. */
    snprintf(detail, sizeof detail, "{\"key_id\":%lld,\"role\":\"%s\"}", (long long)id,
             key_role_name(role));
    char subj[32];
    snprintf(subj, sizeof subj, "key:%lld", (long long)id);
    if ((rc = audit_append(d, actor, "key.created", subj, detail, e))) goto fail;
    if ((rc = db_commit(d, e))) goto out;
    out->id = id;
    out->role = role;
    snprintf(out->subject, sizeof out->subject, "%s", subject ? subject : "");
    goto out;
fail:
    db_rollback(d);
out:
    db_unlock(d);
    return rc;
}

ex_rc keys_lookup(db *d, const char *secret, key_info *out, ex_error *e)
{
    char hash[65];
    db_stmt *s = NULL;
    ex_rc rc = EX_OK;
    if (!secret || strlen(secret) != KEY_TEXT_LEN || strncmp(secret, "exk_", 4) != 0)
        return ex_fail(e, EX_EAUTH, "unauthorized",
                       "the API key is not valid: send Authorization: Bearer <key>");
    if (sha256_hex(secret, strlen(secret), hash))
        return ex_fail(e, EX_EINTERNAL, "internal_error", "hashing failed");
    db_lock(d);
    if ((rc = db_prepare(d,
                         "SELECT id, role, subject FROM keys WHERE key_hash = ? "
                         "AND revoked_at IS NULL",
                         &s, e)))
        goto out;
    db_bind_text(s, 1, hash);
    int r = db_step(s, e);
    if (r == DB_ROW) {
        out->id = db_col_int(s, 0);
        out->role = key_role_parse(db_col_text(s, 1));
        snprintf(out->subject, sizeof out->subject, "%s", db_col_text(s, 2));
    } else if (r == DB_DONE) {
        rc = ex_fail(e, EX_EAUTH, "unauthorized", "unknown or revoked API key");
    } else {
        rc = EX_EDB;
    }
    db_finalize(s);
out:
    db_unlock(d);
    return rc;
}

int64_t keys_count(db *d)
{
    db_stmt *s = NULL;
    int64_t n = -1;
    db_lock(d);
    if (!db_prepare(d, "SELECT count(*) FROM keys", &s, NULL) && db_step(s, NULL) == DB_ROW)
        n = db_col_int(s, 0);
    db_finalize(s);
    db_unlock(d);
    return n;
}
