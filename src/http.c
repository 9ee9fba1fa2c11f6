/* http.c - routes, auth, bodies and responses over libmicrohttpd (see http.h).
 *
 * Each request gets a `req` on its first callback; it lives until MHD's completion callback,
 * which is the one place that logs the request, updates metrics and frees request state
 * (including temp files of an upload that never completed: client gone, body cut off).
 */
#include "exhibit/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "exhibit/cases.h"
#include "exhibit/evidence.h"
#include "exhibit/intake.h"
#include "exhibit/log.h"
#include "exhibit/metrics.h"
#include "exhibit/multipart.h"
#include "exhibit/session.h"
#include "exhibit/embedded.h"
#include "exhibit/util.h"

enum route {
    R_UNKNOWN,
    R_HEALTH,
    R_METRICS,
    R_CASE_CREATE,
    R_CASE_GET,
    R_UPLOAD,
    R_EVIDENCE_GET,
    R_EVIDENCE_ORIGINAL,
    R_EVIDENCE_THUMB,
    R_EVIDENCE_PREVIEW,
    R_EVIDENCE_SIMILAR,
    R_INSPECTION,
    R_DECISION,
    R_CASE_LIST,
    R_SESSION,
    R_UI_LOGIN_PAGE,
    R_UI_LOGIN,
    R_UI_LOGOUT,
    R_UI_INSPECT,
    R_UI_CASE,
    R_UI_ASSET,
    R_ROOT,
    R_COUNT
};

static const char *const route_names[R_COUNT] = {
    "unknown",          "healthz",
    "metrics",          "case_create",
    "case_get",         "evidence_upload",
    "evidence_get",     "evidence_original",
    "evidence_thumb",   "evidence_preview",
    "evidence_similar", "inspection_create",
    "decision_create",  "case_list",
    "session",          "ui_login_page",
    "ui_login",         "ui_logout",
    "ui_inspect",       "ui_case",
    "ui_asset",         "root",
};

#define ROLE_BIT(r) (1u << (r))
#define ANY_ROLE                                                                                   \
    (ROLE_BIT(ROLE_ADMIN) | ROLE_BIT(ROLE_PLATFORM) | ROLE_BIT(ROLE_BUYER) |                       \
     ROLE_BIT(ROLE_WAREHOUSE) | ROLE_BIT(ROLE_MEDIATOR))
#define PUBLIC 0u

enum body_kind { BODY_NONE, BODY_JSON, BODY_UPLOAD, BODY_FORM };
#define STAFF (ROLE_BIT(ROLE_ADMIN) | ROLE_BIT(ROLE_WAREHOUSE) | ROLE_BIT(ROLE_MEDIATOR))
#define SESSION_TTL_S (8 * 3600)

/* Path patterns: '*' is one id segment. The first pattern that matches the path decides the
 * route; a path that matches with another method is 405. */
static const struct route_def {
    enum route route;
    const char *method;
    const char *pattern;
    unsigned roles; /* PUBLIC: no key needed */
    enum body_kind body;
    int html; /* a browser page: auth failures redirect to sign-in, others are HTML */
} routes[] = {
    {R_HEALTH, "GET", "/healthz", PUBLIC, BODY_NONE, 0},
    {R_METRICS, "GET", "/metrics", PUBLIC, BODY_NONE, 0},
    {R_CASE_CREATE, "POST", "/v1/cases", ROLE_BIT(ROLE_ADMIN) | ROLE_BIT(ROLE_PLATFORM), BODY_JSON,
     0},
    {R_CASE_GET, "GET", "/v1/cases/*", ANY_ROLE, BODY_NONE, 0},
    {R_UPLOAD, "POST", "/v1/cases/*/evidence",
     ROLE_BIT(ROLE_ADMIN) | ROLE_BIT(ROLE_BUYER) | ROLE_BIT(ROLE_WAREHOUSE) |
         ROLE_BIT(ROLE_MEDIATOR),
     BODY_UPLOAD, 0},
    {R_EVIDENCE_GET, "GET", "/v1/evidence/*", ANY_ROLE, BODY_NONE, 0},
    {R_EVIDENCE_ORIGINAL, "GET", "/v1/evidence/*/original",
     ROLE_BIT(ROLE_ADMIN) | ROLE_BIT(ROLE_MEDIATOR), BODY_NONE, 0},
    {R_EVIDENCE_THUMB, "GET", "/v1/evidence/*/thumb", ANY_ROLE, BODY_NONE, 0},
    {R_EVIDENCE_PREVIEW, "GET", "/v1/evidence/*/preview", ANY_ROLE, BODY_NONE, 0},
    {R_EVIDENCE_SIMILAR, "GET", "/v1/evidence/*/similar",
     ROLE_BIT(ROLE_ADMIN) | ROLE_BIT(ROLE_MEDIATOR) | ROLE_BIT(ROLE_PLATFORM), BODY_NONE, 0},
    {R_INSPECTION, "POST", "/v1/cases/*/inspections",
     ROLE_BIT(ROLE_ADMIN) | ROLE_BIT(ROLE_WAREHOUSE), BODY_UPLOAD, 0},
    {R_DECISION, "POST", "/v1/cases/*/decision", ROLE_BIT(ROLE_ADMIN) | ROLE_BIT(ROLE_MEDIATOR),
     BODY_JSON, 0},
    {R_CASE_LIST, "GET", "/v1/cases", STAFF | ROLE_BIT(ROLE_PLATFORM), BODY_NONE, 0},
    {R_SESSION, "GET", "/v1/session", ANY_ROLE, BODY_NONE, 0},
    {R_UI_LOGIN_PAGE, "GET", "/ui/login", PUBLIC, BODY_NONE, 1},
    {R_UI_LOGIN, "POST", "/ui/login", PUBLIC, BODY_FORM, 1},
    {R_UI_LOGOUT, "POST", "/ui/logout", STAFF, BODY_NONE, 1},
    {R_UI_INSPECT, "GET", "/ui/inspect", ROLE_BIT(ROLE_ADMIN) | ROLE_BIT(ROLE_WAREHOUSE), BODY_NONE,
     1},
    {R_UI_CASE, "GET", "/ui/cases", ROLE_BIT(ROLE_ADMIN) | ROLE_BIT(ROLE_MEDIATOR), BODY_NONE, 1},
    {R_UI_CASE, "GET", "/ui/cases/*", ROLE_BIT(ROLE_ADMIN) | ROLE_BIT(ROLE_MEDIATOR), BODY_NONE, 1},
    {R_UI_ASSET, "GET", "/ui/assets/*", PUBLIC, BODY_NONE, 0},
    {R_ROOT, "GET", "/", PUBLIC, BODY_NONE, 0},
};

