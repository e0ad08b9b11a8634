/*
 * client.c — the CLI side of the HTTP API: resolves the daemon address and
 * token, sends one request with libcurl, and turns the answer into JSON or
 * into a struct keel_err carrying the API's stable error code (so every
 * command maps API errors to the exit codes of cli.h the same way).
 *
 * Invariants: the token is never printed; responses larger than
 * CLI_MAX_RESPONSE are refused rather than buffered.
 */
#include "client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_client_flag(const struct cli_command *cmd, struct cli_client *c, int argc, char **argv,
                    int *i)
{
    static const struct {
        const char *name;
        size_t offset;
    } flags[] = {
        {"--server", offsetof(struct cli_client, server)},
        {"--token", offsetof(struct cli_client, token)},
        {"--data", offsetof(struct cli_client, data)},
    };
    const char *a = argv[*i];
    if (!strcmp(a, "--json")) {
        c->json = true;
        return 1;
    }
    for (size_t k = 0; k < KEEL_ARRAY_LEN(flags); k++) {
        size_t n = strlen(flags[k].name);
        const char *val = NULL;
        if (!strcmp(a, flags[k].name)) {
            if (*i + 1 >= argc) return -cli_usage_error(cmd, "%s needs a value", a);
            val = argv[++*i];
        } else if (!strncmp(a, flags[k].name, n) && a[n] == '=') {
            val = a + n + 1;
        } else {
            continue;
        }
        *(const char **)((char *)c + flags[k].offset) = val;
        return 1;
    }
    return 0;
}

static const int all_codes[] = {KEEL_EINVAL, KEEL_ENOMEM,  KEEL_EIO,      KEEL_ENOENT,
                                KEEL_EEXIST, KEEL_ELIMIT,  KEEL_EDENIED,  KEEL_EAUTH,
                                KEEL_ESTATE, KEEL_ETIMEOUT, KEEL_ESCHEMA, KEEL_EPROTO,
                                KEEL_ECORRUPT, KEEL_EBUSY, KEEL_EINTERNAL};

int cli_code_from_name(const char *name)
{
    for (size_t i = 0; name && i < KEEL_ARRAY_LEN(all_codes); i++)
        if (!strcmp(keel_strerror(all_codes[i]), name)) return all_codes[i];
    return KEEL_EINTERNAL;
}

void cli_path_escape(struct buf *path, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '.' || c == '~' || c == '-')
            buf_putc(path, (char)c);
        else
            buf_printf(path, "%%%02X", c);
    }
}

void cli_print_json(const struct json_value *v)
{
    struct buf b;
    buf_init(&b);
    json_write(&b, v, JSON_WRITE_PRETTY, NULL);
    buf_putc(&b, '\n');
    fwrite(b.data, 1, b.len, stdout);
    buf_cleanup(&b);
}

struct sink {
    struct buf body;
    bool too_big;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct sink *s = userdata;
    size_t n = size * nmemb;
    if (s->body.len + n > CLI_MAX_RESPONSE) {
        s->too_big = true;
        return 0;
    }
    buf_append(&s->body, ptr, n);
    return n;
}

static int resolve_token(const struct cli_client *c, char *out, size_t cap, struct keel_err *err)
{
    const char *t = c->token ? c->token : getenv("KEEL_TOKEN");
    if (t && *t) {
        if (strlen(t) >= cap) return keel_fail(err, KEEL_EINVAL, "the API token is too long");
        snprintf(out, cap, "%s", t);
        return 0;
    }
    const char *data = c->data ? c->data : getenv("KEEL_DATA");
    if (!data || !*data) data = CLI_DEFAULT_DATA;
    char path[4096];
    snprintf(path, sizeof path, "%s/admin.token", data);
    struct buf b;
    buf_init(&b);
    int rc = keel_read_file(path, 4096, &b, err);
    if (rc) {
        buf_cleanup(&b);
        return keel_fail(err, KEEL_EAUTH,
                         "no API token: pass --token or set KEEL_TOKEN, or point --data at the "
                         "daemon's data folder (%s is not readable)",
                         path);
    }
    size_t n = b.len;
    while (n && (b.data[n - 1] == '\n' || b.data[n - 1] == '\r' || b.data[n - 1] == ' ')) n--;
    if (n == 0 || n >= cap) {
        buf_cleanup(&b);
        return keel_fail(err, KEEL_EAUTH, "%s does not hold a token", path);
    }
    memcpy(out, b.data, n);
    out[n] = '\0';
    buf_cleanup(&b);
    return 0;
}

