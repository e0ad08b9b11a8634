/*
 * lex.c — the Cedar lexer: turns policy text into tokens with 1-based
 * line/column positions (columns count bytes), skipping whitespace and
 * `//` comments, and decodes string literals and `like` patterns.
 *
 * Invariants: the lexer never reads past lx->end; string tokens point into
 * the source (escapes are decoded later by lex_unescape, so the parser can
 * tell a pattern `\*` from a plain string).
 */
#include "internal.h"

#include <string.h>

void lex_init(struct lexer *lx, const char *src, size_t len, int line, int col)
{
    lx->src = lx->p = src;
    lx->end = src + len;
    lx->line = line > 0 ? line : 1;
    lx->line_start = src;
    lx->line0 = lx->line;
    lx->col0 = col > 0 ? col : 1;
}

static int column(const struct lexer *lx, const char *at)
{
    int c = (int)(at - lx->line_start) + 1;
    if (lx->line == lx->line0) c += lx->col0 - 1;
    return c;
}

static bool ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool ident_char(unsigned char c)
{
    return ident_start(c) || (c >= '0' && c <= '9');
}

/* Punctuation, longest first. */
static const struct {
    const char *text;
    int kind;
} puncts[] = {
    {"::", TK_COLONCOLON}, {"==", TK_EQEQ}, {"!=", TK_NE},     {"<=", TK_LE},
    {">=", TK_GE},         {"&&", TK_ANDAND}, {"||", TK_OROR}, {"(", TK_LPAREN},
    {")", TK_RPAREN},      {"[", TK_LBRACKET}, {"]", TK_RBRACKET}, {"{", TK_LBRACE},
    {"}", TK_RBRACE},      {",", TK_COMMA},  {";", TK_SEMI},   {".", TK_DOT},
    {":", TK_COLON},       {"@", TK_AT},     {"?", TK_QUESTION}, {"<", TK_LT},
    {">", TK_GT},          {"!", TK_BANG},   {"+", TK_PLUS},   {"-", TK_MINUS},
    {"*", TK_STAR},        {"/", TK_SLASH},  {"%", TK_PERCENT}, {"=", TK_EQ},
    {"|", TK_PIPE},        {"&", TK_AMP},
};

static const char *const tok_names[] = {
    [TK_EOF] = "end of input", [TK_IDENT] = "identifier", [TK_STRING] = "string",
    [TK_INT] = "integer",      [TK_LPAREN] = "'('",       [TK_RPAREN] = "')'",
    [TK_LBRACKET] = "'['",     [TK_RBRACKET] = "']'",     [TK_LBRACE] = "'{'",
    [TK_RBRACE] = "'}'",       [TK_COMMA] = "','",        [TK_SEMI] = "';'",
    [TK_DOT] = "'.'",          [TK_COLON] = "':'",        [TK_COLONCOLON] = "'::'",
    [TK_AT] = "'@'",           [TK_QUESTION] = "'?'",     [TK_EQEQ] = "'=='",
    [TK_NE] = "'!='",          [TK_LT] = "'<'",           [TK_LE] = "'<='",
    [TK_GT] = "'>'",           [TK_GE] = "'>='",          [TK_ANDAND] = "'&&'",
    [TK_OROR] = "'||'",        [TK_BANG] = "'!'",         [TK_PLUS] = "'+'",
    [TK_MINUS] = "'-'",        [TK_STAR] = "'*'",         [TK_SLASH] = "'/'",
    [TK_PERCENT] = "'%'",      [TK_EQ] = "'='",           [TK_PIPE] = "'|'",
    [TK_AMP] = "'&'",          [TK_ERROR] = "invalid token",
};

const char *lex_tok_name(int kind)
{
    if (kind < 0 || (size_t)kind >= KEEL_ARRAY_LEN(tok_names) || !tok_names[kind]) return "token";
    return tok_names[kind];
}

static void skip_space(struct lexer *lx)
{
    while (lx->p < lx->end) {
        char c = *lx->p;
        if (c == '\n') {
            lx->p++;
            lx->line++;
            lx->line_start = lx->p;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            lx->p++;
        } else if (c == '/' && lx->p + 1 < lx->end && lx->p[1] == '/') {
            while (lx->p < lx->end && *lx->p != '\n') lx->p++;
        } else {
            break;
        }
    }
}

static void error_tok(struct tok *t, const char *msg)
{
    t->kind = TK_ERROR;
    t->start = msg;
    t->len = (uint32_t)strlen(msg);
}

