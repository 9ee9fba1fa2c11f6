/* fuzz_multipart.c - libFuzzer target for the multipart parser.
 *
 * Input: byte 0 chooses a chunking, byte 1 seeds it and may make a callback refuse, then a
 * Content-Type value up to the first '\n' (its boundary is used when it parses, else a fixed
 * one), then the body. The body is parsed twice, whole and in the chosen chunks; both runs
 * must produce the same events (digested), the same result and the same error, and the
 * callback order must be sane. A difference traps, so chunking bugs show up as crashes.
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude tests/fuzz/fuzz_multipart.c
 *        src/multipart.c src/err.c   (or with tests/fuzz/replay.c as main)
 */
#include "exhibit/multipart.h"

#include <stdint.h>
#include <string.h>

typedef struct trace {
    uint64_t h; /* FNV-1a over the event stream; data is hashed as one byte stream per part */
    int begins, ends, in_part, events, abort_at;
    unsigned bad;
} trace;

static void mix(trace *t, const void *d, size_t n)
{
    const uint8_t *p = d;
    for (size_t i = 0; i < n; i++)
        t->h = (t->h ^ p[i]) * 1099511628211ull;
}

static void mix_str(trace *t, const char *s)
{
    if (!s) {
        mix(t, "\1", 1);
        return;
    }
    mix(t, s, strlen(s) + 1);
}

/* Refuses at the abort_at-th begin/end event: odd with its own error, even leaving e alone. */
static ex_rc maybe_refuse(trace *t, ex_error *e)
{
    if (++t->events != t->abort_at) return EX_OK;
    if (t->abort_at & 1) return ex_fail(e, EX_EREFUSED, "fuzz_refused", "refused");
    return EX_EREFUSED;
}

static ex_rc on_begin(void *ud, const char *name, const char *filename, const char *ctype,
                      ex_error *e)
{
    trace *t = ud;
    if (t->in_part || !name || !*name) t->bad |= 1;
    t->in_part = 1;
    t->begins++;
    mix(t, "B", 1);
    mix_str(t, name);
    mix_str(t, filename);
    mix_str(t, ctype);
    return maybe_refuse(t, e);
}

static ex_rc on_data(void *ud, const uint8_t *d, size_t n, ex_error *e)
{
    trace *t = ud;
    (void)e;
    if (!t->in_part || n == 0 || !d) t->bad |= 2;
    mix(t, d, n);
    return EX_OK;
}

static ex_rc on_end(void *ud, ex_error *e)
{
    trace *t = ud;
    if (!t->in_part) t->bad |= 4;
    t->in_part = 0;
    t->ends++;
    mix(t, "E", 1);
    return maybe_refuse(t, e);
}

static const mp_callbacks CB = {on_begin, on_data, on_end};

typedef struct result {
    ex_rc rc;
    ex_error err;
    trace t;
} result;

static size_t next_chunk(uint8_t mode, uint32_t *seed)
{
    size_t k = (size_t)(mode & 63) + 1;
    switch (mode >> 6) {
    case 0:
        return k;
    case 1:
        return k * 37;
    case 2:
        *seed = *seed * 1664525u + 1013904223u;
        return 1 + (*seed >> 8) % k;
    default:
        *seed = *seed * 1664525u + 1013904223u;
        return 1 + (*seed >> 8) % 4096;
    }
}

static result run(const char *boundary, const uint8_t *body, size_t n, int whole, uint8_t mode,
                  uint8_t seed8, int abort_at)
{
    result r;
    memset(&r, 0, sizeof r);
    r.t.h = 1469598103934665603ull;
    r.t.abort_at = abort_at;
    mp_parser *p = mp_new(boundary, &CB, &r.t);
    if (!p) __builtin_trap(); /* the boundary is valid here, so only ENOMEM could do this */
    uint32_t seed = seed8;
    size_t off = 0;
    while (off < n && r.rc == EX_OK) {
        size_t k = whole ? n : next_chunk(mode, &seed);
        if (k > n - off) k = n - off;
        r.rc = mp_feed(p, body + off, k, &r.err);
        off += k;
    }
    if (r.rc == EX_OK) r.rc = mp_finish(p, &r.err);
    /* Sticky: once failed, everything else fails the same way. */
    if (r.rc != EX_OK) {
        ex_error e2;
        if (mp_feed(p, (const uint8_t *)"--", 2, &e2) != r.rc || strcmp(e2.code, r.err.code))
            __builtin_trap();
        if (mp_finish(p, &e2) != r.rc || strcmp(e2.message, r.err.message)) __builtin_trap();
    }
    mp_free(p);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    uint8_t mode = data[0], seed8 = data[1];
    data += 2;
    size -= 2;
    const uint8_t *nl = memchr(data, '\n', size < 256 ? size : 256);
    char ct[257];
    size_t cl = nl ? (size_t)(nl - data) : 0;
    memcpy(ct, data, cl);
    ct[cl] = '\0';
    if (nl) {
        data += cl + 1;
        size -= cl + 1;
    }
    char boundary[MP_MAX_BOUNDARY + 1];
    ex_error e;
    if (mp_boundary_from_content_type(ct, boundary, sizeof boundary, &e) != EX_OK) {
        if (strcmp(e.code, "invalid_content_type") != 0) __builtin_trap();
        strcpy(boundary, "fuzz");
    }
    int abort_at = seed8 >> 5; /* 0..7, 0 = never */

    result a = run(boundary, data, size, 1, mode, seed8, abort_at);
    result b = run(boundary, data, size, 0, mode, seed8, abort_at);
    if (a.t.bad || b.t.bad) __builtin_trap();
    if (a.rc != b.rc || a.t.h != b.t.h || a.t.begins != b.t.begins || a.t.ends != b.t.ends)
        __builtin_trap();
    if (strcmp(a.err.code, b.err.code) || strcmp(a.err.message, b.err.message)) __builtin_trap();
    if (a.rc == EX_OK && (a.t.begins != a.t.ends || a.t.in_part)) __builtin_trap();
    if (a.rc != EX_OK && a.err.code[0] == '\0') __builtin_trap();
    if (a.t.begins > MP_MAX_PARTS) __builtin_trap();
    return 0;
}
