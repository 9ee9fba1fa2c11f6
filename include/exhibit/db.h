/* db.h - the SQLite adapter (the only module that includes sqlite3.h).
 *
 * One connection per process, shared by all request threads and serialised by a mutex:
 * callers bracket a unit of work with db_lock/db_unlock (and db_begin/db_commit inside it for
 * writes). SQL is only ever run through prepared statements with bound parameters.
 * db_open sets WAL mode, synchronous=FULL (an acknowledged write survives power loss), foreign
 * keys, a busy timeout, and applies the embedded migrations in schemas/ in order, tracked by
 * PRAGMA user_version.
 *
 * Statement helpers: text columns are valid until the next step/reset of that statement.
 * Every prepared statement must be finalized with db_finalize.
 */
#ifndef EXHIBIT_DB_H
#define EXHIBIT_DB_H

#include <stdint.h>

#include "exhibit/err.h"

typedef struct db db;
typedef struct db_stmt db_stmt;

enum { DB_ROW = 1, DB_DONE = 2 };

ex_rc db_open(const char *path, db **out, ex_error *e) EX_MUST_CHECK;
void db_close(db *d);
/* Schema version after migrations. */
int db_schema_version(db *d);

void db_lock(db *d);
void db_unlock(db *d);
ex_rc db_begin(db *d, ex_error *e) EX_MUST_CHECK; /* BEGIN IMMEDIATE */
ex_rc db_commit(db *d, ex_error *e) EX_MUST_CHECK;
void db_rollback(db *d);

ex_rc db_prepare(db *d, const char *sql, db_stmt **out, ex_error *e) EX_MUST_CHECK;
void db_finalize(db_stmt *s);
void db_reset(db_stmt *s);
/* Binds are 1-based. A NULL text binds SQL NULL. Errors surface at db_step. */
void db_bind_text(db_stmt *s, int i, const char *v);
void db_bind_int(db_stmt *s, int i, int64_t v);
void db_bind_double(db_stmt *s, int i, double v);
void db_bind_blob(db_stmt *s, int i, const void *v, int len);
/* DB_ROW, DB_DONE, or a negative value on error (message in e: EX_ECONFLICT "conflict" for a
 * constraint violation, EX_EDB otherwise). */
int db_step(db_stmt *s, ex_error *e);
/* Runs a statement that returns no rows; EX_OK or the error db_step reported. */
ex_rc db_exec_stmt(db_stmt *s, ex_error *e) EX_MUST_CHECK;

const char *db_col_text(db_stmt *s, int i); /* "" for NULL */
int db_col_is_null(db_stmt *s, int i);
int64_t db_col_int(db_stmt *s, int i);
double db_col_double(db_stmt *s, int i);
const void *db_col_blob(db_stmt *s, int i, int *len);

int64_t db_last_rowid(db *d);
int db_changes(db *d);

#endif