struct http_server {
    app *a;
    struct MHD_Daemon *d;
    atomic_int inflight;
    atomic_ullong next_rid;
};

typedef struct req {
    http_server *srv;
    const struct route_def *def;
    enum route route;
    char id[72];
    char method[8];
    char path[160];
    unsigned long long rid;
    double t0;
    key_info key;
    int has_key;
    int via_cookie; /* authenticated by a browser session: CSRF rules apply */
    char csrf[SESSION_TOKEN_LEN];
    time_t session_expires;
    int status;
    int queued;
    ex_rc err; /* first error while reading the body: answered at the end */
    ex_error e;
    uint64_t received;
    uint64_t limit;
    /* JSON body */
    char *json;
    size_t json_len;
    /* upload */
    case_ref c;
    intake *u;
    mp_parser *mp;
    int part_kind; /* 0 ignored, 1 file, 2 text field */
    char field_name[64];
    char field_val[4097];
    size_t field_len;
    int committed;
    size_t files_stored;
} req;

/* ---- responses ---------------------------------------------------------------------- */

static void add_common_headers(req *r, struct MHD_Response *resp)
{
    char rid[32];
    snprintf(rid, sizeof rid, "%llu", r->rid);
    MHD_add_response_header(resp, "X-Request-Id", rid);
    /* Originals are served with their sniffed type; a browser must never guess another. */
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
}

static enum MHD_Result queue(req *r, struct MHD_Connection *conn, int status,
                             struct MHD_Response *resp)
{
    if (!resp) return MHD_NO;
    add_common_headers(r, resp);
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->status = status;
    r->queued = 1;
    return ok;
}

static enum MHD_Result respond_json(req *r, struct MHD_Connection *conn, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(body);
    if (!text) return MHD_NO;
    size_t len = strlen(text);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    return queue(r, conn, status, resp);
}

static enum MHD_Result respond_error(req *r, struct MHD_Connection *conn, int status,
                                     const char *code, const char *message)
{
    json_t *body = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
    if (!body) return MHD_NO;
    r->err = r->err ? r->err : EX_EINTERNAL;
    if (!r->e.code[0]) snprintf(r->e.code, sizeof r->e.code, "%s", code);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (status == 503 || status == 429) MHD_add_response_header(resp, "Retry-After", "5");
    if (status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    return queue(r, conn, status, resp);
}

static enum MHD_Result respond_rc(req *r, struct MHD_Connection *conn, ex_rc rc, const ex_error *e)
{
    int status = ex_rc_status(rc);
    const char *code = e && e->code[0] ? e->code : ex_rc_code(rc);
    const char *msg = e && e->message[0] ? e->message : "the request failed";
    if (status >= 500) {
        /* Internal detail goes to the log; the client gets a message it can act on. */
        log_event("error", "internal", "rid=%llu code=%s", r->rid, code);
        if (rc != EX_EBUSY) msg = "the server failed to handle the request; try again later";
    }
    r->err = rc;
    return respond_error(r, conn, status, code, msg);
}

/* ---- browser pages -------------------------------------------------------------------- */

static const struct embedded_file *find_asset(const char *name)
{
    for (size_t i = 0; i < ui_files_count; i++)
        if (strcmp(ui_files[i].name, name) == 0) return &ui_files[i];
    return NULL;
}

static const char *content_type_for(const char *name)
{
    const char *dot = strrchr(name, '.');
    static const char *const types[][2] = {{".html", "text/html; charset=utf-8"},
                                           {".css", "text/css; charset=utf-8"},
                                           {".js", "text/javascript; charset=utf-8"},
                                           {".svg", "image/svg+xml"},
                                           {".png", "image/png"},
                                           {".ico", "image/x-icon"}};
    for (size_t i = 0; dot && i < sizeof types / sizeof *types; i++)
        if (strcmp(dot, types[i][0]) == 0) return types[i][1];
    return "application/octet-stream";
}

/* Pages only ever load our own scripts and images; nothing may frame them. */
static void add_page_headers(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; "
                            "style-src 'self'; object-src 'none'; base-uri 'none'; "
                            "form-action 'self'; frame-ancestors 'none'");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
}

