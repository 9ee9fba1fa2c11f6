/* Unit tests for the content-addressed blob store. */
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exhibit/blobstore.h"
#include "unit.h"

static char dir[256];

static int count_files(const char *sub)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    DIR *d = opendir(p);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

TEST(stream_commit_and_address)
{
    blobstore bs;
    blob_writer w;
    CHECK(blobstore_open(&bs, dir, NULL, NULL) == EX_OK);
    CHECK(blob_writer_open(&bs, &w, NULL) == EX_OK);
    CHECK(blob_writer_write(&w, "ab", 2, NULL) == EX_OK);
    CHECK(blob_writer_write(&w, "c", 1, NULL) == EX_OK);
    CHECK(memcmp(w.head, "abc", 3) == 0 && w.head_len == 3);
    CHECK(blob_writer_finish(&w, NULL) == EX_OK);
    /* SHA-256("abc"), FIPS 180-2 appendix B.1 */
    const char *want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    CHECK(strcmp(w.hex, want) == 0);
    CHECK(count_files("tmp") == 1);
    CHECK(blob_writer_commit(&bs, &w, NULL) == EX_OK);
    blob_writer_abort(&w); /* idempotent after commit */
    CHECK(count_files("tmp") == 0);
    CHECK(blobstore_exists(&bs, want));
    char p[1024];
    blobstore_path(&bs, want, p, sizeof p);
    CHECK(strstr(p, "/blobs/ba/78/ba7816bf") != NULL);
    FILE *f = fopen(p, "rb");
    char buf[8] = {0};
    CHECK(f && fread(buf, 1, sizeof buf, f) == 3 && memcmp(buf, "abc", 3) == 0);
    if (f) fclose(f);
}

TEST(same_bytes_stored_once)
{
    blobstore bs;
    char h1[65], h2[65];
    CHECK(blobstore_open(&bs, dir, NULL, NULL) == EX_OK);
    CHECK(blobstore_put(&bs, "hello", 5, h1, NULL) == EX_OK);
    CHECK(blobstore_put(&bs, "hello", 5, h2, NULL) == EX_OK);
    CHECK(strcmp(h1, h2) == 0);
    blob_writer w;
    CHECK(blob_writer_open(&bs, &w, NULL) == EX_OK);
    CHECK(blob_writer_write(&w, "hello", 5, NULL) == EX_OK);
    CHECK(blob_writer_finish(&w, NULL) == EX_OK);
    CHECK(blob_writer_commit(&bs, &w, NULL) == EX_OK);
    CHECK(count_files("tmp") == 0);
}

TEST(abort_leaves_nothing)
{
    blobstore bs;
    blob_writer w;
    CHECK(blobstore_open(&bs, dir, NULL, NULL) == EX_OK);
    int before = count_files("blobs");
    CHECK(blob_writer_open(&bs, &w, NULL) == EX_OK);
    CHECK(blob_writer_write(&w, "partial", 7, NULL) == EX_OK);
    blob_writer_abort(&w);
    blob_writer_abort(&w);
    CHECK(count_files("tmp") == 0);
    CHECK(count_files("blobs") == before);
}

TEST(open_cleans_stale_temp_files)
{
    blobstore bs;
    char p[512];
    CHECK(blobstore_open(&bs, dir, NULL, NULL) == EX_OK);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/tmp/up-stale%d", dir, i);
        FILE *f = fopen(p, "w");
        if (f) fclose(f);
    }
    int cleaned = -1;
    CHECK(blobstore_open(&bs, dir, &cleaned, NULL) == EX_OK);
    CHECK(cleaned == 3);
    CHECK(count_files("tmp") == 0);
}

/* Command-line tools open the store beside a live server: they must not delete its uploads. */
TEST(open_without_cleaning_keeps_temp_files)
{
    blobstore bs;
    char p[512];
    CHECK(blobstore_open(&bs, dir, NULL, NULL) == EX_OK);
    snprintf(p, sizeof p, "%s/tmp/up-inflight", dir);
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
    CHECK(blobstore_open(&bs, dir, NULL, NULL) == EX_OK);
    CHECK(count_files("tmp") == 1);
    int cleaned = 0;
    CHECK(blobstore_open(&bs, dir, &cleaned, NULL) == EX_OK);
    CHECK(cleaned == 1 && count_files("tmp") == 0);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/exhibit-test-blob-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    RUN(stream_commit_and_address);
    RUN(same_bytes_stored_once);
    RUN(abort_leaves_nothing);
    RUN(open_cleans_stale_temp_files);
    RUN(open_without_cleaning_keeps_temp_files);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    UNIT_DONE();
}
