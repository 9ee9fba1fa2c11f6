/* eval_reuse.c - measures reused-image detection on real photos with edits it was not tuned on.
 *
 *   eval_reuse [DIR] [--dir2 DIR] [--split tune|report|all] [--seed N] [--per-family N]
 *              [--detector NAME] [--threads N] [--min-pairs N] [--limit N] [--dump DIR]
 *              [--verbose]
 *
 * DIR defaults to ../shared/testdata/neardup (150 photos); when it is absent the tool says so
 * and exits 0 ("skipped"). --dir2 adds the photos of a second folder. Photos are split into a
 * tuning and a report half by a hash of their file name (reuse_eval.h: re_split_of); only the
 * report half (the default) gives numbers to quote. Tune on --split tune.
 *
 * For every photo, --per-family (default 6) variants of each family in reuse_eval.c, drawn
 * with continuous random parameters from --seed (default 20240501), plus the hard negatives:
 * two catalog-style images (a random part of the photo on a near-white canvas) and two
 * non-overlapping crops of it. Every image is encoded, written to a temp file and decoded by
 * image_process, then signed by the detector under test and by plain PDQ.
 *
 * Indexed: originals, one catalog image, one crop and the first overlay variants (sticker, text
 * band, watermark, screenshot: different photos with the same caption) of each photo (and, when the
 * pairs fall short of --min-pairs, default 1,000,000, the first variant of one family after
 * another). Every image is then queried. Printed:
 *   - per family: recall (the variant's query accepts its own original) with its 95% Wilson
 *     interval, for the detector and for plain PDQ; "met" when the interval's lower bound
 *     reaches the target (benign 0.99, edits 0.95). With ~75 photos per half, 6 per family
 *     gives n ~ 450, the least at which even a perfect 0.99 row can be shown as met (n >= 380);
 *   - hard negatives: catalog images of different photos; the other crop of the same photo;
 *     every query against every indexed image of another photo (exact count, and the rate's
 *     95% upper bound: 3/n when there are none);
 *   - mean thread CPU time per signature and per query, and the elapsed time.
 *
 * --detector picks the adapter under test (reuse_eval.c, re_detectors[]; default the first,
 * the best available). --verbose prints every miss with its parameters; --dump DIR keeps every
 * generated file (name.SLOT.jpg/png) to look at; --limit N uses the first N photos of the half.
 * False matches are always printed.
 *
 * Exit status: 0 when it ran (targets missed are printed, not failures), 1 on a setup error,
 * 2 on bad arguments.
 */
#include "reuse_eval.h"

#include "exhibit/image.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int has_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    static const char *const ok[] = {".jpg", ".jpeg", ".png", ".webp", ".JPG", ".JPEG", ".PNG"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(dot, ok[i]) == 0) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends the photos of dir in the chosen half (split -1: all) to *files. -1 on no memory. */
static int list_photos(const char *dir, int split, char ***files, int *n, int *total)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.' || !has_ext(de->d_name)) continue;
        (*total)++;
        if (split >= 0 && re_split_of(de->d_name) != split) continue;
        char **nf = realloc(*files, (size_t)(*n + 1) * sizeof *nf);
        if (!nf) break;
        *files = nf;
        const size_t len = strlen(dir) + strlen(de->d_name) + 2;
        if (!(nf[*n] = malloc(len))) break;
        snprintf(nf[(*n)++], len, "%s/%s", dir, de->d_name);
    }
    closedir(d);
    return 0;
}

static void print_rate(const char *what, long fm, long pairs, long fm_pdq)
{
    double lo, hi;
    re_wilson(fm, pairs, &lo, &hi);
    printf("  %-26s %8ld  %4ld  ", what, pairs, fm);
    if (fm == 0)
        printf("rate <= %.2e (rule of three)", pairs ? 3.0 / pairs : 1.0);
    else
        printf("rate %.2e, <= %.2e (Wilson)", (double)fm / pairs, hi);
    printf("  plain PDQ %ld\n", fm_pdq);
}