static enum MHD_Result send_asset(req *r, struct MHD_Connection *conn, int status, const char *name)
{
    const struct embedded_file *f = find_asset(name);
    if (!f) return respond_error(r, conn, 404, "not_found", "no such page or asset");
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", content_type_for(name));
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    add_page_headers(resp);
    return queue(r, conn, status, resp);
}

static enum MHD_Result respond_redirect(req *r, struct MHD_Connection *conn, const char *location,
                                        const char *cookie)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Location", location);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (cookie) MHD_add_response_header(resp, "Set-Cookie", cookie);
    return queue(r, conn, 303, resp);
}

/* A small HTML error page; msg is our own text, never request data. */
static enum MHD_Result respond_html_error(req *r, struct MHD_Connection *conn, int status,
                                          const char *msg)
{
    char *page = NULL;
    if (asprintf(&page,
                 "<!doctype html><meta charset=utf-8><title>exhibit</title>"
                 "<link rel=stylesheet href=/ui/assets/app.css><main class=narrow>"
                 "<h1>Not allowed</h1><p>%s.</p><form method=get action=/ui/login>"
                 "<button>Sign in with another key</button></form></main>",
                 msg) < 0)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(page), page, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(page);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    add_page_headers(resp);
    r->err = EX_EFORBIDDEN;
    snprintf(r->e.code, sizeof r->e.code, "forbidden");
    return queue(r, conn, status, resp);
}

/* `next` targets are our own pages only: a path under /ui/ in a strict character set, so it
 * can go into a Location header unescaped and can never point at another site. */
static int safe_next(const char *next)
{
    if (!next || strncmp(next, "/ui/", 4) != 0 || strlen(next) > 120) return 0;
    for (const char *p = next; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '/' || *p == '_' || *p == '-'))
            return 0;
    return strstr(next, "//") == NULL;
}

static enum MHD_Result redirect_to_login(req *r, struct MHD_Connection *conn, const char *path)
{
    char loc[200];
    if (safe_next(path))
        snprintf(loc, sizeof loc, "/ui/login?next=%s", path);
    else
        snprintf(loc, sizeof loc, "/ui/login");
    return respond_redirect(r, conn, loc, NULL);
}

/* One application/x-www-form-urlencoded field, decoded; 0 when absent or malformed. */
static int form_field(const char *body, size_t len, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=')
            return util_url_decode(p + nlen + 1, (size_t)(stop - p) - nlen - 1, out, cap) !=
                   (size_t)-1;
        p = stop + 1;
    }
    return 0;
}

static int same_origin(struct MHD_Connection *conn);

/* Same-origin check for cookie-authenticated writes: the page's token in X-CSRF-Token, and,
 * when the browser sends one, an Origin naming this host. */
static int csrf_ok(req *r, struct MHD_Connection *conn)
{
    const char *tok = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-CSRF-Token");
    return tok && session_token_equal(tok, r->csrf) && same_origin(conn);
}

/* ---- routing and auth ---------------------------------------------------------------- */

/* Matches path against pattern; copies a '*' segment into id. Ids are [A-Za-z0-9_.-]{1,64}
 * (the dot only for asset names, which are looked up in a table, never on disk): anything
 * else cannot name a stored object, so it does not match (404). */
static int match_path(const char *pattern, const char *path, char *id, size_t cap)
{
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p == '*') {
            size_t n = 0;
            while (s[n] && s[n] != '/') {
                char ch = s[n];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.'))
                    return 0;
                n++;
            }
            if (n == 0 || n > 64 || n >= cap) return 0;
            memcpy(id, s, n);
            id[n] = '\0';
            s += n;
            p++;
            continue;
        }
        if (*p != *s) return 0;
        p++;
        s++;
    }
    if (*s == '/' && s[1] == '\0') s++; /* tolerate one trailing slash */
    return *p == '\0' && *s == '\0';
}

static const struct route_def *find_route(const char *method, const char *path, char *id,
                                          size_t cap, int *wrong_method)
{
    *wrong_method = 0;
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        if (!match_path(routes[i].pattern, path, id, cap)) continue;
        if (strcmp(routes[i].method, method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0))
            return &routes[i];
        *wrong_method = 1;
    }
    return NULL;
}

