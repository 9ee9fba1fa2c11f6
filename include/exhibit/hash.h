/* hash.h - SHA-256 through OpenSSL's EVP interface (the only module that includes OpenSSL).
 *
 * A sha256_ctx is caller-owned: sha256_init allocates the EVP context, sha256_final or
 * sha256_release frees it (release is safe on a finished or zeroed context).
 */
#ifndef EXHIBIT_HASH_H
#define EXHIBIT_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "exhibit/err.h"

typedef struct sha256_ctx {
    void *evp;
} sha256_ctx;

ex_rc sha256_init(sha256_ctx *c) EX_MUST_CHECK;
ex_rc sha256_update(sha256_ctx *c, const void *data, size_t len) EX_MUST_CHECK;
/* Writes the digest and frees the context. */
ex_rc sha256_final(sha256_ctx *c, uint8_t out[32]) EX_MUST_CHECK;
void sha256_release(sha256_ctx *c);

/* One-shot digest as 64 lowercase hex digits + NUL. */
ex_rc sha256_hex(const void *data, size_t len, char out[65]) EX_MUST_CHECK;

#endif
