#!/bin/sh
# bench.sh - `make bench`: intake speed against a libvips baseline, peak RSS, HTTP uploads per
# second, and the 10M-hash index benchmark. Run by the Makefile after it has built
# build/exhibit and build/tools/*; it only reads the tree and writes under build/bench and a
# temp directory it removes. Exit 0 when every benchmark ran (a missed target is printed as
# TARGET MISSED, it is not a failure); 1 when one could not run or failed its own check.
#
# Knobs (environment): BENCH_RUNS (5) runs per image in-process, BENCH_HTTP_SECONDS (15) per
# concurrency level, BENCH_HTTP_CONCURRENCY (2,8), BENCH_EXTRA_RUNS (2) for the optional set,
# BENCH_PHOTOS (tests/data/photos) the corpus, BENCH_SHARED (../shared/testdata) where the
# optional inputs live (its photos/ stand in for a missing corpus), BENCH_SKIP (space
# separated: intake rss http index reuse) to leave sections out, BENCH_REUSE_IMAGES (1000000)
# the synthetic word-index size, TMPDIR for the data directories.
set -u

cd "$(dirname "$0")/.." || exit 1
OUT=build/bench
RUNS=${BENCH_RUNS:-5}
HTTP_SECONDS=${BENCH_HTTP_SECONDS:-15}
HTTP_CONC=${BENCH_HTTP_CONCURRENCY:-2,8}
EXTRA_RUNS=${BENCH_EXTRA_RUNS:-2}
SHARED=${BENCH_SHARED:-../shared/testdata}
SKIP=" ${BENCH_SKIP:-} "
PHOTOS=${BENCH_PHOTOS:-tests/data/photos}
status=0

mkdir -p "$OUT" || exit 1
rm -f "$OUT/intake.txt" "$OUT/rss.txt" "$OUT/http.txt" "$OUT/index.txt" "$OUT/intake.tsv"
TMPBASE=$(mktemp -d "${TMPDIR:-/tmp}/exhibit-bench.XXXXXX") || exit 1
trap 'rm -rf "$TMPBASE"' EXIT
trap 'rm -rf "$TMPBASE"; exit 130' INT TERM

section() {
    printf '\n==== %s ====\n' "$1"
}
load() {
    cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?"
}
skipped() {
    case "$SKIP" in *" $1 "*) echo "  skipped (BENCH_SKIP)"; return 0 ;; esac
    return 1
}
section "exhibit benchmarks (release build, -O2)"
echo "  date        $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "  machine     $(nproc) cores, load average $(load) (shared machine: read wall times with this in mind)"
echo "  libvips     $(vips --version 2>/dev/null || echo '? (vips CLI not found)')"
echo "  commit      $(git rev-parse --short HEAD 2>/dev/null || echo '?') (plus any uncommitted changes in the tree)"
echo "  outputs     $OUT/ (tables as .txt, tool stderr and libvips warnings as .log, per-image intake.tsv)"

for bin in build/exhibit build/tools/bench_intake build/tools/bench_index build/tools/bench_reuse; do
    if [ ! -x "$bin" ]; then
        echo "  MISSING $bin: run 'make bench' (it builds everything first)"
        exit 1
    fi
done

# ---- inputs -----------------------------------------------------------------------------------
section "inputs"
if [ ! -d "$PHOTOS" ]; then
    if [ -d "$SHARED/photos" ]; then
        echo "  $PHOTOS is absent; using $SHARED/photos instead"
        PHOTOS=$SHARED/photos
    else
        echo "  ABSENT: $PHOTOS (and $SHARED/photos): the photo benchmarks cannot run"
        PHOTOS=
        status=1
    fi
fi
[ -n "$PHOTOS" ] && echo "  corpus      $PHOTOS ($(ls "$PHOTOS" | wc -l) entries; the server decides which it accepts)"

EXTRA=
if [ -d "$SHARED" ]; then
    echo "  optional    $SHARED is present"
    if [ -d "$SHARED/neardup" ]; then
        EXTRA=$SHARED/neardup
        echo "              $EXTRA: $(ls "$EXTRA"/*.jpg 2>/dev/null | wc -l) already web-sized JPEGs (<= 1600 px," \
             "no metadata), measured as an extra row, $EXTRA_RUNS runs"
    else
        echo "              but $SHARED/neardup is ABSENT: no extra row"
    fi
else
    echo "  optional    $SHARED is ABSENT: the extra row (neardup, web-sized JPEGs) is left out"