/* A Bearer key, or else the browser session cookie. */
static ex_rc authenticate(req *r, struct MHD_Connection *conn, ex_error *e)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    const char *cookie = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, "exhibit_session");
    if (!h && cookie) {
        session_info si;
        ex_rc rc = session_lookup(r->srv->a->db, cookie, &si, e);
        if (rc) return rc;
        r->key = si.key;
        r->has_key = 1;
        r->via_cookie = 1;
        memcpy(r->csrf, si.csrf, sizeof r->csrf);
        r->session_expires = si.expires_at;
        return EX_OK;
    }
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return ex_fail(e, EX_EAUTH, "unauthorized",
                       "this endpoint needs an API key: send Authorization: Bearer <key>");
    h += 7;
    while (*h == ' ')
        h++;
    ex_rc rc = keys_lookup(r->srv->a->db, h, &r->key, e);
    if (!rc) r->has_key = 1;
    return rc;
}

/* ---- upload bodies ------------------------------------------------------------------ */

static ex_rc on_part_begin(void *ud, const char *name, const char *filename,
                           const char *content_type, ex_error *e)
{
    req *r = ud;
    (void)filename;
    r->field_len = 0;
    if (strcmp(name, "file") == 0) {
        r->part_kind = 1;
        return intake_file_begin(r->u, content_type, e);
    }
    r->part_kind = 2;
    snprintf(r->field_name, sizeof r->field_name, "%s", name);
    return EX_OK;
}

static ex_rc on_part_data(void *ud, const uint8_t *data, size_t len, ex_error *e)
{
    req *r = ud;
    if (r->part_kind == 1) return intake_file_data(r->u, data, len, e);
    if (r->field_len + len >= sizeof r->field_val)
        return ex_fail(e, EX_EINVAL, "invalid_field", "form field '%s' is longer than %zu bytes",
                       r->field_name, sizeof r->field_val - 1);
    memcpy(r->field_val + r->field_len, data, len);
    r->field_len += len;
    return EX_OK;
}

static ex_rc on_part_end(void *ud, ex_error *e)
{
    req *r = ud;
    int kind = r->part_kind;
    r->part_kind = 0;
    if (kind == 1) return intake_file_end(r->u, e);
    r->field_val[r->field_len] = '\0';
    return intake_set_field(r->u, r->field_name, r->field_val, e);
}

static const mp_callbacks upload_callbacks = {on_part_begin, on_part_data, on_part_end};

/* Sets up body handling for an upload; errors here are answered before the body is read. */
static ex_rc upload_begin(req *r, struct MHD_Connection *conn, ex_error *e)
{
    app *a = r->srv->a;
    ex_rc rc = cases_lookup(a, r->id, &r->key, &r->c, e);
    if (rc) return rc;
    r->u = intake_new(a, &r->key, &r->c);
    if (!r->u) return ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
    if (r->route == R_INSPECTION) intake_set_inspection(r->u);
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (ct && strncasecmp(ct, "multipart/form-data", 19) == 0) {
        char boundary[MP_MAX_BOUNDARY + 1];
        if ((rc = mp_boundary_from_content_type(ct, boundary, sizeof boundary, e))) return rc;
        r->mp = mp_new(boundary, &upload_callbacks, r);
        if (!r->mp) return ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
        return EX_OK;
    }
    /* A raw body must say it is an image; the bytes then decide which kind. */
    if (ct && strncasecmp(ct, "image/", 6) == 0 && r->route == R_UPLOAD)
        return intake_file_begin(r->u, ct, e);
    if (r->route == R_INSPECTION)
        return ex_fail(e, EX_EINVAL, "invalid_content_type",
                       "an inspection is multipart/form-data with 'grade', 'notes' and 'file' "
                       "parts");
    return ex_fail(e, EX_EMEDIA, "unsupported_media_type",
                   "send the image as a raw body with Content-Type image/jpeg, image/png, "
                   "image/webp, image/heic or image/avif, or as multipart/form-data parts "
                   "named 'file'");
}

static ex_rc upload_feed(req *r, const char *data, size_t len, ex_error *e)
{
    if (r->mp) return mp_feed(r->mp, (const uint8_t *)data, len, e);
    return intake_file_data(r->u, data, len, e);
}

static enum MHD_Result upload_finish(req *r, struct MHD_Connection *conn)
{
    ex_error e = {{0}, {0}};
    ex_rc rc = r->mp ? mp_finish(r->mp, &e) : intake_file_end(r->u, &e);
    json_t *items = NULL, *inspection = NULL;
    int created = 0;
    if (!rc) rc = intake_commit(r->u, &items, &created, &inspection, &e);
    if (rc) return respond_rc(r, conn, rc, &e);
    r->committed = 1;
    r->files_stored = intake_file_count(r->u);
    if (inspection)
        return respond_json(r, conn, 201,
                            json_pack("{s:o, s:o}", "inspection", inspection, "items", items));
    return respond_json(r, conn, created ? 201 : 200, json_pack("{s:o}", "items", items));
}

/* ---- handlers ------------------------------------------------------------------------ */

