/*
 * cmd_schema.c — `keel schema check SCHEMA [INSTANCE...]`: validates JSON
 * instances against a JSON Schema (draft 2020-12).  Instances are files,
 * or, when none are named, one JSON document per line on standard input.
 *
 * Output: one line per instance ("NAME: valid", or "NAME: invalid" and an
 * indented line per error); with --json one object per line, the spec's
 * basic output format plus "instance": {"instance":..,"valid":..,"errors":[..]}.
 *
 * Exit codes: 0 every instance valid; 1 some instance invalid; 2 usage;
 * 3 the schema or an instance does not parse, or the schema is invalid;
 * 4 a named file does not exist.
 */
#include "cli.h"
#include "../json/json.h"
#include "../schema/schema.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DOC (256u << 20)
#define MAX_REMOTES 32

static const struct cli_command *self(void);

struct check_opts {
    bool json;
    struct schema_opts sopts;
    const char *schema_path;
    const char *remotes[MAX_REMOTES];
    int nremotes;
};

/* "file:///abs/path" for a local path, so relative $refs resolve beside it. */
static void file_uri(const char *path, char *out, size_t cap)
{
    char abs[PATH_MAX];
    if (!realpath(path, abs)) snprintf(abs, sizeof abs, "%s", path);
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "file://");
    for (const char *p = abs; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f || c == '%' || c == '#' || c == '?')
            buf_printf(&b, "%%%02X", c);
        else
            buf_putc(&b, (char)c);
    }
    snprintf(out, cap, "%s", b.data);
    buf_cleanup(&b);
}

static void print_result(const struct check_opts *o, const char *name,
                         const struct schema_result *r)
{
    if (o->json) {
        struct buf b, n;
        buf_init(&b);
        buf_init(&n);
        schema_result_write_json(r, &b);
        json_write_string(&n, name, strlen(name));
        /* Splice "instance" in front of the basic-output members. */
        printf("{\"instance\":%s,%s\n", n.data, b.data + 1);
        buf_cleanup(&b);
        buf_cleanup(&n);
        return;
    }
    if (r->valid) {
        printf("%s: valid\n", name);
        return;
    }
    printf("%s: invalid\n", name);
    for (size_t i = 0; i < r->kept; i++) {
        const struct schema_error *e = &r->errors[i];
        printf("  %s: %s  [%s]\n", *e->instance_location ? e->instance_location : "(root)",
               e->message, e->keyword_location);
    }
    if (r->error_count > r->kept) printf("  ... and %zu more\n", r->error_count - r->kept);
}

static void print_bad_input(const struct check_opts *o, const char *name,
                            const struct keel_err *err)
{
    char msg[2 * KEEL_ERR_MSG_MAX];
    keel_err_format(err, msg, sizeof msg);
    if (o->json) {
        struct buf b;
        buf_init(&b);
        buf_puts(&b, "{\"instance\":");
        json_write_string(&b, name, strlen(name));
        buf_puts(&b, ",\"valid\":false,\"parseError\":");
        json_write_string(&b, msg, strlen(msg));
        buf_putc(&b, '}');
        printf("%s\n", b.data);
        buf_cleanup(&b);
    }
    if (err->file[0]) fprintf(stderr, "keel schema: %s\n", msg);
    else fprintf(stderr, "keel schema: %s: %s\n", name, msg);
}

/* Validates one JSON text; returns the exit code it contributes. */
static int check_text(const struct check_opts *o, const struct schema *s, const char *name,
                      const char *text, size_t len, struct schema_result *r)
{
    struct arena a;
    arena_init(&a);
    struct json_value *v;
    struct keel_err err;
    keel_err_clear(&err);
    struct json_parse_opts po = {.file = name};
    int code;
    if (json_parse(&a, text, len, &po, &v, &err) < 0) {
        print_bad_input(o, name, &err);
        code = CLI_BADINPUT;
    } else {
        code = schema_validate(s, v, r) ? CLI_OK : CLI_NO;
        print_result(o, name, r);
    }
    arena_cleanup(&a);
    return code;
}