int cli_client_request(const struct cli_client *c, const char *method, const char *path,
                       const char *body, struct arena *a, struct json_value **out,
                       struct keel_err *err)
{
    static bool curl_ready;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = true;
    }
    const char *server = c->server ? c->server : getenv("KEEL_SERVER");
    if (!server || !*server) server = CLI_DEFAULT_SERVER;
    char token[512];
    int rc = resolve_token(c, token, sizeof token, err);
    if (rc) return rc;

    struct buf url, auth;
    buf_init(&url);
    buf_init(&auth);
    if (!strstr(server, "://")) buf_puts(&url, "http://");
    buf_puts(&url, server);
    while (url.len && url.data[url.len - 1] == '/') url.data[--url.len] = '\0';
    buf_puts(&url, path);
    buf_printf(&auth, "Authorization: Bearer %s", token);
    memset(token, 0, sizeof token);

    CURL *h = curl_easy_init();
    if (!h) {
        buf_cleanup(&url);
        buf_cleanup(&auth);
        return keel_fail(err, KEEL_ENOMEM, "cannot create an HTTP client");
    }
    struct curl_slist *hdrs = NULL;
    hdrs = curl_slist_append(hdrs, auth.data);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    struct sink sink = {.too_big = false};
    buf_init(&sink.body);
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    memset(auth.data, 0, auth.len);
    buf_cleanup(&auth);

    if (cc != CURLE_OK) {
        if (sink.too_big)
            rc = keel_fail(err, KEEL_ELIMIT, "the daemon's answer is larger than %u bytes",
                           CLI_MAX_RESPONSE);
        else
            rc = keel_fail(err, KEEL_EIO,
                           "cannot reach the keel daemon at %s (%s); start it with `keel serve` "
                           "or pass --server / set KEEL_SERVER",
                           server, curl_easy_strerror(cc));
        goto done;
    }
    struct json_value *v = NULL;
    struct keel_err perr;
    keel_err_clear(&perr);
    if (json_parse(a, sink.body.data ? sink.body.data : "", sink.body.len, NULL, &v, &perr)) {
        rc = keel_fail(err, KEEL_EPROTO, "%s answered HTTP %ld with something that is not JSON",
                       server, status);
        goto done;
    }
    if (status >= 200 && status < 300) {
        *out = v;
        rc = 0;
        goto done;
    }
    struct json_value *e = json_get(v, "error");
    const char *code = json_get_str(e, "code", NULL);
    const char *msg = json_get_str(e, "message", "no message");
    rc = keel_fail(err, code ? cli_code_from_name(code) : KEEL_EPROTO, "%s", msg);
done:
    buf_cleanup(&sink.body);
    buf_cleanup(&url);
    return rc;
}

int cli_client_args_id(const struct cli_command *cmd, struct cli_client *c, int argc,
                       char **argv, const char *what, const char **id)
{
    memset(c, 0, sizeof *c);
    *id = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_client_flag(cmd, c, argc, argv, &i);
        if (r < 0) return -r;
        if (r) continue;
        if (argv[i][0] == '-' || *id)
            return cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        *id = argv[i];
    }
    if (!*id) return cli_usage_error(cmd, "missing %s", what);
    return 0;
}