static void usage(void)
{
    fprintf(stderr, "usage: eval_reuse [DIR] [--dir2 DIR] [--split tune|report|all] [--seed N] "
                    "[--per-family N] [--detector NAME] [--threads N] [--min-pairs N] "
                    "[--limit N] [--dump DIR] [--verbose]\ndetectors:");
    for (int i = 0; re_detectors[i]; i++)
        fprintf(stderr, " %s%s", re_detectors[i]->name, i == 0 ? " (default)" : "");
    fprintf(stderr, "\n");
}

int main(int argc, char **argv)
{
    const char *dir = "../shared/testdata/neardup", *dir2 = NULL, *split_name = "report";
    re_config c = {
        .seed = 20240501, .per_family = 6, .threads = 2, .min_pairs = 1000000, .progress = 1};
    c.det[0] = re_detectors[0];
    int limit = 1 << 30;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--verbose") == 0)
            c.verbose = 1;
        else if (a[0] == '-' && !v) {
            usage();
            return 2;
        } else if (strcmp(a, "--dir2") == 0)
            dir2 = argv[++i];
        else if (strcmp(a, "--split") == 0)
            split_name = argv[++i];
        else if (strcmp(a, "--seed") == 0)
            c.seed = strtoull(argv[++i], NULL, 0);
        else if (strcmp(a, "--per-family") == 0)
            c.per_family = atoi(argv[++i]);
        else if (strcmp(a, "--threads") == 0)
            c.threads = atoi(argv[++i]);
        else if (strcmp(a, "--min-pairs") == 0)
            c.min_pairs = atol(argv[++i]);
        else if (strcmp(a, "--dump") == 0)
            c.dump_dir = argv[++i];
        else if (strcmp(a, "--limit") == 0)
            limit = atoi(argv[++i]);
        else if (strcmp(a, "--detector") == 0) {
            if (!(c.det[0] = re_detector_find(argv[++i]))) {
                fprintf(stderr, "eval_reuse: no detector \"%s\"\n", argv[i]);
                usage();
                return 2;
            }
        } else if (a[0] == '-') {
            usage();
            return 2;
        } else
            dir = a;
    }
    const int split = strcmp(split_name, "tune") == 0     ? 0
                      : strcmp(split_name, "report") == 0 ? 1
                      : strcmp(split_name, "all") == 0    ? -1
                                                          : -2;
    if (split == -2 || c.per_family < 1 || c.per_family > 100 || c.threads < 1) {
        usage();
        return 2;
    }
    c.det[1] = re_detector_find("pdq31");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        printf("eval_reuse: %s is absent: skipped\n", dir);
        return 0;
    }
    ex_error e;
    if (image_global_init(argv[0], &e)) {
        fprintf(stderr, "eval_reuse: %s\n", e.message);
        return 1;
    }
    c.tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    int total = 0;
    if (list_photos(dir, split, &c.files, &c.nfiles, &total) ||
        (dir2 && list_photos(dir2, split, &c.files, &c.nfiles, &total)))
        return 1;
    if (c.files) qsort(c.files, (size_t)c.nfiles, sizeof *c.files, cmp_str);
    const int listed = c.nfiles;
    if (c.nfiles > limit) c.nfiles = limit < 2 ? 2 : limit;
    printf("eval_reuse: detector %s (%s)\n", c.det[0]->name, c.det[0]->about);
    printf("  photos: %s%s%s; split %s: %d of %d photos (hash of the file name)%s\n", dir,
           dir2 ? " + " : "", dir2 ? dir2 : "", split_name, c.nfiles, total,
           split == 1   ? ", the half to quote"
           : split == 0 ? ", the half to tune on"
                        : "");
    printf("  seed %llu, %d variants per family per photo, %d threads\n",
           (unsigned long long)c.seed, c.per_family, c.threads);
    fflush(stdout);
    re_result r;
    const int rc = c.nfiles >= 2 ? re_run(&c, &r) : -1;
    for (int i = 0; i < listed; i++)
        free(c.files[i]);
    free(c.files);
    if (rc) {
        if (c.nfiles < 2) fprintf(stderr, "eval_reuse: fewer than 2 photos\n");
        image_global_shutdown();
        return 1;
    }

    printf("\nrecall over %d photos (%d near-flat photo(s) left out: PDQ quality < 50, which may\n"
           "neither match nor be matched; their images still count as negatives)\n",
           r.photos - r.flat_photos, r.flat_photos);
    printf("%-22s %5s  %-24s %-24s %s\n", "family", "n", c.det[0]->name, "plain PDQ<=31",
           "target  met?");
    for (int f = 0; f < RE_FAMILIES; f++) {
        double lo[2], hi[2];
        for (int d = 0; d < 2; d++)
            re_wilson(r.hit[d][f], r.n[f], &lo[d], &hi[d]);
        char cell[2][40];
        for (int d = 0; d < 2; d++)
            snprintf(cell[d], sizeof cell[d], "%.3f [%.3f, %.3f]",
                     r.n[f] ? (double)r.hit[d][f] / r.n[f] : 0.0, lo[d], hi[d]);
        if (f == 0 || re_families[f].group != re_families[f - 1].group)
            printf("%s\n", re_families[f].group == RE_BENIGN ? "benign" : "edit");
        printf("  %-20s %5ld  %-24s %-24s %.2f    %s\n", re_families[f].name, r.n[f], cell[0],
               cell[1], re_families[f].target, lo[0] >= re_families[f].target ? "met" : "no");
    }
    printf("\nhard negatives: false matches of %s (95%% upper bound of the rate)\n",
           c.det[0]->name);
    printf("  %-26s %8s  %4s\n", "family", "pairs", "fm");
    print_rate("catalog, different photos", r.cat_fm[0], r.cat_pairs, r.cat_fm[1]);
    print_rate("same scene, no overlap", r.scene_fm[0], r.scene_pairs, r.scene_fm[1]);
    print_rate("all different-photo pairs", r.fm[0], r.pairs, r.fm[1]);
    printf("  same scene = two disjoint crops of one photo, each < 45%% of it; true re-shoots of\n"
           "  one object are not in this set (none found among the test photos).\n"
           "  all pairs = %ld queries x the indexed images of the other photos; indexed (%ld):\n"
           "  originals, one catalog image, one crop and the first sticker, text band, watermark\n"
           "  and screenshot variant per photo, + %d variant(s) per photo.\n",
           r.queries, r.indexed, r.extra_indexed);
    /* The pairs are not independent: all images of one photo look alike, so the bound above
     * holds only if a false match would be a property of an image, not of a photo pair. */
    printf("  they come from %ld distinct photo pairs; the bound assumes independent pairs\n"
           "  (3 / %ld = %.1e per photo pair is the cautious reading).\n",
           (long)r.photos * (r.photos - 1) / 2, (long)r.photos * (r.photos - 1) / 2,
           r.photos > 1 ? 6.0 / ((double)r.photos * (r.photos - 1)) : 1.0);
    if (r.errors[0] || r.errors[1])
        printf("  errors (signature or query failed): %s %ld, plain PDQ %ld\n", c.det[0]->name,
               r.errors[0], r.errors[1]);
    printf("\ncost (mean thread CPU time; the machine may be shared)\n");
    printf("  %-10s signature %.2f ms, query %.3f ms (index of %ld images)\n", c.det[0]->name,
           r.sig_ms[0], r.query_ms[0], r.indexed);
    printf("  %-10s signature %.2f ms, query %.3f ms\n", "pdq31", r.sig_ms[1], r.query_ms[1]);
    printf("  elapsed   %.0f s for %d photos\n", r.elapsed_s, r.photos);
    image_global_shutdown();
    return 0;
}
