/* reuse.c - reused-image signature and decision (see reuse.h). */
#include "exhibit/reuse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define API_SIDE 320       /* phash.h: box-shrink to 320 before PDQ */
#define PDQ_MIN_QUALITY 50 /* Meta's rule: below it the bits mean little */
#define FEW_FEATURES 60    /* below this on either side the feature tier cannot vouch */
#define PDQ_AGREE 5        /* inliers that confirm a PDQ match on textured images */

struct reuse_sig {
    phash_pdq pdq;
    phash_pdq dih[PHASH_DIH_COUNT]; /* computed signatures only (has_dih): a query's turns */
    int has_dih;
    uint64_t phash64;
    ft_set *ft;
};

static int sane(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(v[i] >= -65536.0f && v[i] <= 65536.0f)) return 0;
    return 1;
}

ex_rc reuse_sig_compute(const float *luma, int w, int h, reuse_sig **out, ex_error *e)
{
    if (!luma || w <= 0 || h <= 0 || (int64_t)w * h > (1 << 28))
        return ex_fail(e, EX_EINVAL, "reuse_bad_image", "no image or a bad size");
    reuse_sig *s = calloc(1, sizeof *s);
    float *api = NULL;
    ex_rc rc = EX_OK;
    if (!s) return ex_fail(e, EX_ENOMEM, "reuse_no_memory", "no memory for an image signature");
    /* API hashes on the caller's full-size luma box-shrunk to 320, as phash.h prescribes. */
    int aw = w > API_SIDE ? API_SIDE : w, ah = h > API_SIDE ? API_SIDE : h;
    if (!(api = malloc((size_t)aw * ah * sizeof *api))) {
        rc = ex_fail(e, EX_ENOMEM, "reuse_no_memory", "no memory for an image signature");
        goto fail;
    }
    if ((rc = phash_luma_resize(luma, w, h, api, aw, ah, PHASH_RESIZE_BOX, e))) goto fail;
    /* Box averages keep NaN and infinity, so checking the small image checks every pixel. */
    if (!sane(api, (size_t)aw * ah)) {
        rc = ex_fail(e, EX_EINVAL, "reuse_bad_image",
                     "the image holds NaN, infinite or out-of-range values (luma is 0..255)");
        goto fail;
    }
    if ((rc = phash_pdq_dihedral(api, aw, ah, s->dih, e)) ||
        (rc = phash_dct64_compute(api, aw, ah, &s->phash64, e)) ||
        (rc = ft_extract(luma, w, h, &s->ft, e)))
        goto fail;
    free(api);
    s->pdq = s->dih[PHASH_DIH_ORIGINAL];
    s->has_dih = 1;
    *out = s;
    return EX_OK;
fail:
    free(api);
    reuse_sig_free(s);
    return rc;
}

void reuse_sig_free(reuse_sig *s)
{
    if (!s) return;
    ft_free(s->ft);
    free(s);
}

/* "EXRS", u8 version, 32 PDQ bytes, u8 quality, u64 phash64 (LE), u32 feature bytes, features,
 * u32 FNV-1a of everything before it: a damaged row is refused, never half-believed. */
#define HDR (4 + 1 + 32 + 1 + 8 + 4)
#define TRAILER 4

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

ex_rc reuse_sig_serialize(const reuse_sig *s, uint8_t **buf, size_t *len, ex_error *e)
{
    if (!s || !buf || !len) return ex_fail(e, EX_EINVAL, "reuse_bad_args", "bad arguments");
    uint8_t *fb = NULL;
    size_t fl = 0;
    ex_rc rc = ft_serialize(s->ft, &fb, &fl, e);
    if (rc) return rc;
    uint8_t *p = malloc(HDR + fl + TRAILER);
    if (!p) {
        free(fb);
        return ex_fail(e, EX_ENOMEM, "reuse_no_memory", "out of memory");
    }
    memcpy(p, "EXRS", 4);
    p[4] = REUSE_SIG_VERSION;
    memcpy(p + 5, s->pdq.bits, 32);
    p[37] = (uint8_t)s->pdq.quality;
    for (int i = 0; i < 8; i++)
        p[38 + i] = (uint8_t)(s->phash64 >> (8 * i));
    for (int i = 0; i < 4; i++)
        p[46 + i] = (uint8_t)(fl >> (8 * i));
    memcpy(p + HDR, fb, fl);
    free(fb);
    uint32_t sum = fnv1a(p, HDR + fl);
    for (int i = 0; i < 4; i++)
        p[HDR + fl + i] = (uint8_t)(sum >> (8 * i));
    *buf = p;
    *len = HDR + fl + TRAILER;
    return EX_OK;
}

