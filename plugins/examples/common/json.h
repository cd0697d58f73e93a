/*
 * crm_json: a compact JSON reader and writer for TC CRM plugins written in C.
 *
 * - The reader builds a small tree (malloc'd) from UTF-8 text. Strings are decoded
 *   (escapes, \uXXXX and surrogate pairs) to NUL-terminated UTF-8; invalid UTF-8 in the
 *   input is an error, so everything you read can go back to the host unchanged.
 *   Numbers are kept as the text they were written as (`str`).
 * - The writer appends to a growable buffer and escapes strings (`"`, `\`, control
 *   characters); invalid UTF-8 handed to it becomes U+FFFD, so its output is always valid
 *   UTF-8 and valid JSON (WIT strings must be valid UTF-8 or the host traps the call).
 *
 * No third-party code; no global state. Depth is limited to JSON_MAX_DEPTH.
 */
#ifndef CRM_JSON_H
#define CRM_JSON_H

#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64

typedef enum {
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} json_type;

typedef struct json json;
struct json {
    json_type type;
    /* The member's key when this value sits in an object (decoded, NUL-terminated). */
    char *key;
    size_t key_len;
    /* JSON_STRING: decoded text; JSON_NUMBER: the number as written. NUL-terminated. */
    char *str;
    size_t len;
    int boolean;
    /* JSON_ARRAY / JSON_OBJECT: first child, number of children. */
    json *child;
    size_t count;
    json *next;
};

/* Parses `len` bytes. Returns NULL on error (or out of memory) and, if `err` is not NULL,
 * points it at a static description. Free the result with json_free. */
json *json_parse(const char *text, size_t len, const char **err);
void json_free(json *value);

/* Lookups; all accept NULL and return NULL when absent or of another type. */
json *json_get(const json *object, const char *key);      /* object member */
json *json_at(const json *array, size_t index);           /* array element */
const char *json_string(const json *value);               /* string value or NULL */
int json_is(const json *value, json_type type);
/* Shorthand: the string member `key` of `object`, or NULL. */
const char *json_get_string(const json *object, const char *key);

/* ---- writer ---- */

typedef struct {
    char *data;
    size_t len;
    size_t cap;
    int oom; /* set when an allocation failed; the buffer then stays as it was */
} jbuf;

void jb_init(jbuf *b);
void jb_free(jbuf *b);
/* Hands the bytes over (NUL-terminated; the caller frees); the buffer is reset. */
char *jb_take(jbuf *b, size_t *len);
void jb_raw(jbuf *b, const char *bytes, size_t len);   /* as is */
void jb_cat(jbuf *b, const char *text);                /* as is, NUL-terminated */
void jb_str(jbuf *b, const char *s, size_t len);       /* as a quoted JSON string */
void jb_cstr(jbuf *b, const char *s);                  /* quoted; NULL writes null */
void jb_int(jbuf *b, long long n);
void jb_value(jbuf *b, const json *value);             /* re-serialises a parsed value */

/* Copies `len` bytes to `out` (cap bytes incl. NUL) replacing invalid UTF-8 with '?',
 * cutting on a character boundary. For log lines built from untrusted text. */
size_t utf8_clean(char *out, size_t cap, const char *s, size_t len);

#endif
