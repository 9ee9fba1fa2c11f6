/* Unit tests for browser sessions: creation, lookup, expiry, revocation, sign-out. */
#include <unistd.h>

#include "exhibit/session.h"
#include "unit.h"

static char dir[256];

static db *open_db(void)
{
    char p[512];
    db *d = NULL;
    snprintf(p, sizeof p, "%s/s.db", dir);
    return db_open(p, &d, NULL) == EX_OK ? d : NULL;
}

static void exec(db *d, const char *sql)
{
    db_stmt *s;
    db_lock(d);
    if (db_prepare(d, sql, &s, NULL) == EX_OK) {
        CHECK(db_exec_stmt(s, NULL) == EX_OK);
        db_finalize(s);
    }
    db_unlock(d);
}

TEST(create_lookup_end)
{
    db *d = open_db();
    char secret[KEY_SECRET_LEN], token[SESSION_TOKEN_LEN];
    key_info k;
    session_info si, got;
    CHECK(keys_create(d, ROLE_MEDIATOR, NULL, "t", secret, &k, NULL) == EX_OK);
    CHECK(session_create(d, &k, 3600, token, &si, NULL) == EX_OK);
    CHECK(strlen(token) == 64 && strlen(si.csrf) == 64);
    CHECK(strcmp(token, si.csrf) != 0);
    CHECK(session_lookup(d, token, &got, NULL) == EX_OK);
    CHECK(got.key.id == k.id && got.key.role == ROLE_MEDIATOR);
    CHECK(strcmp(got.csrf, si.csrf) == 0);
    /* the token itself is not stored, only its hash */
    db_stmt *s;
    db_lock(d);
    CHECK(db_prepare(d, "SELECT count(*) FROM sessions WHERE token_hash = ?", &s, NULL) == EX_OK);
    db_bind_text(s, 1, token);
    CHECK(db_step(s, NULL) == DB_ROW && db_col_int(s, 0) == 0);
    db_finalize(s);
    db_unlock(d);
    ex_error e;
    CHECK(session_end(d, token, NULL) == EX_OK);
    CHECK(session_lookup(d, token, &got, &e) == EX_EAUTH);
    CHECK(strcmp(e.code, "session_expired") == 0);
    db_close(d);
}

TEST(expired_and_revoked_sessions_fail)
{
    db *d = open_db();
    char secret[KEY_SECRET_LEN], t1[SESSION_TOKEN_LEN], t2[SESSION_TOKEN_LEN];
    key_info k;
    session_info si;
    CHECK(keys_create(d, ROLE_WAREHOUSE, NULL, "t", secret, &k, NULL) == EX_OK);
    CHECK(session_create(d, &k, -1, t1, &si, NULL) == EX_OK);
    CHECK(session_lookup(d, t1, &si, NULL) == EX_EAUTH);
    CHECK(session_create(d, &k, 3600, t2, &si, NULL) == EX_OK);
    CHECK(session_lookup(d, t2, &si, NULL) == EX_OK);
    exec(d, "UPDATE keys SET revoked_at = '2026-01-01T00:00:00Z'");
    CHECK(session_lookup(d, t2, &si, NULL) == EX_EAUTH);
    CHECK(session_lookup(d, "", &si, NULL) == EX_EAUTH);
    CHECK(session_lookup(d, NULL, &si, NULL) == EX_EAUTH);
    db_close(d);
}

TEST(token_compare)
{
    CHECK(session_token_equal("abc", "abc"));
    CHECK(!session_token_equal("abc", "abd"));
    CHECK(!session_token_equal("abc", "abcd"));
    CHECK(!session_token_equal("", "a"));
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/exhibit-test-session-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    RUN(create_lookup_end);
    RUN(expired_and_revoked_sessions_fail);
    RUN(token_compare);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    UNIT_DONE();
}
