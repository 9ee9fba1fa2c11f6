/* Unit tests for the audit hash chain, through a real SQLite database. */
#include <unistd.h>

#include "exhibit/audit.h"
#include "exhibit/db.h"
#include "exhibit/keys.h"
#include "unit.h"

static char dir[256];

static db *fresh_db(const char *name)
{
    char p[512];
    db *d = NULL;
    snprintf(p, sizeof p, "%s/%s.db", dir, name);
    if (db_open(p, &d, NULL) != EX_OK) return NULL;
    return d;
}

static void append_n(db *d, int n)
{
    for (int i = 0; i < n; i++) {
        char subj[16];
        snprintf(subj, sizeof subj, "s%d", i);
        db_lock(d);
        if (db_begin(d, NULL) == EX_OK) {
            if (audit_append(d, "test", "thing.done", subj, "{\"i\":1}", NULL) == EX_OK)
                CHECK(db_commit(d, NULL) == EX_OK);
            else
                db_rollback(d);
        }
        db_unlock(d);
    }
}

/* Tampering needs the append-only triggers out of the way, as an attacker with file access
 * would do; the chain must catch it anyway. */
static void tamper(db *d, const char *sql)
{
    db_stmt *s;
    const char *drop[] = {"DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete"};
    db_lock(d);
    for (int i = 0; i < 2; i++)
        if (db_prepare(d, drop[i], &s, NULL) == EX_OK) {
            if (db_exec_stmt(s, NULL) != EX_OK) fprintf(stderr, "drop trigger failed\n");
            db_finalize(s);
        }
    if (db_prepare(d, sql, &s, NULL) == EX_OK) {
        CHECK(db_exec_stmt(s, NULL) == EX_OK);
        db_finalize(s);
    }
    db_unlock(d);
}

TEST(intact_chain_verifies)
{
    db *d = fresh_db("intact");
    CHECK(d != NULL);
    if (!d) return;
    CHECK(db_schema_version(d) >= 1);
    append_n(d, 5);
    int64_t rows = 0, bad = 0;
    CHECK(audit_verify(d, &rows, &bad, NULL) == EX_OK);
    CHECK(rows == 5);
    db_close(d);
}

TEST(triggers_refuse_updates)
{
    db *d = fresh_db("triggers");
    db_stmt *s;
    append_n(d, 2);
    db_lock(d);
    CHECK(db_prepare(d, "UPDATE audit_log SET actor = 'x' WHERE seq = 1", &s, NULL) == EX_OK);
    CHECK(db_exec_stmt(s, NULL) != EX_OK);
    db_finalize(s);
    CHECK(db_prepare(d, "DELETE FROM audit_log WHERE seq = 1", &s, NULL) == EX_OK);
    CHECK(db_exec_stmt(s, NULL) != EX_OK);
    db_finalize(s);
    db_unlock(d);
    db_close(d);
}

TEST(altered_removed_reordered_rows_are_named)
{
    static const struct {
        const char *sql;
        int64_t bad;
    } cases[] = {
        {"UPDATE audit_log SET detail = '{\"i\":2}' WHERE seq = 3", 3},
        {"DELETE FROM audit_log WHERE seq = 2", 3},
        {"UPDATE audit_log SET subject = CASE seq WHEN 2 THEN 's2' ELSE 's1' END "
         "WHERE seq IN (2, 3)",
         2},
        {"UPDATE audit_log SET at = '2000-01-01T00:00:00Z' WHERE seq = 5", 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char name[16];
        snprintf(name, sizeof name, "tamper%zu", i);
        db *d = fresh_db(name);
        append_n(d, 5);
        tamper(d, cases[i].sql);
        int64_t rows = 0, bad = 0;
        ex_error e = {{0}, {0}};
        CHECKF(audit_verify(d, &rows, &bad, &e) == EX_ECONFLICT, "case %zu", i);
        CHECKF(bad == cases[i].bad, "case %zu: bad row %lld", i, (long long)bad);
        CHECK(strcmp(e.code, "audit_chain_broken") == 0);
        db_close(d);
    }
}

TEST(key_creation_is_audited_and_secret_not_stored)
{
    db *d = fresh_db("keys");
    char secret[KEY_SECRET_LEN];
    key_info k, found;
    ex_error e;
    CHECK(keys_create(d, ROLE_BUYER, NULL, "test", secret, &k, &e) == EX_EINVAL);
    CHECK(keys_create(d, ROLE_BUYER, "b-1", "test", secret, &k, &e) == EX_OK);
    CHECK(keys_lookup(d, secret, &found, &e) == EX_OK);
    CHECK(found.role == ROLE_BUYER && strcmp(found.subject, "b-1") == 0);
    char wrong[KEY_SECRET_LEN];
    memcpy(wrong, secret, sizeof wrong);
    wrong[10] = wrong[10] == 'a' ? 'b' : 'a';
    CHECK(keys_lookup(d, wrong, &found, &e) == EX_EAUTH);
    CHECK(keys_lookup(d, "", &found, &e) == EX_EAUTH);
    db_stmt *s;
    db_lock(d);
    CHECK(db_prepare(d, "SELECT count(*) FROM keys WHERE key_hash = ?", &s, NULL) == EX_OK);
    db_bind_text(s, 1, secret);
    CHECK(db_step(s, NULL) == DB_ROW && db_col_int(s, 0) == 0);
    db_finalize(s);
    db_unlock(d);
    int64_t rows = 0, bad = 0;
    CHECK(audit_verify(d, &rows, &bad, NULL) == EX_OK && rows == 1);
    db_close(d);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/exhibit-test-audit-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    RUN(intact_chain_verifies);
    RUN(triggers_refuse_updates);
    RUN(altered_removed_reordered_rows_are_named);
    RUN(key_creation_is_audited_and_secret_not_stored);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    UNIT_DONE();
}
