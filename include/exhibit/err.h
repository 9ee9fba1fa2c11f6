/* err.h - result codes shared by every module.
 *
 * Every fallible function returns an ex_rc; 0 is success and outputs are written only on
 * success. The function that detects a failure describes it in an ex_error (when the caller
 * passed one): a stable snake_case `code` for machines and a `message` a person can act on.
 * Callers propagate the rc and the ex_error unchanged. The HTTP layer maps rc to a status.
 */
#ifndef EXHIBIT_ERR_H
#define EXHIBIT_ERR_H

#include <stddef.h>

typedef enum {
    EX_OK = 0,
    EX_EINVAL,     /* malformed or invalid input (400) */
    EX_EAUTH,      /* missing or unknown credentials (401) */
    EX_EFORBIDDEN, /* authenticated but not allowed (403) */
    EX_ENOTFOUND,  /* unknown id, or one the caller may not see (404) */
    EX_ECONFLICT,  /* state conflict (409) */
    EX_ETOOBIG,    /* body or field over a limit (413) */
    EX_EMEDIA,     /* not an accepted media type (415) */
    EX_EREFUSED,   /* understood but refused by a rule (422) */
    EX_EBUSY,      /* overloaded, retry later (503) */
    EX_ENOMEM,     /* allocation failed (500) */
    EX_EIO,        /* storage failure (500) */
    EX_EDB,        /* database failure (500) */
    EX_EINTERNAL,  /* a bug of ours (500) */
} ex_rc;

typedef struct ex_error {
    char code[48];
    char message[256];
} ex_error;

#define EX_MUST_CHECK __attribute__((warn_unused_result))

/* Fills e (when non-NULL) and returns rc, so detectors can write `return ex_fail(...)`. */
ex_rc ex_fail(ex_error *e, ex_rc rc, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* HTTP status for a result code. */
int ex_rc_status(ex_rc rc);

/* Generic snake_case code for a result code, used when nobody filled an ex_error. */
const char *ex_rc_code(ex_rc rc);

#endif
