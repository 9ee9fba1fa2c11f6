/* config.c - defaults and small parsers for ex_config (see config.h). */
#include "exhibit/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void config_defaults(ex_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->data_dir, sizeof c->data_dir, "storage");
    snprintf(c->listen_host, sizeof c->listen_host, "127.0.0.1");
    c->listen_port = 8080;
    c->max_body = 25u * 1024 * 1024; /* the whole request body, multipart framing included */
    c->max_json_body = 64 * 1024;
    c->max_connections = 64;
    c->max_per_ip = 32;
    c->conn_memory = 64 * 1024;
    c->conn_timeout_s = 60;
    c->max_files = 20;
    c->max_inflight_images = 4;
    c->return_window_days = 7;
    snprintf(c->non_returnable, sizeof c->non_returnable, "fresh_produce,custom_made");
    /* A 200-megapixel phone sensor is 16320x12240; a bomb claims far more. */
    c->max_width = 30000;
    c->max_height = 30000;
    c->max_pixels = 250000000ull;
}

ex_rc config_set_listen(ex_config *c, const char *hostport, ex_error *e)
{
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof c->listen_host)
        return ex_fail(e, EX_EINVAL, "invalid_listen", "--listen wants HOST:PORT, got '%s'",
                       hostport);
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535)
        return ex_fail(e, EX_EINVAL, "invalid_listen", "bad port in '%s'", hostport);
    memcpy(c->listen_host, hostport, (size_t)(colon - hostport));
    c->listen_host[colon - hostport] = '\0';
    c->listen_port = (int)port;
    return EX_OK;
}

int config_is_non_returnable(const ex_config *c, const char *category)
{
    size_t n = strlen(category);
    const char *p = c->non_returnable;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && n > 0 && strncmp(p, category, n) == 0) return 1;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}
