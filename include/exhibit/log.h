/* log.h - one structured line per event on stderr.
 *
 * Lines look like `ts=2026-11-28T09:15:00Z level=info event=request k=v ...`. The format
 * arguments are the caller's key=value pairs; values that come from outside must go through
 * util_log_escape first. Thread-safe (one write(2) per line).
 */
#ifndef EXHIBIT_LOG_H
#define EXHIBIT_LOG_H

void log_event(const char *level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Silences info lines (tests of tools that print to stderr); warnings and errors still go out. */
void log_set_quiet(int quiet);

#endif
