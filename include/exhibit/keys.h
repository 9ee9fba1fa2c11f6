/* keys.h - API keys: roles, creation, lookup.
 *
 * A key is "exk_" + 48 random hex digits, shown once at creation; only its SHA-256 is stored.
 * Roles: admin, platform (creates cases), buyer (subject = buyer id; sees only that buyer's
 * cases), warehouse (inspections and their photos), mediator (reads everything, decides).
 */
#ifndef EXHIBIT_KEYS_H
#define EXHIBIT_KEYS_H

#include <stdint.h>

#include "exhibit/db.h"
#include "exhibit/err.h"

typedef enum {
    ROLE_NONE = 0,
    ROLE_ADMIN,
    ROLE_PLATFORM,
    ROLE_BUYER,
    ROLE_WAREHOUSE,
    ROLE_MEDIATOR,
} key_role;

#define KEY_SECRET_LEN 64 /* buffer size */
#define KEY_TEXT_LEN 52   /* "exk_" + 48 hex digits */
#define KEY_SUBJECT_MAX 128

typedef struct key_info {
    int64_t id;
    key_role role;
    char subject[KEY_SUBJECT_MAX]; /* "" when none */
} key_info;

const char *key_role_name(key_role r);
key_role key_role_parse(const char *s); /* ROLE_NONE when unknown */

/* Creates a key (takes db_lock, audits "key.created"). buyer keys need a non-empty subject.
 * secret receives the key text (only time it exists). EX_EINVAL for a bad role/subject. */
ex_rc keys_create(db *d, key_role role, const char *subject, const char *actor,
                  char secret[KEY_SECRET_LEN], key_info *out, ex_error *e) EX_MUST_CHECK;

/* Looks a presented secret up (takes db_lock). EX_EAUTH "unauthorized" when unknown or
 * revoked. */
ex_rc keys_lookup(db *d, const char *secret, key_info *out, ex_error *e) EX_MUST_CHECK;

/* Number of keys (to decide whether to make the first admin key). -1 on error. */
int64_t keys_count(db *d);

#endif
