/* hash.c - SHA-256 via OpenSSL EVP (hardware-accelerated where the CPU has SHA-NI). */
#include "exhibit/hash.h"

#include <openssl/evp.h>

#include "exhibit/util.h"

ex_rc sha256_init(sha256_ctx *c)
{
    EVP_MD_CTX *x = EVP_MD_CTX_new();
    if (!x) return EX_ENOMEM;
    if (EVP_DigestInit_ex(x, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(x);
        return EX_EINTERNAL;
    }
    c->evp = x;
    return EX_OK;
}

ex_rc sha256_update(sha256_ctx *c, const void *data, size_t len)
{
    if (!c->evp) return EX_EINTERNAL;
    return EVP_DigestUpdate(c->evp, data, len) == 1 ? EX_OK : EX_EINTERNAL;
}

ex_rc sha256_final(sha256_ctx *c, uint8_t out[32])
{
    unsigned int n = 0;
    if (!c->evp) return EX_EINTERNAL;
    int ok = EVP_DigestFinal_ex(c->evp, out, &n) == 1 && n == 32;
    sha256_release(c);
    return ok ? EX_OK : EX_EINTERNAL;
}

void sha256_release(sha256_ctx *c)
{
    if (c->evp) EVP_MD_CTX_free(c->evp);
    c->evp = NULL;
}

ex_rc sha256_hex(const void *data, size_t len, char out[65])
{
    sha256_ctx c = {0};
    uint8_t d[32];
    ex_rc rc = sha256_init(&c);
    if (!rc) rc = sha256_update(&c, data, len);
    if (!rc) rc = sha256_final(&c, d);
    sha256_release(&c);
    if (!rc) util_hex(d, 32, out);
    return rc;
}