fi

# The 12 MP JPEG: the real corpus JPEG with the most pixels, resized to exactly 4000x3000.
BIG=
if [ -n "$PHOTOS" ] && command -v vips >/dev/null 2>&1; then
    src=
    best=0
    for f in "$PHOTOS"/*.jpg; do
        [ -f "$f" ] || continue
        w=$(vipsheader -f width "$f" 2>/dev/null) || continue
        h=$(vipsheader -f height "$f" 2>/dev/null) || continue
        if [ $((w * h)) -gt "$best" ]; then
            best=$((w * h))
            src=$f
            dims="${w}x${h}"
        fi
    done
    if [ -n "$src" ] && vips thumbnail "$src" "$OUT/12mp.jpg[Q=90]" 4000 --height 3000 --size force \
        2>"$OUT/12mp.log"; then
        BIG=$OUT/12mp.jpg
        echo "  12 MP JPEG  $BIG, made now from the corpus JPEG with the most pixels:"
        echo "              '$src' ($dims)"
        echo "              by: vips thumbnail SRC '$BIG[Q=90]' 4000 --height 3000 --size force"
        echo "              (auto-rotated, resized to 4000x3000, baseline JPEG Q90, its EXIF kept;" \
             "$(wc -c <"$BIG") bytes)"
    else
        echo "  12 MP JPEG  could not be made (see $OUT/12mp.log): its row is left out"
    fi
elif [ -n "$PHOTOS" ]; then
    echo "  12 MP JPEG  ABSENT: the vips command-line tool is not installed; its row is left out"
fi

# ---- 1. in-process intake vs baseline ------------------------------------------------------------
section "1. intake cost per image, in-process, vs the libvips baseline (load $(load))"
echo "  intake   = intake_new/file_begin/file_data (32 KiB pieces)/file_end/commit/free on a fresh"
echo "             data dir per run: decode with limits, EXIF, both derivatives stored, SHA-256,"
echo "             blob commit, database insert, response JSON"
echo "  baseline = vips_thumbnail_buffer(bytes, 1600 px, size=down) rendered to memory + SHA-256"
echo "             (OpenSSL EVP) of the bytes; same process, same bytes, interleaved with intake"
echo "  $RUNS runs per image after a warm-up pass; progress lines follow"
if [ -z "$PHOTOS" ]; then
    echo "  skipped: no corpus"
elif ! skipped intake; then
    set -- --runs "$RUNS" --accepted "$TMPBASE/accepted.txt" --tsv "$OUT/intake.tsv" --tmp "$TMPBASE"
    [ -n "$BIG" ] && set -- "$@" --big "$BIG"
    [ -n "$EXTRA" ] && set -- "$@" --extra "$EXTRA" --extra-runs "$EXTRA_RUNS"
    { build/tools/bench_intake "$@" "$PHOTOS" 2>"$OUT/intake.log"; echo $? >"$TMPBASE/rc.intake"; } |
        tee "$OUT/intake.txt"
    rc=$(cat "$TMPBASE/rc.intake")
    if [ "$rc" != 0 ]; then
        echo "  FAILED: bench_intake exited $rc (see $OUT/intake.log)"
        status=1
    fi
    echo "  libvips/GLib warnings while decoding: $(grep -c 'level=' "$OUT/intake.log" 2>/dev/null || echo 0) lines in $OUT/intake.log"
fi

# ---- 2. peak RSS ---------------------------------------------------------------------------------
section "2. peak RSS after intake of the whole corpus, in-process (load $(load))"
if [ -z "$PHOTOS" ]; then
    echo "  skipped: no corpus"
elif ! skipped rss; then
    echo "  a fresh process set up like the server (decode slots, cache off) takes every corpus"
    echo "  file once, one after another; VmHWM from /proc/self/status"
    set -- --rss --tmp "$TMPBASE"
    [ -n "$BIG" ] && set -- "$@" --big "$BIG"
    { build/tools/bench_intake "$@" "$PHOTOS" 2>"$OUT/rss.log"; echo $? >"$TMPBASE/rc.rss"; } |
        tee "$OUT/rss.txt"
    rc=$(cat "$TMPBASE/rc.rss")
    if [ "$rc" != 0 ]; then
        echo "  FAILED: bench_intake --rss exited $rc (see $OUT/rss.log)"
        status=1
    fi
fi

# ---- 3. HTTP -------------------------------------------------------------------------------------
section "3. uploads over HTTP: build/exhibit serve on 127.0.0.1:0 (load $(load))"
if [ -z "$PHOTOS" ]; then
    echo "  skipped: no corpus"
elif skipped http; then
    :
elif ! command -v python3 >/dev/null 2>&1; then
    echo "  skipped: python3 is not installed (tools/bench_http.py is the load generator)"
else
    list=$TMPBASE/accepted.txt
    if [ ! -s "$list" ]; then
        # section 1 was skipped: upload what the allow-list admits (the server still decides)
        find "$PHOTOS" -maxdepth 1 -type f \( -name '*.jpg' -o -name '*.png' -o -name '*.webp' \
            -o -name '*.heic' -o -name '*.avif' \) | sort >"$list"
        echo "  (section 1 skipped: uploading every JPEG/PNG/WebP/HEIC/AVIF file; refusals count as errors)"
    fi
    { python3 tools/bench_http.py --exhibit build/exhibit --files "$list" --seconds "$HTTP_SECONDS" \
        --concurrency "$HTTP_CONC" --tmp "$TMPBASE" --log-dir "$OUT" 2>"$OUT/http.log"
      echo $? >"$TMPBASE/rc.http"; } | tee "$OUT/http.txt"
    rc=$(cat "$TMPBASE/rc.http")
    if [ "$rc" != 0 ]; then
        echo "  FAILED: bench_http.py exited $rc (see $OUT/http.log)"
        status=1
    fi
fi

# ---- 4. hash index -------------------------------------------------------------------------------
section "4. near-duplicate hash index: build/tools/bench_index, 10M hashes (load $(load))"
if ! skipped index; then
    { build/tools/bench_index 2>"$OUT/index.log"; echo $? >"$TMPBASE/rc.index"; } |
        tee "$OUT/index.txt"
    rc=$(cat "$TMPBASE/rc.index")
    if [ "$rc" != 0 ]; then
        echo "  FAILED: bench_index exited $rc: index and brute force disagree (see $OUT/index.log)"
        status=1
    fi
fi

section "5. reuse detection: build/tools/bench_reuse, 1M-image word index (load $(load))"
if ! skipped reuse; then
    REUSE_IMAGES=${BENCH_REUSE_IMAGES:-1000000}
    # shellcheck disable=SC2046
    find "$PHOTOS" -maxdepth 1 -name '*.jpg' -print0 | sort -z | head -z -n 40 |
        xargs -0 build/tools/bench_reuse --images "$REUSE_IMAGES" 2>"$OUT/reuse.log" |
        tee "$OUT/reuse.txt"
    if [ ! -s "$OUT/reuse.txt" ]; then
        echo "  FAILED: bench_reuse printed nothing (see $OUT/reuse.log)"
        status=1
    fi
    echo "  targets (one core): reuse check <= 60 ms per upload with extraction, shortlist <= 20 ms at 1M, <= 2 KB RAM per image"
fi

# ---- summary -------------------------------------------------------------------------------------
section "summary (load $(load))"
if [ -s "$OUT/intake.txt" ] && [ -n "$PHOTOS" ] && ! skipped intake >/dev/null; then
    grep -E '^  (corpus (JPEG|PNG|WebP|HEIC|AVIF)|12 MP JPEG [0-9]|OVERALL|optional set  )' "$OUT/intake.txt"
    grep -E 'overall median ratio' "$OUT/intake.txt"
fi
if [ -s "$OUT/rss.txt" ] && ! skipped rss >/dev/null; then
    grep -E 'peak RSS' "$OUT/rss.txt" | sed 's/^ */  in-process /'
fi
if [ -s "$OUT/http.txt" ] && ! skipped http >/dev/null; then
    grep -E 'concurrent uploaders|req/s|errors:|server peak RSS' "$OUT/http.txt" | sed 's/;.*//'
fi
if [ -s "$OUT/index.txt" ] && ! skipped index >/dev/null; then
    grep -A2 -E '^index \(' "$OUT/index.txt" | sed 's/^/  /'
    grep -E '^(speed-up|memory:|OK|FAIL)' "$OUT/index.txt" | sed 's/^/  /'
fi
if [ -s "$OUT/reuse.txt" ] && ! skipped reuse >/dev/null; then
    sed 's/^  /  reuse: /' "$OUT/reuse.txt"
fi
[ "$status" = 0 ] || echo "  one or more benchmarks FAILED to run (see above)"
exit "$status"