static enum MHD_Result handle_health(req *r, struct MHD_Connection *conn)
{
    app *a = r->srv->a;
    char tmp[BLOB_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s/tmp", a->bs.root);
    int ok = access(tmp, W_OK) == 0 && keys_count(a->db) >= 0;
    if (!ok) return respond_error(r, conn, 503, "unhealthy", "storage or database unusable");
    return respond_json(r, conn, 200, json_pack("{s:s}", "status", "ok"));
}

static enum MHD_Result handle_metrics(req *r, struct MHD_Connection *conn)
{
    size_t len = 0;
    char *text = metrics_render(r->srv->a->metrics, &len);
    if (!text) return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
    return queue(r, conn, 200, resp);
}

/* Parses the buffered JSON body; on failure the 400 is already queued and *body is NULL. */
static enum MHD_Result parse_json_body(req *r, struct MHD_Connection *conn, json_t **body)
{
    json_error_t jerr;
    *body = NULL;
    if (!r->json || r->json_len == 0)
        return respond_error(r, conn, 400, "invalid_json", "the body must be a JSON object");
    *body = json_loadb(r->json, r->json_len, JSON_REJECT_DUPLICATES, &jerr);
    if (*body) return MHD_YES;
    char msg[256];
    snprintf(msg, sizeof msg, "the body is not valid JSON: %s (line %d, column %d)", jerr.text,
             jerr.line, jerr.column);
    return respond_error(r, conn, 400, "invalid_json", msg);
}

static enum MHD_Result handle_case_create(req *r, struct MHD_Connection *conn)
{
    ex_error e = {{0}, {0}};
    json_t *body, *out = NULL;
    enum MHD_Result ok = parse_json_body(r, conn, &body);
    if (!body) return ok;
    ex_rc rc = cases_create(r->srv->a, body, &r->key, &out, &e);
    json_decref(body);
    if (rc) return respond_rc(r, conn, rc, &e);
    return respond_json(r, conn, 201, out);
}

static enum MHD_Result handle_decision(req *r, struct MHD_Connection *conn)
{
    ex_error e = {{0}, {0}};
    case_ref c;
    json_t *body = NULL, *out = NULL;
    ex_rc rc = cases_lookup(r->srv->a, r->id, &r->key, &c, &e);
    if (rc) return respond_rc(r, conn, rc, &e);
    enum MHD_Result ok = parse_json_body(r, conn, &body);
    if (!body) return ok;
    rc = cases_decide(r->srv->a, &c, body, &r->key, &out, &e);
    json_decref(body);
    if (rc) return respond_rc(r, conn, rc, &e);
    return respond_json(r, conn, 201, out);
}

static enum MHD_Result handle_similar(req *r, struct MHD_Connection *conn)
{
    ex_error e = {{0}, {0}};
    evidence_ref ev;
    json_t *out = NULL;
    int limit = 20;
    const char *l = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
    if (l) {
        char *end;
        long v = strtol(l, &end, 10);
        if (*end || end == l || v < 1 || v > 500)
            return respond_error(r, conn, 400, "invalid_field",
                                 "query parameter 'limit' must be a number from 1 to 500");
        limit = (int)v;
    }
    /* The route's roles already exclude parties to a case; this keeps it so if a role is
     * ever added there. */
    if (!evidence_may_see_reuse(&r->key))
        return respond_error(r, conn, 403, "forbidden", "this key may not list matches");
    ex_rc rc = evidence_lookup(r->srv->a, r->id, &r->key, &ev, &e);
    if (!rc) rc = evidence_similar_json(r->srv->a, &ev, limit, &out, &e);
    if (rc) return respond_rc(r, conn, rc, &e);
    return respond_json(r, conn, 200, out);
}

static enum MHD_Result handle_case_get(req *r, struct MHD_Connection *conn)
{
    ex_error e = {{0}, {0}};
    case_ref c;
    json_t *out = NULL;
    ex_rc rc = cases_lookup(r->srv->a, r->id, &r->key, &c, &e);
    if (!rc) rc = cases_to_json(r->srv->a, &c, &r->key, &out, &e);
    if (rc) return respond_rc(r, conn, rc, &e);
    return respond_json(r, conn, 200, out);
}

static enum MHD_Result handle_evidence_get(req *r, struct MHD_Connection *conn)
{
    ex_error e = {{0}, {0}};
    evidence_ref ev;
    json_t *out = NULL;
    ex_rc rc = evidence_lookup(r->srv->a, r->id, &r->key, &ev, &e);
    if (!rc) rc = evidence_item_json(r->srv->a, ev.rowid, &r->key, 1, &out, &e);
    if (rc) return respond_rc(r, conn, rc, &e);
    return respond_json(r, conn, 200, out);
}

/* Serves a content-addressed file with a strong ETag. */
static enum MHD_Result send_blob(req *r, struct MHD_Connection *conn, const char *sha,
                                 const char *media_type, const char *cache_control)
{
    char etag[72], path[BLOB_PATH_MAX];
    snprintf(etag, sizeof etag, "\"%s\"", sha);
    const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match");
    if (inm && (strstr(inm, etag) || strcmp(inm, "*") == 0)) {
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!resp) return MHD_NO;
        MHD_add_response_header(resp, "ETag", etag);
        MHD_add_response_header(resp, "Cache-Control", cache_control);
        return queue(r, conn, 304, resp);
    }
    blobstore_path(&r->srv->a->bs, sha, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) close(fd);
        log_event("error", "blob_missing", "rid=%llu sha256=%s", r->rid, sha);
        return respond_error(r, conn, 500, "storage_error",
                             "the stored file is missing; the operator has been told");
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", media_type);
    MHD_add_response_header(resp, "ETag", etag);
    MHD_add_response_header(resp, "Cache-Control", cache_control);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    return queue(r, conn, 200, resp);
}

