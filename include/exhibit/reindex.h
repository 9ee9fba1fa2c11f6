/* reindex.h - recomputes stored reuse signatures after a signature version change.
 *
 * Every blob whose rsig is missing or of another version (reuse.h) is decoded again from its
 * stored original (analyze_file, so the same limits and decode slots apply) and its signature
 * written back, one row at a time in its own short transaction: stopping at any moment loses
 * nothing and the next run goes on where this one stopped. The server runs it in a background
 * thread at start when its index found stale rows, adding each image to the index as it goes;
 * `exhibit reindex` runs it from the command line with a progress bar. Both can run at once:
 * a row the other one already rewrote is read back, not recomputed.
 */
#ifndef EXHIBIT_REINDEX_H
#define EXHIBIT_REINDEX_H

#include <stddef.h>

#include "exhibit/app.h"
#include "exhibit/err.h"

typedef struct reindex_stats {
    size_t total;  /* rows that needed work when the run started */
    size_t done;   /* rewritten (or found rewritten by another run) */
    size_t failed; /* originals that are missing or no longer decode (left stale, logged) */
} reindex_stats;

/* progress (may be NULL) is called after each row. m (may be NULL) receives every image whose
 * signature is now current. stop (may be NULL) is polled between rows: non-zero ends the run.
 * Errors: EX_EDB when the database cannot be read or written. */
EX_MUST_CHECK ex_rc reindex_run(app *a, struct matcher *m, volatile int *stop,
                                void (*progress)(const reindex_stats *s, void *arg), void *arg,
                                reindex_stats *out, ex_error *e);

#endif