/* Keeps the most serious outcome: bad input > not found > invalid > ok. */
static int worse(int a, int b)
{
    static const int rank[] = {[CLI_OK] = 0, [CLI_NO] = 1, [CLI_NOTFOUND] = 2, [CLI_BADINPUT] = 3};
    return rank[b] > rank[a] ? b : a;
}

static int check_main(const struct check_opts *o, char **instances, int ninst)
{
    struct keel_err err;
    keel_err_clear(&err);
    struct buf text;
    buf_init(&text);
    if (keel_read_file(o->schema_path, MAX_DOC, &text, &err) < 0) {
        buf_cleanup(&text);
        return cli_error("schema", &err);
    }
    struct arena a;
    arena_init(&a);
    struct json_value *doc;
    struct json_parse_opts po = {.file = o->schema_path};
    struct schema_registry *reg = schema_registry_new();
    struct schema *s = NULL;
    int rc = reg ? 0 : keel_fail(&err, KEEL_ENOMEM, "out of memory");
    if (rc == 0) rc = json_parse(&a, text.data ? text.data : "", text.len, &po, &doc, &err);
    buf_cleanup(&text);
    for (int i = 0; rc == 0 && i < o->nremotes; i++) {
        const char *eq = strchr(o->remotes[i], '=');
        char prefix[2048];
        snprintf(prefix, sizeof prefix, "%.*s", (int)(eq - o->remotes[i]), o->remotes[i]);
        rc = schema_registry_add_dir(reg, prefix, eq + 1, &err);
    }
    if (rc == 0) {
        char base[PATH_MAX + 64];
        file_uri(o->schema_path, base, sizeof base);
        rc = schema_compile(reg, doc, base, &o->sopts, &s, &err);
        if (rc < 0 && !err.file[0])
            snprintf(err.file, sizeof err.file, "%s", o->schema_path);
    }
    if (rc < 0) {
        int code = cli_error("schema", &err);
        schema_registry_free(reg);
        arena_cleanup(&a);
        return code == CLI_NOTFOUND ? CLI_BADINPUT : code;
    }
    struct schema_result r;
    schema_result_init(&r);
    int code = CLI_OK;
    if (ninst > 0) {
        for (int i = 0; i < ninst; i++) {
            struct buf b;
            buf_init(&b);
            if (keel_read_file(instances[i], MAX_DOC, &b, &err) < 0) {
                print_bad_input(o, instances[i], &err);
                code = worse(code, err.code == KEEL_ENOENT ? CLI_NOTFOUND : CLI_BADINPUT);
            } else {
                code = worse(code, check_text(o, s, instances[i], b.data ? b.data : "", b.len, &r));
            }
            buf_cleanup(&b);
        }
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        long lineno = 0;
        while ((n = getline(&line, &cap, stdin)) >= 0) {
            lineno++;
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
            size_t k = 0;
            while (k < (size_t)n && (line[k] == ' ' || line[k] == '\t')) k++;
            if (k == (size_t)n) continue; /* blank lines separate nothing */
            char name[64];
            snprintf(name, sizeof name, "stdin:%ld", lineno);
            if ((size_t)n > MAX_DOC) {
                keel_fail(&err, KEEL_ELIMIT, "line longer than %u bytes", MAX_DOC);
                print_bad_input(o, name, &err);
                code = worse(code, CLI_BADINPUT);
                continue;
            }
            code = worse(code, check_text(o, s, name, line, (size_t)n, &r));
        }
        free(line);
    }
    schema_result_cleanup(&r);
    schema_free(s);
    schema_registry_free(reg);
    arena_cleanup(&a);
    return code;
}