static enum MHD_Result handle_original(req *r, struct MHD_Connection *conn)
{
    ex_error e = {{0}, {0}};
    evidence_ref ev;
    ex_rc rc = evidence_lookup(r->srv->a, r->id, &r->key, &ev, &e);
    if (rc) return respond_rc(r, conn, rc, &e);
    /* The original keeps its EXIF and GPS: private, never in shared caches. */
    return send_blob(r, conn, ev.sha256, ev.media_type, "private, max-age=31536000, immutable");
}

/* Derivatives are made once at intake and never change for an item, so the URL names
 * immutable content; they carry no metadata, but stay private to the case's viewers. */
static enum MHD_Result handle_derivative(req *r, struct MHD_Connection *conn, int preview)
{
    ex_error e = {{0}, {0}};
    evidence_ref ev;
    ex_rc rc = evidence_lookup(r->srv->a, r->id, &r->key, &ev, &e);
    if (rc) return respond_rc(r, conn, rc, &e);
    const char *sha = preview ? ev.preview_sha256 : ev.thumb_sha256;
    if (!util_is_sha256_hex(sha))
        return respond_error(r, conn, 404, "derivative_not_found",
                             "this item has no derivative images");
    return send_blob(r, conn, sha, "image/jpeg", "private, max-age=31536000, immutable");
}

static enum MHD_Result handle_case_list(req *r, struct MHD_Connection *conn)
{
    ex_error e = {{0}, {0}};
    json_t *out = NULL;
    const char *raw = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "order_id");
    char order[129];
    if (!raw || !*raw)
        return respond_error(r, conn, 400, "missing_field",
                             "query parameter 'order_id' is required (GET /v1/cases?order_id=...)");
    /* Query values arrive undecoded (see no_unescape). */
    if (util_url_decode(raw, strlen(raw), order, sizeof order) == (size_t)-1)
        return respond_error(r, conn, 400, "invalid_field",
                             "query parameter 'order_id' is malformed or longer than 128 bytes");
    ex_rc rc = cases_find_by_order(r->srv->a, order, &r->key, &out, &e);
    if (rc) return respond_rc(r, conn, rc, &e);
    return respond_json(r, conn, 200, out);
}

static enum MHD_Result handle_session(req *r, struct MHD_Connection *conn)
{
    json_t *o = json_pack("{s:s, s:I, s:s}", "role", key_role_name(r->key.role), "key_id",
                          (json_int_t)r->key.id, "subject", r->key.subject);
    if (r->via_cookie) {
        char t[UTIL_TIME_LEN];
        util_time_format(r->session_expires, t);
        json_object_set_new(o, "csrf_token", json_string(r->csrf));
        json_object_set_new(o, "expires_at", json_string(t));
    }
    return respond_json(r, conn, 200, o);
}

/* When the browser names the page a request came from, it must be one of ours. */
static int same_origin(struct MHD_Connection *conn)
{
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    if (!origin || strcmp(origin, "null") == 0) return 1;
    const char *o = strstr(origin, "://");
    return host && o && strcmp(o + 3, host) == 0;
}

static enum MHD_Result handle_login(req *r, struct MHD_Connection *conn)
{
    char key[128] = "", next[160] = "", loc[256], token[SESSION_TOKEN_LEN], cookie[200];
    ex_error e = {{0}, {0}};
    key_info k;
    session_info si;
    form_field(r->json ? r->json : "", r->json_len, "key", key, sizeof key);
    if (!form_field(r->json ? r->json : "", r->json_len, "next", next, sizeof next) ||
        !safe_next(next))
        next[0] = '\0';
    const char *q = next[0] ? "&next=" : "";
    if (!same_origin(conn))
        return respond_error(r, conn, 403, "csrf_failed",
                             "sign in from exhibit's own sign-in page");
    if (keys_lookup(r->srv->a->db, key, &k, &e) != EX_OK) {
        snprintf(loc, sizeof loc, "/ui/login?error=bad_key%s%s", q, next);
        snprintf(r->e.code, sizeof r->e.code, "bad_key");
        return respond_redirect(r, conn, loc, NULL);
    }
    if (!(STAFF & ROLE_BIT(k.role))) {
        snprintf(loc, sizeof loc, "/ui/login?error=role_not_allowed%s%s", q, next);
        snprintf(r->e.code, sizeof r->e.code, "role_not_allowed");
        return respond_redirect(r, conn, loc, NULL);
    }
    ex_rc rc = session_create(r->srv->a->db, &k, SESSION_TTL_S, token, &si, &e);
    if (rc) return respond_rc(r, conn, rc, &e);
    r->key = k;
    r->has_key = 1;
    snprintf(cookie, sizeof cookie,
             "exhibit_session=%s; HttpOnly; SameSite=Strict; Path=/; Max-Age=%d", token,
             SESSION_TTL_S);
    if (!next[0])
        snprintf(next, sizeof next, k.role == ROLE_WAREHOUSE ? "/ui/inspect" : "/ui/cases");
    return respond_redirect(r, conn, next, cookie);
}