void lex_next(struct lexer *lx, struct tok *t)
{
    skip_space(lx);
    memset(t, 0, sizeof *t);
    t->line = lx->line;
    t->column = column(lx, lx->p);
    if (lx->p >= lx->end) {
        t->kind = TK_EOF;
        t->start = lx->p;
        return;
    }
    const char *s = lx->p;
    unsigned char c = (unsigned char)*s;
    if (ident_start(c)) {
        while (lx->p < lx->end && ident_char((unsigned char)*lx->p)) lx->p++;
        t->kind = TK_IDENT;
        t->start = s;
        t->len = (uint32_t)(lx->p - s);
        return;
    }
    if (c >= '0' && c <= '9') {
        uint64_t v = 0;
        while (lx->p < lx->end && *lx->p >= '0' && *lx->p <= '9') {
            unsigned d = (unsigned)(*lx->p - '0');
            if (v > (UINT64_MAX - d) / 10) t->overflow = true;
            else v = v * 10 + d;
            lx->p++;
        }
        t->kind = TK_INT;
        t->start = s;
        t->len = (uint32_t)(lx->p - s);
        t->num = v;
        if (lx->p < lx->end && ident_char((unsigned char)*lx->p)) {
            error_tok(t, "a number must not run into a name; add a space or remove the letters");
        }
        return;
    }
    if (c == '"') {
        lx->p++;
        const char *body = lx->p;
        while (lx->p < lx->end && *lx->p != '"') {
            if (*lx->p == '\\' && lx->p + 1 < lx->end) lx->p++;
            if (*lx->p == '\n') {
                lx->line++;
                lx->line_start = lx->p + 1;
            }
            lx->p++;
        }
        if (lx->p >= lx->end) {
            error_tok(t, "unterminated string; add the closing '\"'");
            return;
        }
        t->kind = TK_STRING;
        t->start = body;
        t->len = (uint32_t)(lx->p - body);
        lx->p++;
        return;
    }
    for (size_t i = 0; i < KEEL_ARRAY_LEN(puncts); i++) {
        size_t n = strlen(puncts[i].text);
        if ((size_t)(lx->end - s) >= n && !memcmp(s, puncts[i].text, n)) {
            lx->p += n;
            t->kind = puncts[i].kind;
            t->start = s;
            t->len = (uint32_t)n;
            return;
        }
    }
    lx->p++;
    error_tok(t, "unexpected character");
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int lex_unescape(struct arena *a, const char *s, size_t len, bool pattern, char **out,
                 uint32_t *out_len, int16_t **pat, uint32_t *pat_len, const char **why)
{
    /* Decoded text is never longer than the source (\u{...} is >= 4 bytes
     * of source for <= 4 bytes of UTF-8). */
    char *o = arena_alloc(a, len + 1);
    int16_t *p = pattern ? arena_alloc(a, (len + 1) * sizeof *p) : NULL;
    size_t n = 0, pn = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '*' && pattern) {
            p[pn++] = POLICY_PAT_STAR;
            continue;
        }
        if (c != '\\') {
            o[n++] = c;
            if (pattern) p[pn++] = (int16_t)(unsigned char)c;
            continue;
        }
        if (++i >= len) {
            *why = "a string ends with a lone backslash";
            return -1;
        }
        char e = s[i];
        char buf[4];
        size_t bl = 1;
        switch (e) {
        case 'n': buf[0] = '\n'; break;
        case 'r': buf[0] = '\r'; break;
        case 't': buf[0] = '\t'; break;
        case '0': buf[0] = '\0'; break;
        case '\\': buf[0] = '\\'; break;
        case '\'': buf[0] = '\''; break;
        case '"': buf[0] = '"'; break;
        case '*':
            if (!pattern) {
                *why = "`\\*` is only valid in a `like` pattern";
                return -1;
            }
            buf[0] = '*';
            break;
        case 'x': {
            int h1 = i + 1 < len ? hexval(s[i + 1]) : -1;
            int h2 = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (h1 < 0 || h2 < 0 || h1 > 7) {
                *why = "bad \\x escape; use \\x00 to \\x7F";
                return -1;
            }
            buf[0] = (char)(h1 * 16 + h2);
            i += 2;
            break;
        }
        case 'u': {
            if (i + 1 >= len || s[i + 1] != '{') {
                *why = "bad \\u escape; write \\u{XXXX}";
                return -1;
            }
            uint32_t cp = 0;
            size_t j = i + 2, digits = 0;
            while (j < len && s[j] != '}') {
                int h = hexval(s[j]);
                if (h < 0 || ++digits > 6) {
                    *why = "bad \\u escape; write 1 to 6 hex digits in \\u{...}";
                    return -1;
                }
                cp = cp * 16 + (uint32_t)h;
                j++;
            }
            if (j >= len || digits == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
                *why = "bad \\u escape; write a Unicode scalar value as \\u{XXXX}";
                return -1;
            }
            bl = put_utf8(buf, cp);
            i = j;
            break;
        }
        default: *why = "unknown escape sequence in string"; return -1;
        }
        memcpy(o + n, buf, bl);
        n += bl;
        if (pattern)
            for (size_t k = 0; k < bl; k++) p[pn++] = (int16_t)(unsigned char)buf[k];
    }
    o[n] = '\0';
    *out = o;
    *out_len = (uint32_t)n;
    if (pattern) {
        *pat = p;
        *pat_len = (uint32_t)pn;
    }
    return 0;
}
