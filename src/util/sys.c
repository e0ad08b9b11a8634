/*
 * sys.c — randomness, ids, hashing, files and logging: the pieces of util
 * that talk to the operating system or libsodium.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

void keel_random(void *out, size_t len)
{
    unsigned char *p = out;
    while (len) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            abort(); /* no entropy source: nothing secure can be done */
        }
        p += n;
        len -= (size_t)n;
    }
}

/* Crockford base32, which sorts in the same order as the values. */
static const char b32[] = "0123456789abcdefghjkmnpqrstvwxyz";

void keel_new_id(const char *prefix, char *out, size_t cap)
{
    /* 48 bits of milliseconds then 80 random bits, as in ULID: ids made later
     * sort later, and two nodes never collide in practice. */
    uint8_t raw[16];
    uint64_t ms = (uint64_t)keel_wall_ms();
    for (int i = 0; i < 6; i++) raw[i] = (uint8_t)(ms >> (40 - 8 * i));
    keel_random(raw + 6, 10);
    char enc[27];
    /* 128 bits -> 26 chars of 5 bits (the first char carries 3 bits). */
    int bit = -2; /* pretend two leading zero bits so 26*5 = 130 */
    for (int c = 0; c < 26; c++) {
        int v = 0;
        for (int k = 0; k < 5; k++, bit++) {
            int b = 0;
            if (bit >= 0) b = (raw[bit / 8] >> (7 - bit % 8)) & 1;
            v = (v << 1) | b;
        }
        enc[c] = b32[v];
    }
    enc[26] = '\0';
    snprintf(out, cap, "%s_%s", prefix, enc);
}

size_t keel_i64_text(char *out, int64_t v)
{
    char tmp[20];
    size_t n = 0, len = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) out[len++] = '-';
    while (n)
        out[len++] = tmp[--n];
    return len;
}

void keel_hex(const uint8_t *data, size_t len, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hx[data[i] >> 4];
        out[2 * i + 1] = hx[data[i] & 15];
    }
    out[2 * len] = '\0';
}

/* SHA-256 through OpenSSL's EVP with the digest fetched once: OpenSSL uses
 * the CPU's SHA instructions where there are some (0.4-0.6 us for a journal
 * event's hash input here, against 2.3-5 us for libsodium's portable code;
 * the hash chain hashes every event: docs/journal.md).  libsodium stays the
 * fallback if the fetch fails. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

/* One digest context per thread, reused: EVP_Digest allocates, initializes
 * and frees a context on every call, which cost more than hashing a
 * journal event itself.  The context is freed at thread exit. */
static pthread_key_t sha256_key;

static void sha256_ctx_free(void *p)
{
    EVP_MD_CTX_free(p);
}

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (pthread_key_create(&sha256_key, sha256_ctx_free) != 0) {
        EVP_MD_free(sha256_md);
        sha256_md = NULL;
    }
}

void keel_sha256(const void *data, size_t len, uint8_t out[32])
{
    pthread_once(&sha256_once, sha256_fetch);
    unsigned int n = 32;
    EVP_MD_CTX *ctx = sha256_md ? pthread_getspecific(sha256_key) : NULL;
    if (sha256_md && !ctx && (ctx = EVP_MD_CTX_new()) != NULL &&
        pthread_setspecific(sha256_key, ctx) != 0) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
    }
    if (!ctx || EVP_DigestInit_ex2(ctx, sha256_md, NULL) != 1 ||
        EVP_DigestUpdate(ctx, data, len) != 1 || EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != 32)
        crypto_hash_sha256(out, data, len);
}

void keel_sha256_hex(const void *data, size_t len, char out[65])
{
    uint8_t h[32];
    keel_sha256(data, len, h);
    keel_hex(h, 32, out);
}

bool keel_secure_equal(const void *a, const void *b, size_t len)
{
    return sodium_memcmp(a, b, len) == 0;
}

int keel_read_file(const char *path, size_t max, struct buf *out, struct keel_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return keel_fail(err, e == ENOENT ? KEEL_ENOENT : KEEL_EIO, "cannot open %s: %s", path,
                         strerror(e));
    }
    struct buf b;
    buf_init(&b);
    buf_reserve(&b, 0);
    for (;;) {
        buf_reserve(&b, 65536);
        ssize_t n = read(fd, b.data + b.len, b.cap - b.len - 1);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            buf_cleanup(&b);
            return keel_fail(err, KEEL_EIO, "cannot read %s: %s", path, strerror(e));
        }
        if (n == 0) break;
        b.len += (size_t)n;
        if (b.len > max) {
            close(fd);
            buf_cleanup(&b);
            return keel_fail(err, KEEL_ELIMIT, "%s is larger than the limit of %zu bytes", path,
                             max);
        }
    }
    close(fd);
    b.data[b.len] = '\0';
    buf_cleanup(out);
    *out = b;
    return 0;
}

int keel_write_file_atomic(const char *path, const void *data, size_t len, int mode,
                           struct keel_err *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return keel_fail(err, KEEL_EIO, "cannot create %s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return keel_fail(err, KEEL_EIO, "cannot write %s: %s", tmp, strerror(e));
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return keel_fail(err, KEEL_EIO, "cannot sync %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return keel_fail(err, KEEL_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
    return 0;
}

int keel_mkdir_p(const char *path, int mode, struct keel_err *err)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) return keel_fail(err, KEEL_EINVAL, "bad directory path");
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, (mode_t)mode) != 0 && errno != EEXIST)
                return keel_fail(err, KEEL_EIO, "cannot create directory %s: %s", tmp,
                                 strerror(errno));
            tmp[i] = c;
        }
    }
    return 0;
}

static int log_level = -1;

void keel_log_set_level(enum keel_log_level level)
{
    log_level = (int)level;
}

void keel_log(enum keel_log_level level, const char *fmt, ...)
{
    if (log_level < 0) {
        const char *e = getenv("KEEL_LOG");
        log_level = KEEL_LOG_WARN;
        if (e) {
            if (!strcmp(e, "debug")) log_level = KEEL_LOG_DEBUG;
            else if (!strcmp(e, "info")) log_level = KEEL_LOG_INFO;
            else if (!strcmp(e, "error")) log_level = KEEL_LOG_ERROR;
        }
    }
    if ((int)level < log_level) return;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char ts[32];
    keel_format_time(keel_wall_ms(), ts);
    char line[2048];
    int n = snprintf(line, sizeof line, "%s keel %s: ", ts, names[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line so concurrent threads do not interleave. */
    size_t len = strlen(line);
    if (len + 1 < sizeof line) line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
