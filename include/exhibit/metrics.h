/* metrics.h - Prometheus counters and a latency histogram, rendered as text exposition.
 *
 * Routes are a fixed enumeration (labels never come from request paths, so the label set is
 * bounded). All updates are lock-free atomics; rendering reads a snapshot that may be a few
 * requests behind, which Prometheus tolerates.
 */
#ifndef EXHIBIT_METRICS_H
#define EXHIBIT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_ROUTES 32

struct metrics;

/* route_names must outlive the metrics object; NULL on ENOMEM. */
struct metrics *metrics_new(const char *const *route_names, int nroutes);
void metrics_free(struct metrics *m);

void metrics_request(struct metrics *m, int route, int status, double seconds);
void metrics_bytes_received(struct metrics *m, uint64_t n);
void metrics_upload(struct metrics *m, int stored, uint64_t files);

/* Renders the exposition text; caller frees. NULL on ENOMEM. */
char *metrics_render(struct metrics *m, size_t *len);

#endif
