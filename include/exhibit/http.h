/* http.h - the HTTP server (the only module that includes microhttpd.h).
 *
 * Thread-per-connection libmicrohttpd with explicit limits (connections, per-IP connections,
 * per-connection memory, idle timeout, body size from config). Routes, role checks, the
 * mapping from ex_rc to status + {"error":{"code","message"}} and one log line per request
 * live here; the work itself is done by cases/intake/evidence.
 */
#ifndef EXHIBIT_HTTP_H
#define EXHIBIT_HTTP_H

#include "exhibit/app.h"

typedef struct http_server http_server;

/* Binds and starts serving. *port receives the bound port (useful with port 0). */
ex_rc http_start(app *a, http_server **out, int *port, ex_error *e) EX_MUST_CHECK;
/* Graceful stop: stop accepting, wait up to grace_s for in-flight requests, then close. */
void http_stop(http_server *s, int grace_s);

#endif
