/* config.h - every limit and default in one place.
 *
 * config_defaults fills the documented defaults (README "Configuration"); `exhibit serve`
 * overrides them from flags. Nothing else in the code base invents a limit.
 */
#ifndef EXHIBIT_CONFIG_H
#define EXHIBIT_CONFIG_H

#include <stdint.h>

#include "exhibit/err.h"

typedef struct ex_config {
    char data_dir[768];
    char listen_host[64];
    int listen_port;

    uint64_t max_body;            /* bytes in one request body (413 above) */
    uint64_t max_json_body;       /* bytes in a JSON request body */
    unsigned max_connections;     /* concurrent connections (each is a thread) */
    unsigned max_per_ip;          /* concurrent connections from one address */
    unsigned conn_memory;         /* libmicrohttpd per-connection buffer */
    unsigned conn_timeout_s;      /* idle connection timeout */
    unsigned max_files;           /* file parts in one upload */
    unsigned max_inflight_images; /* concurrent decodes; more wait (bounded) or get 503 */

    int return_window_days;
    char non_returnable[512]; /* comma-separated categories */

    /* Image limits (checked on the header before any decode). */
    int max_width, max_height;
    uint64_t max_pixels;
} ex_config;

void config_defaults(ex_config *c);

/* "HOST:PORT" into c; EX_EINVAL "invalid_listen" on a malformed value. */
ex_rc config_set_listen(ex_config *c, const char *hostport, ex_error *e) EX_MUST_CHECK;

/* 1 when category is in the non-returnable list. */
int config_is_non_returnable(const ex_config *c, const char *category);

#endif
