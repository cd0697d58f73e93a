/* crm_json: see json.h. */
#include "json.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- UTF-8 */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not valid. */
static size_t utf8_seq(const unsigned char *s, size_t avail) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; min = 0x10000; }
    else return 0;
    if (avail < n) return 0;
    unsigned cp = c & (0xFF >> (n + 1));
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

static size_t utf8_put(char *out, unsigned cp) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t utf8_clean(char *out, size_t cap, const char *s, size_t len) {
    size_t o = 0, i = 0;
    if (cap == 0) return 0;
    while (i < len) {
        size_t n = utf8_seq((const unsigned char *)s + i, len - i);
        if (n == 0) {
            if (o + 1 >= cap) break;
            out[o++] = '?';
            i++;
            continue;
        }
        if (o + n >= cap) break;
        memcpy(out + o, s + i, n);
        o += n;
        i += n;
    }
    out[o] = 0;
    return o;
}

/* ---------------------------------------------------------------- reader */

typedef struct {
    const char *p;
    const char *end;
    const char *err;
    int depth;
} reader;

static void skip_ws(reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static json *fail(reader *r, const char *msg) {
    if (!r->err) r->err = msg;
    return NULL;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* Reads a string at r->p (which is at the opening quote) into a new NUL-terminated buffer. */
static char *read_string(reader *r, size_t *out_len) {
    r->p++; /* opening quote */
    /* The decoded text is never longer than the source. */
    const char *start = r->p;
    size_t cap = 1;
    while (r->p < r->end && *r->p != '"') {
        if (*r->p == '\\' && r->p + 1 < r->end) r->p++;
        r->p++;
        cap++;
    }
    if (r->p >= r->end) { fail(r, "unterminated string"); return NULL; }
    r->p = start;
    char *buf = malloc(cap + 1);
    if (!buf) { fail(r, "out of memory"); return NULL; }
    size_t o = 0;
    for (;;) {
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') { r->p++; break; }
        if (c < 0x20) { free(buf); fail(r, "control character in string"); return NULL; }
        if (c == '\\') {
            char e = r->p[1];
            r->p += 2;
            switch (e) {
            case '"': buf[o++] = '"'; break;
            case '\\': buf[o++] = '\\'; break;
            case '/': buf[o++] = '/'; break;
            case 'b': buf[o++] = '\b'; break;
            case 'f': buf[o++] = '\f'; break;
            case 'n': buf[o++] = '\n'; break;
            case 'r': buf[o++] = '\r'; break;
            case 't': buf[o++] = '\t'; break;
            case 'u': {
                unsigned cp;
                if (r->end - r->p < 4 || !hex4(r->p, &cp)) goto bad_escape;
                r->p += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' ||
                        !hex4(r->p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        goto bad_escape;
                    r->p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    goto bad_escape;
                }
                /* \uXXXX is 6 source bytes and at most 3 decoded ones; a pair is 12 and 4. */
                o += utf8_put(buf + o, cp);
                break;
            }
            default:
            bad_escape:
                free(buf);
                fail(r, "invalid escape in string");
                return NULL;
            }
            continue;
        }
        size_t n = utf8_seq((const unsigned char *)r->p, (size_t)(r->end - r->p));
        if (n == 0) { free(buf); fail(r, "invalid UTF-8 in string"); return NULL; }
        memcpy(buf + o, r->p, n);
        o += n;
        r->p += n;
    }
    buf[o] = 0;
    *out_len = o;
    return buf;
}

static json *new_value(reader *r, json_type t) {
    json *v = calloc(1, sizeof *v);
    if (!v) return fail(r, "out of memory");
    v->type = t;
    return v;
}

static json *read_value(reader *r);

static json *read_container(reader *r, int object) {
    json *v = new_value(r, object ? JSON_OBJECT : JSON_ARRAY);
    if (!v) return NULL;
    if (++r->depth > JSON_MAX_DEPTH) { json_free(v); return fail(r, "nested too deeply"); }
    r->p++; /* [ or { */
    json **tail = &v->child;
    skip_ws(r);
    char close = object ? '}' : ']';
    if (r->p < r->end && *r->p == close) { r->p++; r->depth--; return v; }
    for (;;) {
        char *key = NULL;
        size_t key_len = 0;
        skip_ws(r);
        if (object) {
            if (r->p >= r->end || *r->p != '"') { json_free(v); return fail(r, "expected a key"); }
            key = read_string(r, &key_len);
            if (!key) { json_free(v); return NULL; }
            skip_ws(r);
            if (r->p >= r->end || *r->p != ':') { free(key); json_free(v); return fail(r, "expected ':'"); }
            r->p++;
        }
        json *item = read_value(r);
        if (!item) { free(key); json_free(v); return NULL; }
        item->key = key;
        item->key_len = key_len;
        *tail = item;
        tail = &item->next;
        v->count++;
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') { r->p++; continue; }
        if (r->p < r->end && *r->p == close) { r->p++; break; }
        json_free(v);
        return fail(r, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    r->depth--;
    return v;
}

static json *read_number(reader *r) {
    const char *s = r->p;
    if (r->p < r->end && *r->p == '-') r->p++;
    if (r->p < r->end && *r->p == '0') r->p++;
    else if (r->p < r->end && *r->p >= '1' && *r->p <= '9')
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') r->p++;
    else return fail(r, "invalid number");
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (r->p >= r->end || *r->p < '0' || *r->p > '9') return fail(r, "invalid number");
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') r->p++;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-')) r->p++;
        if (r->p >= r->end || *r->p < '0' || *r->p > '9') return fail(r, "invalid number");
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') r->p++;
    }
    json *v = new_value(r, JSON_NUMBER);
    if (!v) return NULL;
    v->len = (size_t)(r->p - s);
    v->str = malloc(v->len + 1);
    if (!v->str) { free(v); return fail(r, "out of memory"); }
    memcpy(v->str, s, v->len);
    v->str[v->len] = 0;
    return v;
}

static int literal(reader *r, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) return 0;
    r->p += n;
    return 1;
}

