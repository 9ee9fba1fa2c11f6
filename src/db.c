/* db.c - SQLite connection, migrations and statement helpers (see db.h). */
#include "exhibit/db.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "exhibit/embedded.h"
#include "exhibit/log.h"

struct db {
    sqlite3 *conn;
    pthread_mutex_t mu;
    int version;
};

struct db_stmt {
    sqlite3_stmt *st;
    db *owner;
};

static ex_rc sql_fail(db *d, ex_error *e, const char *what)
{
    int code = sqlite3_extended_errcode(d->conn);
    if ((code & 0xff) == SQLITE_CONSTRAINT)
        return ex_fail(e, EX_ECONFLICT, "conflict", "%s: %s", what, sqlite3_errmsg(d->conn));
    if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED)
        return ex_fail(e, EX_EBUSY, "database_busy", "%s: database busy", what);
    log_event("error", "sqlite", "what=\"%s\" code=%d msg=\"%s\"", what, code,
              sqlite3_errmsg(d->conn));
    return ex_fail(e, EX_EDB, "database_error", "%s: %s", what, sqlite3_errmsg(d->conn));
}

static void sqlite_log(void *arg, int code, const char *msg)
{
    (void)arg;
    /* Schema-change and WAL-recovery notices are routine; real errors go to our log. */
    if ((code & 0xff) == SQLITE_SCHEMA || code == SQLITE_NOTICE_RECOVER_WAL) return;
    log_event("warn", "sqlite", "code=%d msg=\"%s\"", code, msg);
}

static ex_rc exec_sql(db *d, const char *sql, ex_error *e)
{
    char *err = NULL;
    if (sqlite3_exec(d->conn, sql, NULL, NULL, &err) != SQLITE_OK) {
        ex_rc rc = ex_fail(e, EX_EDB, "database_error", "%s", err ? err : "sqlite error");
        sqlite3_free(err);
        return rc;
    }
    return EX_OK;
}

static ex_rc migrate(db *d, ex_error *e)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->conn, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return sql_fail(d, e, "read schema version");
    int have = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    for (size_t i = 0; i < schema_files_count; i++) {
        int v = atoi(schema_files[i].name); /* files are NNN_name.sql */
        if (v <= have) continue;
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d;", v);
        ex_rc rc = exec_sql(d, "BEGIN IMMEDIATE", e);
        if (!rc) rc = exec_sql(d, (const char *)schema_files[i].data, e);
        if (!rc) rc = exec_sql(d, pragma, e);
        if (!rc) rc = exec_sql(d, "COMMIT", e);
        if (rc) {
            exec_sql(d, "ROLLBACK", NULL);
            return ex_fail(e, rc, "migration_failed", "migration %s failed: %s",
                           schema_files[i].name, e ? e->message : "");
        }
        log_event("info", "migration", "applied=%s", schema_files[i].name);
        have = v;
    }
    d->version = have;
    return EX_OK;
}

static void sqlite_configure(void)
{
    sqlite3_config(SQLITE_CONFIG_LOG, sqlite_log, NULL);
}

ex_rc db_open(const char *path, db **out, ex_error *e)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_configure);
    db *d = calloc(1, sizeof *d);
    if (!d) return ex_fail(e, EX_ENOMEM, "out_of_memory", "cannot allocate database handle");
    pthread_mutex_init(&d->mu, NULL);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(path, &d->conn, flags, NULL) != SQLITE_OK) {
        ex_rc rc = ex_fail(e, EX_EDB, "database_error", "cannot open %s: %s", path,
                           d->conn ? sqlite3_errmsg(d->conn) : "out of memory");
        db_close(d);
        return rc;
    }
    sqlite3_busy_timeout(d->conn, 5000);
    ex_rc rc = exec_sql(d,
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                        "PRAGMA foreign_keys=ON; PRAGMA trusted_schema=OFF;",
                        e);
    if (!rc) rc = migrate(d, e);
    if (rc) {
        db_close(d);
        return rc;
    }
    *out = d;
    return EX_OK;
}

void db_close(db *d)
{
    if (!d) return;
    if (d->conn) sqlite3_close_v2(d->conn);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

int db_schema_version(db *d)
{
    return d->version;
}

void db_lock(db *d)
{
    pthread_mutex_lock(&d->mu);
}

void db_unlock(db *d)
{
    pthread_mutex_unlock(&d->mu);
}

ex_rc db_begin(db *d, ex_error *e)
{
    if (sqlite3_exec(d->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return sql_fail(d, e, "begin");
    return EX_OK;
}

ex_rc db_commit(db *d, ex_error *e)
{
    if (sqlite3_exec(d->conn, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        ex_rc rc = sql_fail(d, e, "commit");
        db_rollback(d);
        return rc;
    }
    return EX_OK;
}

void db_rollback(db *d)
{
    if (!sqlite3_get_autocommit(d->conn)) sqlite3_exec(d->conn, "ROLLBACK", NULL, NULL, NULL);
}

ex_rc db_prepare(db *d, const char *sql, db_stmt **out, ex_error *e)
{
    db_stmt *s = calloc(1, sizeof *s);
    if (!s) return ex_fail(e, EX_ENOMEM, "out_of_memory", "cannot allocate statement");
    s->owner = d;
    if (sqlite3_prepare_v2(d->conn, sql, -1, &s->st, NULL) != SQLITE_OK) {
        free(s);
        return sql_fail(d, e, "prepare");
    }
    *out = s;
    return EX_OK;
}

void db_finalize(db_stmt *s)
{
    if (!s) return;
    sqlite3_finalize(s->st);
    free(s);
}

void db_reset(db_stmt *s)
{
    sqlite3_reset(s->st);
    sqlite3_clear_bindings(s->st);
}

void db_bind_text(db_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s->st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s->st, i);
}

void db_bind_int(db_stmt *s, int i, int64_t v)
{
    sqlite3_bind_int64(s->st, i, v);
}

void db_bind_double(db_stmt *s, int i, double v)
{
    sqlite3_bind_double(s->st, i, v);
}

void db_bind_blob(db_stmt *s, int i, const void *v, int len)
{
    sqlite3_bind_blob(s->st, i, v, len, SQLITE_TRANSIENT);
}

int db_step(db_stmt *s, ex_error *e)
{
    int rc = sqlite3_step(s->st);
    if (rc == SQLITE_ROW) return DB_ROW;
    if (rc == SQLITE_DONE) return DB_DONE;
    sql_fail(s->owner, e, "query");
    return -1;
}

ex_rc db_exec_stmt(db_stmt *s, ex_error *e)
{
    int rc = sqlite3_step(s->st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) return EX_OK;
    return sql_fail(s->owner, e, "statement");
}

const char *db_col_text(db_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s->st, i);
    return t ? (const char *)t : "";
}

int db_col_is_null(db_stmt *s, int i)
{
    return sqlite3_column_type(s->st, i) == SQLITE_NULL;
}

int64_t db_col_int(db_stmt *s, int i)
{
    return sqlite3_column_int64(s->st, i);
}

double db_col_double(db_stmt *s, int i)
{
    return sqlite3_column_double(s->st, i);
}

const void *db_col_blob(db_stmt *s, int i, int *len)
{
    *len = sqlite3_column_bytes(s->st, i);
    return sqlite3_column_blob(s->st, i);
}

int64_t db_last_rowid(db *d)
{
    return sqlite3_last_insert_rowid(d->conn);
}

int db_changes(db *d)
{
    return sqlite3_changes(d->conn);
}
