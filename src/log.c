/* log.c - structured log lines (see log.h). */
#include "exhibit/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "exhibit/util.h"

static int log_quiet;

void log_set_quiet(int quiet)
{
    log_quiet = quiet;
}

void log_event(const char *level, const char *event, const char *fmt, ...)
{
    if (log_quiet && strcmp(level, "info") == 0) return;
    char line[2048], ts[UTIL_TIME_LEN];
    util_time_now(ts);
    int n = snprintf(line, sizeof line, "ts=%s level=%s event=%s ", ts, level, event);
    if (n < 0 || (size_t)n >= sizeof line) return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    /* A single write keeps lines from concurrent threads whole. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
