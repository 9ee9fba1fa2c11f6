#!/bin/sh
# Runs every test suite against the ASan/UBSan build and prints one summary line last:
# "N passed, N failed". Each suite prints its own "<suite>: N passed, N failed" line.
cd "$(dirname "$0")/.." || exit 1
export EXHIBIT_TESTDATA="$PWD/tests/data"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export VIPS_WARNING=0
mkdir -p tests/artifacts
passed=0
failed=0
skipped=0

# add_counts LOGFILE: adds the last "N passed, N failed[, N skipped]" of a suite's output.
add_counts() {
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
    if [ -z "$line" ]; then
        failed=$((failed + 1))
        echo "  (no summary: counted as one failure)"
        return
    fi
    p=$(echo "$line" | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^passed/) print $(i-1)}')
    f=$(echo "$line" | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^failed/) print $(i-1)}')
    s=$(echo "$line" | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^skipped/) print $(i-1)}')
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + ${s:-0}))
}

for t in build/asan/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    log="tests/artifacts/$name.log"
    echo "== $name"
    "$t" >"$log" 2>&1
    rc=$?
    grep -E '^(not ok|  FAIL)|ERROR|runtime error' "$log" | head -n 40
    add_counts "$log"
    if [ $rc -ne 0 ] && ! grep -q 'failed' "$log"; then failed=$((failed + 1)); fi
    tail -n 1 "$log"
done

for t in build/asan/tests/replay_*; do
    [ -x "$t" ] || continue
    name=${t##*/replay_}
    log="tests/artifacts/replay_$name.log"
    echo "== fuzz replay $name"
    if "$t" "tests/fuzz/corpus/$name" "tests/fuzz/crashers/$name" >"$log" 2>&1; then
        passed=$((passed + 1))
        tail -n 1 "$log"
    else
        failed=$((failed + 1))
        tail -n 30 "$log"
    fi
done

for t in tests/e2e/test_*.py; do
    [ -f "$t" ] || continue
    name=$(basename "$t" .py)
    log="tests/artifacts/$name.log"
    echo "== $name"
    python3 "$t" >"$log" 2>&1
    grep -E '^(not ok|FAIL|Traceback)' "$log" | head -n 40
    add_counts "$log"
    tail -n 1 "$log"
done

if [ -f tests/browser/ui.test.mjs ]; then
    echo "== browser"
    log=tests/artifacts/browser.log
    node tests/browser/ui.test.mjs >"$log" 2>&1
    grep -E '^not ok' "$log" | head -n 40
    add_counts "$log"
    tail -n 1 "$log"
fi

if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
