/* session.h - browser sessions for the warehouse station and the mediator pages.
 *
 * Signing in with a key creates a session: a random 256-bit token for the HttpOnly cookie
 * (only its SHA-256 is stored) and a separate random CSRF token that pages echo in an
 * X-CSRF-Token header on every state-changing request. Sessions expire (absolute lifetime) and
 * end at sign-out; a revoked key ends its sessions too, because lookup joins the key.
 */
#ifndef EXHIBIT_SESSION_H
#define EXHIBIT_SESSION_H

#include <time.h>

#include "exhibit/db.h"
#include "exhibit/keys.h"

#define SESSION_TOKEN_LEN 65 /* 64 hex + NUL */

typedef struct session_info {
    key_info key;
    char csrf[SESSION_TOKEN_LEN];
    time_t expires_at;
} session_info;

/* Creates a session for an authenticated key. token receives the cookie value. Audited as
 * "session.created". */
ex_rc session_create(db *d, const key_info *k, int ttl_s, char token[SESSION_TOKEN_LEN],
                     session_info *out, ex_error *e) EX_MUST_CHECK;

/* Resolves a cookie token. EX_EAUTH "session_expired" when unknown, expired or its key was
 * revoked (expired rows are deleted on the way). */
ex_rc session_lookup(db *d, const char *token, session_info *out, ex_error *e) EX_MUST_CHECK;

/* Ends a session (sign-out). Unknown tokens are not an error. */
ex_rc session_end(db *d, const char *token, ex_error *e) EX_MUST_CHECK;

/* Constant-time comparison of two NUL-terminated tokens; 1 when equal. */
int session_token_equal(const char *a, const char *b);

#endif