static int run_check(int argc, char **argv)
{
    struct check_opts o = {0};
    char **inst = calloc((size_t)argc + 1, sizeof *inst);
    if (!inst) return CLI_INTERNAL;
    int ninst = 0, rc = -1;
    bool opts_done = false;
    for (int i = 1; i < argc && rc < 0; i++) {
        const char *a = argv[i];
        if (!opts_done && !strcmp(a, "--")) {
            opts_done = true;
        } else if (!opts_done && !strcmp(a, "--json")) {
            o.json = true;
        } else if (!opts_done && !strcmp(a, "--format-assert")) {
            o.sopts.format_assert = true;
        } else if (!opts_done && !strcmp(a, "--content-assert")) {
            o.sopts.content_assert = true;
        } else if (!opts_done && !strcmp(a, "--no-meta-check")) {
            o.sopts.no_meta_check = true;
        } else if (!opts_done && (!strcmp(a, "--remote") || !strncmp(a, "--remote=", 9))) {
            const char *v = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v || !strchr(v, '=') || *v == '=')
                rc = cli_usage_error(self(), "--remote needs URI_PREFIX=DIR");
            else if (o.nremotes == MAX_REMOTES)
                rc = cli_usage_error(self(), "at most %d --remote options", MAX_REMOTES);
            else
                o.remotes[o.nremotes++] = v;
        } else if (!opts_done && a[0] == '-' && a[1]) {
            rc = cli_usage_error(self(), "unknown option '%s'", a);
        } else if (!o.schema_path) {
            o.schema_path = a;
        } else {
            inst[ninst++] = argv[i];
        }
    }
    if (rc < 0 && !o.schema_path) rc = cli_usage_error(self(), "schema check needs a SCHEMA file");
    if (rc < 0) rc = check_main(&o, inst, ninst);
    free(inst);
    return rc;
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} subcommands[] = {
    {"check", run_check},
};

static int run(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(self()->usage, stdout);
        return CLI_OK;
    }
    if (argc < 2) return cli_usage_error(self(), "missing subcommand (check)");
    for (size_t i = 0; i < KEEL_ARRAY_LEN(subcommands); i++)
        if (!strcmp(argv[1], subcommands[i].name)) return subcommands[i].run(argc - 1, argv + 1);
    return cli_usage_error(self(), "unknown subcommand '%s' (check)", argv[1]);
}

const struct cli_command cmd_schema = {
    .name = "schema",
    .summary = "validate JSON documents against a JSON Schema (draft 2020-12)",
    .usage =
        "usage: keel schema check SCHEMA [INSTANCE...] [options]\n"
        "\n"
        "Validates each INSTANCE file against the JSON Schema in SCHEMA (draft 2020-12).\n"
        "With no INSTANCE, reads one JSON document per line from standard input.\n"
        "\n"
        "options:\n"
        "  --json                one result object per instance: {\"instance\", \"valid\",\n"
        "                        \"errors\": [basic output units]}\n"
        "  --remote PREFIX=DIR   resolve $ref URIs starting with PREFIX to files under DIR\n"
        "                        (repeatable; nothing is fetched from the network)\n"
        "  --format-assert       make `format` an assertion (default: annotation only)\n"
        "  --content-assert      check contentEncoding (base64) and contentMediaType\n"
        "                        (application/json)\n"
        "  --no-meta-check       do not validate SCHEMA against the 2020-12 metaschema\n"
        "\n"
        "exit status: 0 all valid, 1 some instance invalid, 2 usage error,\n"
        "3 the schema or an instance does not parse (or the schema is invalid),\n"
        "4 an instance file does not exist.\n"
        "\n"
        "example:\n"
        "  keel schema check tool.schema.json args.json\n"
        "  printf '{\"a\":1}\\n{\"a\":\"x\"}\\n' | keel schema check tool.schema.json --json\n",
    .run = run,
};

static const struct cli_command *self(void)
{
    return &cmd_schema;
}
