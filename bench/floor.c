/* The floor of zfs-offsite's backup stream: the least one process can do for its contract.
 *
 * Built and run by `python -m bench.sftp_stream --floor`, never by the product. stdin (the
 * send stream) in 1 MiB reads -> ZSTD_compressStream2 with the product's parameters (level
 * 3's parameters set explicitly, nbWorkers=2, jobSize=2 MiB, checksum) -> SHA-256 (OpenSSL
 * EVP, SHA-NI where the CPU has it) of the compressed bytes -> stdout, a pipe into
 * `ssh ... 'cat > f'`: no SFTP, no fsync, no checkpoint, no Python. The hex digest goes to
 * argv[1]; argv[2] "nohash" skips the SHA-256 to size its share.
 */
#define ZSTD_STATIC_LINKING_ONLY
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#define IN_SIZE (1u << 20)
#define OUT_SIZE ((1u << 20) + (1u << 17))

static void die(const char *what) { fprintf(stderr, "floor: %s\n", what); exit(1); }

static void check(size_t r, const char *what) {
    if (ZSTD_isError(r)) { fprintf(stderr, "floor: %s: %s\n", what, ZSTD_getErrorName(r)); exit(1); }
}

static void write_all(const char *p, size_t n) {
    while (n) {
        ssize_t w = write(1, p, n);
        if (w < 0) { if (errno == EINTR) continue; die("write"); }
        p += w; n -= (size_t)w;
    }
}

int main(int argc, char **argv) {
    if (argc < 2) die("usage: floor SHA256_OUT [nohash]");
    int hash = !(argc > 2 && strcmp(argv[2], "nohash") == 0);
    if (getenv("FLOOR_VERBOSE")) fprintf(stderr, "floor: libzstd %s\n", ZSTD_versionString());
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_compressionParameters cp = ZSTD_getCParams(3, ZSTD_CONTENTSIZE_UNKNOWN, 0);
    check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, (int)cp.windowLog), "windowLog");
    check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_chainLog, (int)cp.chainLog), "chainLog");
    check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_hashLog, (int)cp.hashLog), "hashLog");
    check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_searchLog, (int)cp.searchLog), "searchLog");
    check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_minMatch, (int)cp.minMatch), "minMatch");
    check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_targetLength, (int)cp.targetLength), "targetLength");
    check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_strategy, (int)cp.strategy), "strategy");
    check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1), "checksum");
    check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, 2), "nbWorkers (libzstd without threads?)");
    const char *job = getenv("FLOOR_JOB");  /* bytes; 0: zstd's default (as the CLI) */
    check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_jobSize, job ? atoi(job) : 2 << 20), "jobSize");

    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) die("sha256 init");
    char *in = malloc(IN_SIZE), *out = malloc(OUT_SIZE);
    if (!in || !out) die("malloc");
    ZSTD_outBuffer ob = {out, OUT_SIZE, 0};
    unsigned long long stored = 0;
    for (;;) {
        ssize_t n = read(0, in, IN_SIZE);
        if (n < 0) { if (errno == EINTR) continue; die("read"); }
        ZSTD_EndDirective mode = n == 0 ? ZSTD_e_end : ZSTD_e_continue;
        ZSTD_inBuffer ib = {in, (size_t)n, 0};
        size_t left;
        do {
            left = ZSTD_compressStream2(cctx, &ob, &ib, mode);
            check(left, "compress");
            if (ob.pos) {
                if (hash) EVP_DigestUpdate(md, out, ob.pos);
                write_all(out, ob.pos);
                stored += ob.pos;
                ob.pos = 0;
            }
        } while (mode == ZSTD_e_end ? left != 0 : ib.pos < ib.size);
        if (n == 0) break;
    }
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(md, d, &dl);
    FILE *f = fopen(argv[1], "w");
    if (!f) die("sha256 file");
    for (unsigned i = 0; i < dl; i++) fprintf(f, "%02x", d[i]);
    fprintf(f, "  -\n");
    fclose(f);
    if (getenv("FLOOR_VERBOSE")) fprintf(stderr, "floor: stored %llu\n", stored);
    return 0;
}