static enum MHD_Result handle_logout(req *r, struct MHD_Connection *conn)
{
    ex_error e = {{0}, {0}};
    const char *cookie = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, "exhibit_session");
    if (session_end(r->srv->a->db, cookie, &e)) return respond_rc(r, conn, EX_EDB, &e);
    return respond_redirect(r, conn, "/ui/login",
                            "exhibit_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
}

static enum MHD_Result dispatch(req *r, struct MHD_Connection *conn)
{
    switch (r->route) {
    case R_HEALTH:
        return handle_health(r, conn);
    case R_METRICS:
        return handle_metrics(r, conn);
    case R_CASE_CREATE:
        return handle_case_create(r, conn);
    case R_CASE_GET:
        return handle_case_get(r, conn);
    case R_UPLOAD:
    case R_INSPECTION:
        return upload_finish(r, conn);
    case R_DECISION:
        return handle_decision(r, conn);
    case R_EVIDENCE_SIMILAR:
        return handle_similar(r, conn);
    case R_CASE_LIST:
        return handle_case_list(r, conn);
    case R_SESSION:
        return handle_session(r, conn);
    case R_UI_LOGIN_PAGE:
        return send_asset(r, conn, 200, "login.html");
    case R_UI_LOGIN:
        return handle_login(r, conn);
    case R_UI_LOGOUT:
        return handle_logout(r, conn);
    case R_UI_INSPECT:
        return send_asset(r, conn, 200, "inspect.html");
    case R_UI_CASE:
        return send_asset(r, conn, 200, "case.html");
    case R_UI_ASSET:
        return send_asset(r, conn, 200, r->id);
    case R_ROOT:
        return respond_redirect(r, conn, "/ui/login", NULL);
    case R_EVIDENCE_GET:
        return handle_evidence_get(r, conn);
    case R_EVIDENCE_ORIGINAL:
        return handle_original(r, conn);
    case R_EVIDENCE_THUMB:
        return handle_derivative(r, conn, 0);
    case R_EVIDENCE_PREVIEW:
        return handle_derivative(r, conn, 1);
    default:
        return respond_error(r, conn, 404, "not_found", "no such endpoint");
    }
}

/* ---- the MHD callbacks --------------------------------------------------------------- */

/* First callback of a request: route, auth, role, and limits known from the headers. A failure
 * here is answered at once, before any body byte is read. */
