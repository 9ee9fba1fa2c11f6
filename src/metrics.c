/* metrics.c - Prometheus text exposition (see metrics.h). */
#include "exhibit/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof buckets / sizeof *buckets)
static const int statuses[] = {200, 201, 204, 206, 301, 302, 304, 400, 401, 403,
                               404, 405, 409, 413, 415, 422, 429, 500, 503, 0 /* other */};
#define NSTATUS (sizeof statuses / sizeof *statuses)

struct metrics {
    const char *const *routes;
    int nroutes;
    atomic_ullong requests[METRICS_MAX_ROUTES][NSTATUS];
    atomic_ullong bucket[METRICS_MAX_ROUTES][NBUCKETS + 1];
    atomic_ullong sum_us[METRICS_MAX_ROUTES];
    atomic_ullong bytes_received;
    atomic_ullong uploads_stored, uploads_refused;
};

struct metrics *metrics_new(const char *const *route_names, int nroutes)
{
    if (nroutes > METRICS_MAX_ROUTES) return NULL;
    struct metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->routes = route_names;
    m->nroutes = nroutes;
    return m;
}

void metrics_free(struct metrics *m)
{
    free(m);
}

void metrics_request(struct metrics *m, int route, int status, double seconds)
{
    if (!m || route < 0 || route >= m->nroutes) return;
    size_t si = NSTATUS - 1;
    for (size_t i = 0; i + 1 < NSTATUS; i++)
        if (statuses[i] == status) si = i;
    atomic_fetch_add(&m->requests[route][si], 1);
    size_t b = NBUCKETS;
    for (size_t i = 0; i < NBUCKETS; i++)
        if (seconds <= buckets[i]) {
            b = i;
            break;
        }
    atomic_fetch_add(&m->bucket[route][b], 1);
    atomic_fetch_add(&m->sum_us[route], (unsigned long long)(seconds * 1e6));
}

void metrics_bytes_received(struct metrics *m, uint64_t n)
{
    if (m) atomic_fetch_add(&m->bytes_received, n);
}

void metrics_upload(struct metrics *m, int stored, uint64_t files)
{
    if (!m) return;
    atomic_fetch_add(stored ? &m->uploads_stored : &m->uploads_refused, files);
}

typedef struct buf {
    char *p;
    size_t len, cap;
    int oom;
} buf;

static void put(buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        if (b->oom) return;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

char *metrics_render(struct metrics *m, size_t *len)
{
    buf b = {malloc(8192), 0, 8192, 0};
    if (!b.p) return NULL;
    put(&b, "# HELP exhibit_http_requests_total HTTP requests by route and status.\n"
            "# TYPE exhibit_http_requests_total counter\n");
    for (int r = 0; r < m->nroutes; r++)
        for (size_t s = 0; s < NSTATUS; s++) {
            unsigned long long v = atomic_load(&m->requests[r][s]);
            if (!v) continue;
            if (statuses[s])
                put(&b, "exhibit_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                    m->routes[r], statuses[s], v);
            else
                put(&b, "exhibit_http_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                    m->routes[r], v);
        }
    put(&b, "# HELP exhibit_http_request_duration_seconds Request latency by route.\n"
            "# TYPE exhibit_http_request_duration_seconds histogram\n");
    for (int r = 0; r < m->nroutes; r++) {
        unsigned long long cum = 0, total = 0;
        for (size_t i = 0; i <= NBUCKETS; i++)
            total += atomic_load(&m->bucket[r][i]);
        if (!total) continue; /* a route never hit has no series yet */
        for (size_t i = 0; i <= NBUCKETS; i++) {
            cum += atomic_load(&m->bucket[r][i]);
            if (i < NBUCKETS)
                put(&b,
                    "exhibit_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                    m->routes[r], buckets[i], cum);
            else
                put(&b,
                    "exhibit_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                    m->routes[r], cum);
        }
        put(&b, "exhibit_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", m->routes[r],
            (double)atomic_load(&m->sum_us[r]) / 1e6);
        put(&b, "exhibit_http_request_duration_seconds_count{route=\"%s\"} %llu\n", m->routes[r],
            cum);
    }
    put(&b,
        "# HELP exhibit_upload_bytes_total Bytes received in upload bodies.\n"
        "# TYPE exhibit_upload_bytes_total counter\n"
        "exhibit_upload_bytes_total %llu\n",
        atomic_load(&m->bytes_received));
    put(&b,
        "# HELP exhibit_uploads_stored_total Files stored as evidence (new or repeated).\n"
        "# TYPE exhibit_uploads_stored_total counter\n"
        "exhibit_uploads_stored_total %llu\n",
        atomic_load(&m->uploads_stored));
    put(&b,
        "# HELP exhibit_uploads_refused_total Upload requests refused (bad input, "
        "unsupported or undecodable images, client gone).\n"
        "# TYPE exhibit_uploads_refused_total counter\n"
        "exhibit_uploads_refused_total %llu\n",
        atomic_load(&m->uploads_refused));
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
