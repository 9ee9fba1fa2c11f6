/* unit.h - a minimal table-friendly test harness for tests/unit/test_<module>.c.
 *
 * Each test binary defines tests with TEST(name) and lists them in main via RUN(name).
 * CHECK failures are reported with file:line and the test is counted failed; the binary ends
 * with UNIT_DONE(), which prints "unit: N passed, N failed" for tests/run.sh to add up and
 * exits non-zero on any failure. EXHIBIT_TESTDATA points at tests/data.
 */
#ifndef EXHIBIT_UNIT_H
#define EXHIBIT_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_passed, unit_failed, unit_cur_failed;

#define TEST(name) static void name(void)
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                      \
            unit_cur_failed = 1;                                                                   \
        }                                                                                          \
    } while (0)
#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                      \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            unit_cur_failed = 1;                                                                   \
        }                                                                                          \
    } while (0)
#define RUN(name)                                                                                  \
    do {                                                                                           \
        unit_cur_failed = 0;                                                                       \
        name();                                                                                    \
        if (unit_cur_failed) {                                                                     \
            unit_failed++;                                                                         \
            fprintf(stderr, "not ok %s\n", #name);                                                 \
        } else {                                                                                   \
            unit_passed++;                                                                         \
            fprintf(stderr, "ok %s\n", #name);                                                     \
        }                                                                                          \
    } while (0)
#define UNIT_DONE()                                                                                \
    do {                                                                                           \
        printf("unit: %d passed, %d failed\n", unit_passed, unit_failed);                          \
        return unit_failed ? 1 : 0;                                                                \
    } while (0)

/* Path of a file under tests/data (static buffer; copy if you keep it). */
static inline const char *unit_data(const char *rel)
{
    static char buf[4096];
    const char *root = getenv("EXHIBIT_TESTDATA");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : "tests/data", rel);
    return buf;
}

#endif