static json *read_value(reader *r) {
    skip_ws(r);
    if (r->p >= r->end) return fail(r, "unexpected end of input");
    switch (*r->p) {
    case '{': return read_container(r, 1);
    case '[': return read_container(r, 0);
    case '"': {
        json *v = new_value(r, JSON_STRING);
        if (!v) return NULL;
        v->str = read_string(r, &v->len);
        if (!v->str) { free(v); return NULL; }
        return v;
    }
    case 't':
    case 'f': {
        json *v = new_value(r, JSON_BOOL);
        if (!v) return NULL;
        if (literal(r, "true")) v->boolean = 1;
        else if (!literal(r, "false")) { free(v); return fail(r, "invalid literal"); }
        return v;
    }
    case 'n':
        if (!literal(r, "null")) return fail(r, "invalid literal");
        return new_value(r, JSON_NULL);
    default:
        return read_number(r);
    }
}

json *json_parse(const char *text, size_t len, const char **err) {
    reader r = {text, text + len, NULL, 0};
    /* Tolerate a UTF-8 byte order mark. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) r.p += 3;
    json *v = read_value(&r);
    if (v) {
        skip_ws(&r);
        if (r.p != r.end) {
            json_free(v);
            v = fail(&r, "trailing characters after the value");
        }
    }
    if (err) *err = v ? NULL : (r.err ? r.err : "invalid JSON");
    return v;
}

void json_free(json *v) {
    while (v) {
        json *next = v->next;
        json_free(v->child);
        free(v->key);
        free(v->str);
        free(v);
        v = next;
    }
}

json *json_get(const json *o, const char *key) {
    if (!o || o->type != JSON_OBJECT) return NULL;
    size_t n = strlen(key);
    json *found = NULL;
    /* The last duplicate wins, as in most parsers. */
    for (json *c = o->child; c; c = c->next)
        if (c->key_len == n && memcmp(c->key, key, n) == 0) found = c;
    return found;
}