static enum MHD_Result begin_request(req *r, struct MHD_Connection *conn, const char *url,
                                     const char *method)
{
    app *a = r->srv->a;
    ex_error e = {{0}, {0}};
    int wrong_method;
    snprintf(r->method, sizeof r->method, "%s", method);
    util_log_escape(url, r->path, sizeof r->path);
    r->def = find_route(method, url, r->id, sizeof r->id, &wrong_method);
    if (!r->def) {
        if (wrong_method)
            return respond_error(r, conn, 405, "method_not_allowed",
                                 "this path does not accept that method");
        return respond_error(r, conn, 404, "not_found", "no such endpoint");
    }
    r->route = r->def->route;
    if (r->def->roles != PUBLIC) {
        ex_rc rc = authenticate(r, conn, &e);
        if (rc && r->def->html) return redirect_to_login(r, conn, url);
        if (rc) return respond_rc(r, conn, rc, &e);
        if (!(r->def->roles & ROLE_BIT(r->key.role))) {
            char msg[160];
            snprintf(msg, sizeof msg, "a %s key may not use this %s", key_role_name(r->key.role),
                     r->def->html ? "page" : "endpoint");
            if (r->def->html) return respond_html_error(r, conn, 403, msg);
            return respond_error(r, conn, 403, "forbidden", msg);
        }
        if (r->via_cookie && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
            !csrf_ok(r, conn))
            return respond_error(r, conn, 403, "csrf_failed",
                                 "this request came from a page that is not exhibit's own, or "
                                 "lacks its X-CSRF-Token header: reload the page and try again");
    }
    r->limit = r->def->body == BODY_UPLOAD ? a->cfg.max_body
               : r->def->body == BODY_JSON ? a->cfg.max_json_body
               : r->def->body == BODY_FORM ? 4096
                                           : 0;
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl && r->def->body != BODY_NONE) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || *end || n > r->limit) {
            char msg[160];
            snprintf(msg, sizeof msg, "the body is larger than the limit of %llu bytes",
                     (unsigned long long)r->limit);
            return respond_error(r, conn, 413, "body_too_large", msg);
        }
    }
    if (r->def->body == BODY_UPLOAD) {
        ex_rc rc = upload_begin(r, conn, &e);
        if (rc) return respond_rc(r, conn, rc, &e);
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    http_server *srv = cls;
    req *r = *con_cls;
    (void)version;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->srv = srv;
        r->t0 = util_mono_now();
        r->rid = atomic_fetch_add(&srv->next_rid, 1) + 1;
        atomic_fetch_add(&srv->inflight, 1);
        *con_cls = r;
        return begin_request(r, conn, url, method);
    }
    if (r->queued) {
        /* Already answered (an early refusal): swallow whatever body still arrives. */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        r->received += n;
        metrics_bytes_received(srv->a->metrics, n);
        if (r->received > r->limit) {
            /* Chunked bodies have no Content-Length: the limit is enforced here, and the
             * connection is dropped because a response cannot be queued mid-body. */
            log_event("warn", "body_too_large", "rid=%llu received=%llu", r->rid,
                      (unsigned long long)r->received);
            r->status = 413;
            return MHD_NO;
        }
        if (r->err) return MHD_YES; /* drain after an error; answered at the end */
        if (r->def->body == BODY_JSON || r->def->body == BODY_FORM) {
            char *p = realloc(r->json, r->json_len + n + 1);
            if (!p) {
                r->err = ex_fail(&r->e, EX_ENOMEM, "out_of_memory", "out of memory");
                return MHD_YES;
            }
            memcpy(p + r->json_len, upload_data, n);
            r->json = p;
            r->json_len += n;
        } else if (r->def->body == BODY_UPLOAD) {
            r->err = upload_feed(r, upload_data, n, &r->e);
        }
        return MHD_YES;
    }
    if (r->err) return respond_rc(r, conn, r->err, &r->e);
    return dispatch(r, conn);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *srv = cls;
    req *r = *con_cls;
    (void)conn;
    if (!r) return;
    *con_cls = NULL;
    double secs = util_mono_now() - r->t0;
    int status = r->status ? r->status : 499; /* 499: client went away before an answer */
    static const char *const terms[] = {"ok",       "error",      "timeout",
                                        "shutdown", "read_error", "client_abort"};
    const char *term = (unsigned)toe < sizeof terms / sizeof *terms ? terms[toe] : "other";
    log_event("info", "request",
              "rid=%llu method=%s path=%s route=%s status=%d ms=%.1f bytes_in=%llu role=%s "
              "key=%lld code=%s term=%s",
              r->rid, r->method, r->path, route_names[r->route], status, secs * 1000.0,
              (unsigned long long)r->received, r->has_key ? key_role_name(r->key.role) : "-",
              r->has_key ? (long long)r->key.id : -1LL, r->e.code[0] ? r->e.code : "-", term);
    metrics_request(srv->a->metrics, r->route, status, secs);
    if ((r->route == R_UPLOAD || r->route == R_INSPECTION) && r->u) {
        if (r->committed)
            metrics_upload(srv->a->metrics, 1, r->files_stored);
        else
            metrics_upload(srv->a->metrics, 0, 1);
    }
    mp_free(r->mp);
    intake_free(r->u); /* removes temp files of an upload that did not commit */
    free(r->json);
    free(r);
    atomic_fetch_sub(&srv->inflight, 1);
}

/* Paths are matched undecoded: ids never need escapes, and decoding would let "%00" or "%2F"
 * smuggle a NUL or a slash into an id. Query values we read are plain numbers. */
static size_t no_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512], esc[1024];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    util_log_escape(msg, esc, sizeof esc);
    log_event("warn", "microhttpd", "msg=%s", esc);
}

ex_rc http_start(app *a, http_server **out, int *port, ex_error *e)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", a->cfg.listen_port);
    if (getaddrinfo(a->cfg.listen_host, portstr, &hints, &ai) != 0 || !ai)
        return ex_fail(e, EX_EINVAL, "invalid_listen", "cannot resolve listen address '%s'",
                       a->cfg.listen_host);
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        freeaddrinfo(ai);
        return ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
    }
    s->a = a;
    if (!a->metrics && !(a->metrics = metrics_new(route_names, R_COUNT))) {
        free(s);
        freeaddrinfo(ai);
        return ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    /* The logger goes first so that errors about later options reach it. */
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT, a->cfg.max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, a->cfg.max_per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)a->cfg.conn_memory, MHD_OPTION_CONNECTION_TIMEOUT, a->cfg.conn_timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_UNESCAPE_CALLBACK, no_unescape,
        NULL, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        free(s);
        return ex_fail(e, EX_EIO, "listen_failed", "cannot listen on %s:%d (in use?)",
                       a->cfg.listen_host, a->cfg.listen_port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? info->port : a->cfg.listen_port;
    *out = s;
    return EX_OK;
}

void http_stop(http_server *s, int grace_s)
{
    if (!s) return;
    MHD_quiesce_daemon(s->d); /* stop accepting; in-flight requests go on */
    double until = util_mono_now() + grace_s;
    while (atomic_load(&s->inflight) > 0 && util_mono_now() < until)
        usleep(20000);
    MHD_stop_daemon(s->d);
    metrics_free(s->a->metrics);
    s->a->metrics = NULL;
    free(s);
}
