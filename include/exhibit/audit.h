/* audit.h - the append-only, hash-chained audit trail.
 *
 * Every state change appends one row in the same transaction as the change itself, so the
 * trail and the data never disagree. Row n stores hash_n = SHA-256(hash_{n-1} "|" seq "|" at
 * "|" actor "|" action "|" subject "|" detail), with hash_0 = 64 zeros; altering, removing or
 * reordering any row breaks every later link, which audit_verify detects.
 */
#ifndef EXHIBIT_AUDIT_H
#define EXHIBIT_AUDIT_H

#include <stdint.h>

#include "exhibit/db.h"
#include "exhibit/err.h"

/* Appends a row. The caller holds db_lock and an open transaction. detail is JSON text
 * (may be NULL: "{}"). */
ex_rc audit_append(db *d, const char *actor, const char *action, const char *subject,
                   const char *detail, ex_error *e) EX_MUST_CHECK;

/* Recomputes the whole chain. EX_OK with *rows = count when intact; EX_ECONFLICT
 * "audit_chain_broken" with *bad_seq = the first bad row's seq and a message saying what is
 * wrong (hash mismatch, gap in seq, broken link) otherwise. Takes db_lock itself. */
ex_rc audit_verify(db *d, int64_t *rows, int64_t *bad_seq, ex_error *e) EX_MUST_CHECK;

#endif