json *json_at(const json *a, size_t i) {
    if (!a || a->type != JSON_ARRAY) return NULL;
    json *c = a->child;
    while (c && i--) c = c->next;
    return c;
}

const char *json_string(const json *v) {
    return v && v->type == JSON_STRING ? v->str : NULL;
}

int json_is(const json *v, json_type t) { return v && v->type == t; }

const char *json_get_string(const json *o, const char *key) {
    return json_string(json_get(o, key));
}

/* ---------------------------------------------------------------- writer */

void jb_init(jbuf *b) { memset(b, 0, sizeof *b); }

void jb_free(jbuf *b) {
    free(b->data);
    jb_init(b);
}

char *jb_take(jbuf *b, size_t *len) {
    if (!b->data) jb_raw(b, "", 0);
    char *d = b->data;
    if (len) *len = b->len;
    jb_init(b);
    return d;
}

static int reserve(jbuf *b, size_t extra) {
    if (b->oom) return 0;
    if (b->len + extra + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) { b->oom = 1; return 0; }
    b->data = d;
    b->cap = cap;
    return 1;
}

void jb_raw(jbuf *b, const char *s, size_t n) {
    if (!reserve(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void jb_cat(jbuf *b, const char *s) { jb_raw(b, s, strlen(s)); }

void jb_str(jbuf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    jb_raw(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t k = utf8_seq((const unsigned char *)s + i, n - i);
            if (k == 0) { jb_raw(b, "\xEF\xBF\xBD", 3); i++; }
            else { jb_raw(b, s + i, k); i += k; }
            continue;
        }
        switch (c) {
        case '"': jb_raw(b, "\\\"", 2); break;
        case '\\': jb_raw(b, "\\\\", 2); break;
        case '\n': jb_raw(b, "\\n", 2); break;
        case '\r': jb_raw(b, "\\r", 2); break;
        case '\t': jb_raw(b, "\\t", 2); break;
        case '\b': jb_raw(b, "\\b", 2); break;
        case '\f': jb_raw(b, "\\f", 2); break;
        default:
            if (c < 0x20 || c == 0x7F) {
                char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                jb_raw(b, u, 6);
            } else {
                jb_raw(b, (const char *)&c, 1);
            }
        }
        i++;
    }
    jb_raw(b, "\"", 1);
}

void jb_cstr(jbuf *b, const char *s) {
    if (s) jb_str(b, s, strlen(s));
    else jb_raw(b, "null", 4);
}

void jb_int(jbuf *b, long long n) {
    /* By hand rather than snprintf: stdio would pull WASI imports into the module. */
    char tmp[24];
    size_t k = sizeof tmp;
    unsigned long long u = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    do {
        tmp[--k] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (n < 0) tmp[--k] = '-';
    jb_raw(b, tmp + k, sizeof tmp - k);
}

void jb_value(jbuf *b, const json *v) {
    if (!v) { jb_raw(b, "null", 4); return; }
    switch (v->type) {
    case JSON_NULL: jb_raw(b, "null", 4); break;
    case JSON_BOOL: jb_cat(b, v->boolean ? "true" : "false"); break;
    case JSON_NUMBER: jb_raw(b, v->str, v->len); break;
    case JSON_STRING: jb_str(b, v->str, v->len); break;
    case JSON_ARRAY:
    case JSON_OBJECT: {
        int obj = v->type == JSON_OBJECT;
        jb_raw(b, obj ? "{" : "[", 1);
        for (json *c = v->child; c; c = c->next) {
            if (c != v->child) jb_raw(b, ",", 1);
            if (obj) {
                jb_str(b, c->key, c->key_len);
                jb_raw(b, ":", 1);
            }
            jb_value(b, c);
        }
        jb_raw(b, obj ? "}" : "]", 1);
        break;
    }
    }
}
