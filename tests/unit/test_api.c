/*
 * test_api.c — the HTTP API: the route table and matcher, error statuses,
 * listen addresses, and a live server (engine on a temporary data folder,
 * MHD on a free loopback port) spoken to over a plain socket: auth, JSON
 * error shapes, the body size limit, unknown routes and methods.
 */
#include "api/api.h"
#include "api/internal.h"
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TEST(status_table)
{
    CHECK_INT(api_status_for(KEEL_EINVAL), 400);
    CHECK_INT(api_status_for(KEEL_ESCHEMA), 400);
    CHECK_INT(api_status_for(KEEL_EAUTH), 401);
    CHECK_INT(api_status_for(KEEL_EDENIED), 403);
    CHECK_INT(api_status_for(KEEL_ENOENT), 404);
    CHECK_INT(api_status_for(KEEL_ESTATE), 409);
    CHECK_INT(api_status_for(KEEL_ELIMIT), 413);
    CHECK_INT(api_status_for(KEEL_EINTERNAL), 500);
    CHECK_INT(api_status_for(-999), 500);
}

TEST(listen_addresses)
{
    char host[64];
    int port = -1;
    CHECK_INT(api_parse_listen("127.0.0.1:7401", host, sizeof host, &port, NULL), 0);
    CHECK_STR(host, "127.0.0.1");
    CHECK_INT(port, 7401);
    CHECK_INT(api_parse_listen(":0", host, sizeof host, &port, NULL), 0);
    CHECK_STR(host, "127.0.0.1");
    CHECK_INT(port, 0);
    CHECK_INT(api_parse_listen("8080", host, sizeof host, &port, NULL), 0);
    CHECK_INT(port, 8080);
    struct keel_err err;
    keel_err_clear(&err);
    CHECK_INT(api_parse_listen("127.0.0.1:70000", host, sizeof host, &port, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "port 0-65535");
    CHECK_INT(api_parse_listen("localhost:80", host, sizeof host, &port, &err), KEEL_EINVAL);
    CHECK_INT(api_parse_listen("1.2.3.4:", host, sizeof host, &port, &err), KEEL_EINVAL);
}

TEST(route_matching)
{
    struct api_request rq;
    bool known;
    memset(&rq, 0, sizeof rq);
    const struct api_route *r = api_route_match("GET", "/v1/runs/run_01abc/events", &rq, &known);
    REQUIRE(r);
    CHECK(r->handler == api_events_list);
    CHECK_INT(rq.nparams, 1);
    CHECK_STR(rq.params[0], "run_01abc");
    r = api_route_match("GET", "/v1/runs/", &rq, &known);
    CHECK(r && r->handler == api_runs_list);
    r = api_route_match("DELETE", "/v1/runs", &rq, &known);
    CHECK(!r && known);
    r = api_route_match("GET", "/v1/runs/a%2Fb", &rq, &known);
    CHECK(!r && !known);
    r = api_route_match("GET", "/v1/runs/a/b/c", &rq, &known);
    CHECK(!r);
    char longid[300];
    memset(longid, 'x', sizeof longid);
    memcpy(longid, "/v1/runs/", 9);
    longid[sizeof longid - 1] = '\0';
    CHECK(!api_route_match("GET", longid, &rq, &known));
    /* Every row is reachable by its own pattern. */
    for (size_t i = 0; i < api_route_count; i++) {
        char path[256];
        const char *p = api_routes[i].pattern;
        size_t n = 0;
        while (*p && n < sizeof path - 8) {
            if (*p == '{') {
                memcpy(path + n, "id1", 3);
                n += 3;
                p = strchr(p, '}') + 1;
            } else {
                path[n++] = *p++;
            }
        }
        path[n] = '\0';
        CHECK(api_route_match(api_routes[i].method, path, &rq, &known) == &api_routes[i]);
    }
}

/* ---- live server -------------------------------------------------------- */

struct reply {
    int status;
    char body[8192];
};

static int http(int port, const char *method, const char *path, const char *token,
                const char *body, size_t body_len, size_t claim_len, struct reply *out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s%s%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, token ? "Authorization: Bearer " : "", token ? token : "",
                     token ? "\r\n" : "", claim_len ? claim_len : body_len);
    if (write(fd, head, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    if (body_len && write(fd, body, body_len) < 0) { /* may be cut short by a 413 */
    }
    char buf[16384];
    size_t len = 0;
    ssize_t k;
    while (len < sizeof buf - 1 && (k = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)k;
    buf[len] = '\0';
    close(fd);
    out->status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &out->status);
    const char *b = strstr(buf, "\r\n\r\n");
    snprintf(out->body, sizeof out->body, "%s", b ? b + 4 : "");
    return 0;
}

TEST(live_server_auth_errors_limits)
{
    char tmpl[] = "/tmp/keel-api-XXXXXX";
    char *dir = mkdtemp(tmpl);
    REQUIRE(dir);
    struct keel_err err;
    keel_err_clear(&err);
    struct engine_opts eo = {.data_dir = dir, .workers = 1};
    struct engine *e;
    REQUIRE(engine_start(&eo, &e, &err) == 0);
    struct api_config ac = {.port = 0, .max_body = 4096, .max_waiters = 2};
    struct api_server *srv;
    REQUIRE(api_server_start(&ac, e, &srv, &err) == 0);
    int port = api_server_port(srv);
    CHECK(port > 0);
    char token[128];
    REQUIRE(identity_admin_token_read(dir, token, sizeof token, &err) == 0);
    struct reply r;

    REQUIRE(http(port, "GET", "/v1/health", NULL, NULL, 0, 0, &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK_CONTAINS(r.body, "\"ok\":true");

    http(port, "GET", "/v1/runs", NULL, NULL, 0, 0, &r);
    CHECK_INT(r.status, 401);
    CHECK_CONTAINS(r.body, "{\"error\":{\"code\":\"EAUTH\",\"message\":\"missing API token");
    http(port, "GET", "/v1/runs", "not-the-token", NULL, 0, 0, &r);
    CHECK_INT(r.status, 401);
    CHECK_CONTAINS(r.body, "wrong API token");

    http(port, "GET", "/v1/runs", token, NULL, 0, 0, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "{\"runs\":[]}\n");

    http(port, "GET", "/v1/runs/run_nope", token, NULL, 0, 0, &r);
    CHECK_INT(r.status, 404);
    CHECK_CONTAINS(r.body, "\"code\":\"ENOENT\"");

    http(port, "GET", "/v1/runs?limit=0", token, NULL, 0, 0, &r);
    CHECK_INT(r.status, 400);

    const char *bad = "{\"workflow\": ";
    http(port, "POST", "/v1/runs", token, bad, strlen(bad), 0, &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "request body:1:");

    const char *nowf = "{\"workflow\":\"none\"}";
    http(port, "POST", "/v1/runs", token, nowf, strlen(nowf), 0, &r);
    CHECK_INT(r.status, 404);
    CHECK_CONTAINS(r.body, "no workflow named 'none'");

    /* Declared too large: answered before the body is read. */
    http(port, "POST", "/v1/runs", token, "{}", 2, 1u << 20, &r);
    CHECK_INT(r.status, 413);
    CHECK_CONTAINS(r.body, "\"code\":\"ELIMIT\"");
    /* Actually too large (sent in full). */
    char *big = malloc(8192);
    memset(big, ' ', 8192);
    http(port, "POST", "/v1/runs", token, big, 8192, 0, &r);
    CHECK_INT(r.status, 413);
    free(big);

    http(port, "PUT", "/v1/runs", token, NULL, 0, 0, &r);
    CHECK_INT(r.status, 405);
    http(port, "GET", "/v2/whatever", token, NULL, 0, 0, &r);
    CHECK_INT(r.status, 404);

    const char *dec = "{\"decision\":\"maybe\"}";
    http(port, "POST", "/v1/approvals/apr_x/decide", token, dec, strlen(dec), 0, &r);
    CHECK_INT(r.status, 400);
    CHECK_CONTAINS(r.body, "approve");

    api_server_stop(srv);
    engine_stop(e);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}