ex_rc reuse_sig_parse(const uint8_t *p, size_t len, reuse_sig **out, ex_error *e)
{
    if (!p || !out) return ex_fail(e, EX_EINVAL, "reuse_bad_args", "bad arguments");
    if (len >= 5 && !memcmp(p, "EXRS", 4) && p[4] != REUSE_SIG_VERSION)
        return ex_fail(e, EX_EINVAL, "reuse_sig_old",
                       "signature of version %d; run exhibit reindex", p[4]);
    if (len < HDR + TRAILER || memcmp(p, "EXRS", 4) || p[37] > 100)
        return ex_fail(e, EX_EINVAL, "reuse_sig_corrupt", "not a reuse signature");
    size_t fl = 0;
    uint32_t sum = 0;
    for (int i = 0; i < 4; i++)
        fl |= (size_t)p[46 + i] << (8 * i);
    if (fl != len - HDR - TRAILER)
        return ex_fail(e, EX_EINVAL, "reuse_sig_corrupt", "bad signature length");
    for (int i = 0; i < 4; i++)
        sum |= (uint32_t)p[HDR + fl + i] << (8 * i);
    if (sum != fnv1a(p, HDR + fl))
        return ex_fail(e, EX_EINVAL, "reuse_sig_corrupt", "signature checksum mismatch");
    reuse_sig *s = calloc(1, sizeof *s);
    if (!s) return ex_fail(e, EX_ENOMEM, "reuse_no_memory", "out of memory");
    memcpy(s->pdq.bits, p + 5, 32);
    s->pdq.quality = p[37];
    for (int i = 0; i < 8; i++)
        s->phash64 |= (uint64_t)p[38 + i] << (8 * i);
    ex_rc rc = ft_parse(p + HDR, fl, &s->ft, e);
    if (rc) {
        free(s);
        return ex_fail(e, EX_EINVAL, "reuse_sig_corrupt", "bad features in the signature");
    }
    *out = s;
    return EX_OK;
}

void reuse_sig_pdq(const reuse_sig *s, phash_pdq *pdq)
{
    *pdq = s->pdq;
}

uint64_t reuse_sig_phash64(const reuse_sig *s)
{
    return s->phash64;
}

const ft_set *reuse_sig_features(const reuse_sig *s)
{
    return s->ft;
}

static int pdq_usable(const reuse_sig *s)
{
    return s->pdq.quality >= PDQ_MIN_QUALITY;
}

int reuse_sig_flat(const reuse_sig *s)
{
    return !pdq_usable(s) && s->ft->n < FT_MIN_INLIERS;
}

size_t reuse_pdq_keys(const reuse_sig *s, int for_query, uint8_t (*keys)[32], size_t max)
{
    if (!pdq_usable(s) || max == 0) return 0;
    if (!for_query) {
        memcpy(keys[0], s->pdq.bits, 32);
        return 1;
    }
    if (!s->has_dih) {
        memcpy(keys[0], s->pdq.bits, 32);
        return 1;
    }
    size_t n = 0;
    for (int i = 0; i < PHASH_DIH_COUNT && n < max; i++)
        memcpy(keys[n++], s->dih[i].bits, 32);
    return n;
}

size_t reuse_words(const reuse_sig *s, int for_query, uint32_t *words, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < s->ft->n && n < max; i++)
        words[n++] = s->ft->f[i].word;
    for (size_t i = 0; for_query && i < s->ft->nm && n < max; i++)
        words[n++] = s->ft->m[i].word;
    return n;
}

void reuse_match(const reuse_sig *q, const reuse_sig *c, reuse_result *r)
{
    memset(r, 0, sizeof *r);
    r->distance = 256;
    r->tier = "features";
    if (reuse_sig_flat(q) || reuse_sig_flat(c)) return;
    ft_verify(q->ft, c->ft, &r->ft);
    if (r->ft.match) {
        r->match = 1;
        double agree = r->ft.ratio > 1 ? 1 : r->ft.ratio;
        r->distance = 32 + (int)lround(224 * (1 - agree));
        return;
    }
    if (!pdq_usable(q) || !pdq_usable(c)) return;
    /* Whichever side was computed here knows its 8 turns. */
    const reuse_sig *turned = q->has_dih ? q : c, *other = q->has_dih ? c : q;
    int best = phash_pdq_distance(&q->pdq, &c->pdq);
    for (int i = 0; turned->has_dih && i < PHASH_DIH_COUNT; i++) {
        int x = phash_pdq_distance(&turned->dih[i], &other->pdq);
        if (x < best) best = x;
    }
    int few = q->ft->n < FEW_FEATURES || c->ft->n < FEW_FEATURES;
    if (best <= REUSE_PDQ_RADIUS && (few || r->ft.inliers >= PDQ_AGREE)) {
        r->match = 1;
        r->tier = "pdq";
        r->distance = best;
    }
}
