/* wordindex.c - inverted file over visual words (see wordindex.h). */
#include "exhibit/wordindex.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct plist {
    uint32_t *slot;
    uint32_t n, cap;
} plist;

typedef struct image {
    uint64_t id;
    uint16_t words; /* distinct words */
    uint8_t dead;
} image;

struct widx {
    pthread_rwlock_t lock;
    size_t nwords;
    plist *post;
    image *img;
    uint32_t nimg, capimg;
    size_t bytes;
};

widx *widx_new(size_t words)
{
    widx *ix = calloc(1, sizeof *ix);
    if (!ix) return NULL;
    ix->post = calloc(words, sizeof *ix->post);
    if (!ix->post) {
        free(ix);
        return NULL;
    }
    ix->nwords = words;
    ix->bytes = words * sizeof *ix->post;
    pthread_rwlock_init(&ix->lock, NULL);
    return ix;
}

void widx_free(widx *ix)
{
    if (!ix) return;
    for (size_t w = 0; w < ix->nwords; w++)
        free(ix->post[w].slot);
    free(ix->post);
    free(ix->img);
    pthread_rwlock_destroy(&ix->lock);
    free(ix);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorted distinct words of a list, in a malloc'd array (NULL on failure). */
static uint32_t *distinct(const uint32_t *words, size_t n, size_t nwords, size_t *out)
{
    uint32_t *u = malloc((n ? n : 1) * sizeof *u);
    if (!u) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (words[i] < nwords) u[k++] = words[i];
    qsort(u, k, sizeof *u, cmp_u32);
    size_t m = 0;
    for (size_t i = 0; i < k; i++)
        if (!m || u[m - 1] != u[i]) u[m++] = u[i];
    *out = m;
    return u;
}

ex_rc widx_add(widx *ix, uint64_t id, const uint32_t *words, size_t n, ex_error *e)
{
    size_t m = 0;
    uint32_t *u = distinct(words, n, ix->nwords, &m);
    if (!u) return ex_fail(e, EX_ENOMEM, "out_of_memory", "cannot grow the word index");
    ex_rc rc = EX_OK;
    pthread_rwlock_wrlock(&ix->lock);
    if (ix->nimg == ix->capimg) {
        uint32_t cap = ix->capimg ? ix->capimg + ix->capimg / 2 : 1024;
        image *g = realloc(ix->img, (size_t)cap * sizeof *g);
        if (!g) {
            rc = ex_fail(e, EX_ENOMEM, "out_of_memory", "cannot grow the word index");
            goto out;
        }
        ix->bytes += (size_t)(cap - ix->capimg) * sizeof *g;
        ix->img = g;
        ix->capimg = cap;
    }
    /* Grow every list first, so a failure leaves the index as it was. */
    for (size_t i = 0; i < m; i++) {
        plist *p = &ix->post[u[i]];
        if (p->n < p->cap) continue;
        uint32_t cap = p->cap ? p->cap + p->cap / 2 + 1 : 4;
        uint32_t *g = realloc(p->slot, (size_t)cap * sizeof *g);
        if (!g) {
            rc = ex_fail(e, EX_ENOMEM, "out_of_memory", "cannot grow the word index");
            goto out;
        }
        ix->bytes += (size_t)(cap - p->cap) * sizeof *g;
        p->slot = g;
        p->cap = cap;
    }
    uint32_t slot = ix->nimg++;
    ix->img[slot] = (image){.id = id, .words = (uint16_t)(m > 65535 ? 65535 : m)};
    for (size_t i = 0; i < m; i++) {
        plist *p = &ix->post[u[i]];
        p->slot[p->n++] = slot;
    }
out:
    pthread_rwlock_unlock(&ix->lock);
    free(u);
    return rc;
}

void widx_remove(widx *ix, uint64_t id)
{
    pthread_rwlock_wrlock(&ix->lock);
    for (uint32_t i = 0; i < ix->nimg; i++)
        if (ix->img[i].id == id) ix->img[i].dead = 1;
    pthread_rwlock_unlock(&ix->lock);
}

static int by_score(const void *a, const void *b)
{
    const widx_hit *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Per-thread scratch, kept between queries and cleared entry by entry (only what a query
 * touched), so a query at a million images costs its postings, not a million-entry memset. */
typedef struct scratch {
    float *score;
    uint16_t *common;
    uint32_t *touched;
    size_t cap;
} scratch;

/* Freed when its thread ends (the server runs a thread per connection). */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    scratch *s = p;
    free(s->score);
    free(s->common);
    free(s->touched);
    free(s);
}

static void scratch_key_make(void)
{
    pthread_key_create(&scratch_key, scratch_free);
}

static scratch *scratch_fit(size_t n)
{
    pthread_once(&scratch_once, scratch_key_make);
    scratch *t = pthread_getspecific(scratch_key);
    if (!t) {
        if (!(t = calloc(1, sizeof *t))) return NULL;
        if (pthread_setspecific(scratch_key, t)) {
            free(t);
            return NULL;
        }
    }
    if (n <= t->cap) return t;
    size_t cap = n + n / 2 + 1024;
    float *s = realloc(t->score, cap * sizeof *s);
    if (s) t->score = s;
    uint16_t *c = realloc(t->common, cap * sizeof *c);
    if (c) t->common = c;
    uint32_t *u = realloc(t->touched, cap * sizeof *u);
    if (u) t->touched = u;
    if (!s || !c || !u) return NULL;
    memset(t->score + t->cap, 0, (cap - t->cap) * sizeof *s);
    memset(t->common + t->cap, 0, (cap - t->cap) * sizeof *c);
    t->cap = cap;
    return t;
}

int widx_query(widx *ix, const uint32_t *words, size_t n, uint64_t self, size_t min_common,
               widx_hit *out, size_t max)
{
    size_t m = 0;
    uint32_t *u = distinct(words, n, ix->nwords, &m);
    if (!u) return -1;
    pthread_rwlock_rdlock(&ix->lock);
    uint32_t nimg = ix->nimg;
    int found = 0;
    scratch *sc = scratch_fit(nimg);
    if (!sc) {
        found = -1;
        goto done;
    }
    float *score = sc->score;
    uint16_t *common = sc->common;
    uint32_t *touched = sc->touched;
    size_t ntouched = 0;
    double big = nimg > 2000 ? 0.05 * nimg : (double)nimg + 1;
    for (size_t i = 0; i < m; i++) {
        const plist *p = &ix->post[u[i]];
        if (!p->n || p->n > big) continue;
        float idf = (float)log((double)(nimg + 1) / p->n);
        float w = idf * idf;
        for (uint32_t k = 0; k < p->n; k++) {
            uint32_t s = p->slot[k];
            if (!common[s]) touched[ntouched++] = s;
            if (common[s] < UINT16_MAX) common[s]++;
            score[s] += w;
        }
    }
    /* Keep the best max in out (a small sorted array: max is tens). */
    double qn = sqrt((double)(m ? m : 1));
    for (size_t t = 0; t < ntouched; t++) {
        uint32_t s = touched[t];
        const image *im = &ix->img[s];
        widx_hit h = {im->id, (float)(score[s] / (qn * sqrt((double)(im->words ? im->words : 1))))};
        int keep = common[s] >= min_common && !im->dead && !(self && im->id == self);
        score[s] = 0;
        common[s] = 0;
        if (!keep) continue;
        if ((size_t)found < max) {
            out[found++] = h;
        } else if (max && h.score > out[max - 1].score) {
            out[max - 1] = h;
        } else {
            continue;
        }
        for (int j = found - 1; j > 0 && by_score(&out[j], &out[j - 1]) < 0; j--) {
            widx_hit x = out[j];
            out[j] = out[j - 1];
            out[j - 1] = x;
        }
    }
done:
    pthread_rwlock_unlock(&ix->lock);
    free(u);
    return found;
}

size_t widx_images(widx *ix)
{
    pthread_rwlock_rdlock(&ix->lock);
    size_t n = ix->nimg;
    pthread_rwlock_unlock(&ix->lock);
    return n;
}

size_t widx_memory(widx *ix)
{
    pthread_rwlock_rdlock(&ix->lock);
    size_t n = ix->bytes;
    pthread_rwlock_unlock(&ix->lock);
    return n;
}
