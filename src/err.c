/* err.c - result-code helpers. */
#include "exhibit/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

ex_rc ex_fail(ex_error *e, ex_rc rc, const char *code, const char *fmt, ...)
{
    if (e) {
        snprintf(e->code, sizeof e->code, "%s", code ? code : ex_rc_code(rc));
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof e->message, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int ex_rc_status(ex_rc rc)
{
    switch (rc) {
    case EX_OK:
        return 200;
    case EX_EINVAL:
        return 400;
    case EX_EAUTH:
        return 401;
    case EX_EFORBIDDEN:
        return 403;
    case EX_ENOTFOUND:
        return 404;
    case EX_ECONFLICT:
        return 409;
    case EX_ETOOBIG:
        return 413;
    case EX_EMEDIA:
        return 415;
    case EX_EREFUSED:
        return 422;
    case EX_EBUSY:
        return 503;
    default:
        return 500;
    }
}

const char *ex_rc_code(ex_rc rc)
{
    switch (rc) {
    case EX_OK:
        return "ok";
    case EX_EINVAL:
        return "bad_request";
    case EX_EAUTH:
        return "unauthorized";
    case EX_EFORBIDDEN:
        return "forbidden";
    case EX_ENOTFOUND:
        return "not_found";
    case EX_ECONFLICT:
        return "conflict";
    case EX_ETOOBIG:
        return "too_large";
    case EX_EMEDIA:
        return "unsupported_media_type";
    case EX_EREFUSED:
        return "refused";
    case EX_EBUSY:
        return "overloaded";
    case EX_ENOMEM:
        return "out_of_memory";
    case EX_EIO:
        return "storage_error";
    case EX_EDB:
        return "database_error";
    default:
        return "internal_error";
    }
}
