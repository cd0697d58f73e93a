/*
 * crm_sdk.h: small conveniences over the wit-bindgen C bindings of `crm:plugin`
 * (plugins/sdk/c/v1.0/plugin.h or v1.1/plugin.h; include one of them first).
 *
 * Ownership rules of the generated bindings, in one place:
 *  - Arguments your exports receive (event, request) are yours: free them when done
 *    (`exports_crm_plugin_handler_event_free`, `..._request_free`).
 *  - What your exports return (manifest, actions, response, plugin-error) must be heap
 *    memory (`crm_dup`, `malloc`): the bindings free it after the host has copied it.
 *    Empty strings/lists (len 0) are never freed, so `{0}` is fine for them.
 *  - Arguments you pass to imports are borrowed (`crm_str` of a literal or your buffer).
 *  - What imports return (ok strings, lists, plugin-errors) is yours to free.
 *
 * Header-only; every function is `static inline`, so only what you use is linked.
 */
#ifndef CRM_SDK_H
#define CRM_SDK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef __BINDINGS_PLUGIN_H
#error "include the generated plugin.h before crm_sdk.h"
#endif

/* A borrowed view of a NUL-terminated string (for import arguments). */
static inline plugin_string_t crm_str(const char *s) {
    plugin_string_t r = {(uint8_t *)s, strlen(s)};
    return r;
}

/* A borrowed view of `len` bytes. */
static inline plugin_string_t crm_strn(const char *s, size_t len) {
    plugin_string_t r = {(uint8_t *)s, len};
    return r;
}

/* An owned copy (for anything an export returns). */
static inline plugin_string_t crm_dup(const char *s) {
    plugin_string_t r = {0};
    if (s && *s) plugin_string_dup(&r, s);
    return r;
}

static inline plugin_string_t crm_dupn(const char *s, size_t len) {
    plugin_string_t r = {0};
    if (len) plugin_string_dup_n(&r, s, len);
    return r;
}

/* A NUL-terminated malloc'd copy of a component string (free it). */
static inline char *crm_cstr(const plugin_string_t *s) {
    char *r = malloc(s->len + 1);
    if (!r) __builtin_trap();
    memcpy(r, s->ptr, s->len);
    r[s->len] = 0;
    return r;
}

/* Whether a component string equals a C string. */
static inline int crm_eq(const plugin_string_t *s, const char *c) {
    size_t n = strlen(c);
    return s->len == n && memcmp(s->ptr, c, n) == 0;
}

/* A list of owned strings from a NULL-terminated array of literals (for the manifest). */
static inline plugin_list_string_t crm_strings(const char *const *items) {
    plugin_list_string_t l = {0};
    size_t n = 0;
    while (items[n]) n++;
    if (!n) return l;
    l.ptr = calloc(n, sizeof *l.ptr);
    if (!l.ptr) __builtin_trap();
    for (size_t i = 0; i < n; i++) l.ptr[i] = crm_dup(items[i]);
    l.len = n;
    return l;
}

/* host.log of a UTF-8 string (the host traps a call with invalid UTF-8). */
static inline void crm_logn(crm_plugin_host_level_t level, const char *s, size_t len) {
    plugin_string_t m = {(uint8_t *)s, len};
    crm_plugin_host_log(level, &m);
}

static inline void crm_log(crm_plugin_host_level_t level, const char *s) {
    crm_logn(level, s, strlen(s));
}

/* host.log with printf formatting; the message must be UTF-8. This uses stdio, which makes
 * wasi-libc import a few WASI functions, so the component then needs the WASI adapter
 * (build.sh adds it when needed); crm_log does not. */
static inline void crm_logf(crm_plugin_host_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void crm_logf(crm_plugin_host_level_t level, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) {
        /* Cut on a UTF-8 boundary. */
        n = sizeof buf - 1;
        while (n > 0 && ((unsigned char)buf[n] & 0xC0) == 0x80) n--;
    }
    plugin_string_t m = {(uint8_t *)buf, (size_t)n};
    crm_plugin_host_log(level, &m);
}

#define crm_info(...) crm_logf(CRM_PLUGIN_HOST_LEVEL_INFO, __VA_ARGS__)
#define crm_warn(...) crm_logf(CRM_PLUGIN_HOST_LEVEL_WARN, __VA_ARGS__)

/* Fills a plugin-error an export returns. Always returns false, so `return crm_fail(...)`. */
static inline bool crm_fail(crm_plugin_types_plugin_error_t *err, const char *code,
                            const char *message) {
    err->code = crm_dup(code);
    err->message = crm_dup(message);
    return false;
}

/* The value of config key `key` (JSON text, malloc'd, free it) or NULL. */
static inline char *crm_config(const char *key) {
    plugin_string_t k = crm_str(key), v;
    if (!crm_plugin_host_config_get(&k, &v)) return NULL;
    char *r = crm_cstr(&v);
    plugin_string_free(&v);
    return r;
}

/* The secret `key` (malloc'd, free it) or NULL. */
static inline char *crm_secret(const char *key) {
    plugin_string_t k = crm_str(key), v;
    if (!crm_plugin_host_secret_get(&k, &v)) return NULL;
    char *r = crm_cstr(&v);
    plugin_string_free(&v);
    return r;
}

/* kv-get as a NUL-terminated malloc'd string (free it), or NULL when absent. */
static inline char *crm_kv_get(const char *key) {
    plugin_string_t k = crm_str(key);
    plugin_list_u8_t v;
    if (!crm_plugin_host_kv_get(&k, &v)) return NULL;
    char *r = malloc(v.len + 1);
    if (!r) __builtin_trap();
    memcpy(r, v.ptr, v.len);
    r[v.len] = 0;
    plugin_list_u8_free(&v);
    return r;
}

/* kv-set of a C string; returns 1 on success, else 0 and logs the error. */
static inline int crm_kv_set(const char *key, const char *value) {
    plugin_string_t k = crm_str(key);
    plugin_list_u8_t v = {(uint8_t *)value, strlen(value)};
    crm_plugin_types_plugin_error_t err;
    if (crm_plugin_host_kv_set(&k, &v, &err)) return 1;
    char msg[128] = "kv-set failed: ";
    size_t n = strlen(msg), c = err.code.len < 100 ? err.code.len : 100;
    memcpy(msg + n, err.code.ptr, c);
    crm_logn(CRM_PLUGIN_HOST_LEVEL_WARN, msg, n + c);
    crm_plugin_types_plugin_error_free(&err);
    return 0;
}

#endif
