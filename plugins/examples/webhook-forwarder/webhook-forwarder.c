/*
 * webhook-forwarder: POSTs every subscribed record event to a URL, signed with
 * HMAC-SHA256. Config: {"url": "https://hooks.example.com/crm", "events": ["customers.*"]}
 * (`events` optional, default all); secret `signing_key` (optional; without it the
 * x-crm-signature header is left out). A non-2xx answer or no answer fails the run with
 * `webhook.failed`, and the platform retries the event.
 */
#include <stdlib.h>
#include <string.h>

#include "plugin.h"
#include "crm_sdk.h"
#include "json.h"
#include "sha256.h"

void exports_crm_plugin_handler_describe(exports_crm_plugin_handler_manifest_t *ret) {
    static const char *const events[] = {"*", NULL};
    memset(ret, 0, sizeof *ret);
    ret->name = crm_dup("webhook-forwarder");
    ret->version = crm_dup("1.0.0");
    ret->description = crm_dup("POSTs record events to a URL, signed with HMAC-SHA256");
    ret->events = crm_strings(events);
    ret->config_schema = crm_dup(
        "{\"type\":\"object\","
        "\"properties\":{\"url\":{\"type\":\"string\"},\"events\":{\"type\":\"array\"}},"
        "\"required\":[\"url\"]}");
    /* No permissions: it reads nothing but the event it is given. */
}

/* `customers.created` against `*`, `customers.*` or `customers.created`. */
static int kind_matches(const plugin_string_t *kind, const char *pattern) {
    size_t n = strlen(pattern);
    if (strcmp(pattern, "*") == 0) return 1;
    if (n >= 2 && pattern[n - 1] == '*' && pattern[n - 2] == '.')
        return kind->len >= n - 1 && memcmp(kind->ptr, pattern, n - 1) == 0;
    return crm_eq(kind, pattern);
}

/* Whether config `events` (absent = all) selects this kind. */
static int wanted(const plugin_string_t *kind) {
    char *text = crm_config("events");
    if (!text) return 1;
    json *list = json_parse(text, strlen(text), NULL);
    free(text);
    int yes = !json_is(list, JSON_ARRAY); /* not a list: forward everything */
    if (!yes)
        for (json *p = list->child; p; p = p->next)
            if (json_string(p) && kind_matches(kind, p->str)) yes = 1;
    json_free(list);
    return yes;
}

static crm_plugin_types_header_t header(const char *name, const char *value, size_t len) {
    crm_plugin_types_header_t h = {crm_str(name), crm_strn(value, len)};
    return h;
}

bool exports_crm_plugin_handler_on_event(exports_crm_plugin_handler_event_t *event,
                                         exports_crm_plugin_handler_list_action_t *ret,
                                         exports_crm_plugin_handler_plugin_error_t *err) {
    bool ok = true;
    char *url_json = NULL;
    json *url = NULL;
    jbuf body, msg;
    jb_init(&body);
    jb_init(&msg);
    memset(ret, 0, sizeof *ret);

    if (!wanted(&event->kind)) goto done;

    url_json = crm_config("url");
    url = url_json ? json_parse(url_json, strlen(url_json), NULL) : NULL;
    if (!json_string(url) || !*url->str) {
        ok = crm_fail(err, "webhook.config", "config \"url\" must be a URL string");
        goto done;
    }

    /* The body: data goes in as the JSON it is (or as a string if it were not JSON). */
    jb_cat(&body, "{\"event\":");
    jb_str(&body, (const char *)event->kind.ptr, event->kind.len);
    jb_cat(&body, ",\"record_id\":");
    jb_str(&body, (const char *)event->record_id.ptr, event->record_id.len);
    jb_cat(&body, ",\"occurred_at\":");
    jb_str(&body, (const char *)event->occurred_at.ptr, event->occurred_at.len);
    jb_cat(&body, ",\"data\":");
    json *data = json_parse((const char *)event->data.ptr, event->data.len, NULL);
    if (data) jb_raw(&body, (const char *)event->data.ptr, event->data.len);
    else if (event->data.len) jb_str(&body, (const char *)event->data.ptr, event->data.len);
    else jb_cat(&body, "null");
    json_free(data);
    jb_cat(&body, "}");
    if (body.oom) __builtin_trap();

    crm_plugin_types_header_t headers[4];
    size_t n = 0;
    headers[n++] = header("content-type", "application/json", 16);
    headers[n++] = header("x-crm-event", (const char *)event->kind.ptr, event->kind.len);
    headers[n++] = header("x-crm-event-id", (const char *)event->id.ptr, event->id.len);
    char signature[7 + 64 + 1] = "sha256=";
    char *key = crm_secret("signing_key");
    if (key) {
        uint8_t mac[32];
        hmac_sha256(key, strlen(key), body.data, body.len, mac);
        hex_encode(mac, 32, signature + 7);
        headers[n++] = header("x-crm-signature", signature, strlen(signature));
        free(key);
    } else {
        crm_log(CRM_PLUGIN_HOST_LEVEL_WARN, "secret signing_key is not set: sending unsigned");
    }

    crm_plugin_http_http_request_t req = {
        .method = crm_str("POST"),
        .url = crm_str(url->str),
        .headers = {headers, n},
        .body = {(uint8_t *)body.data, body.len},
    };
    crm_plugin_http_http_response_t resp;
    crm_plugin_http_plugin_error_t e;
    if (!crm_plugin_http_fetch(&req, &resp, &e)) {
        jb_cat(&msg, "POST ");
        jb_cat(&msg, url->str);
        jb_cat(&msg, " failed: ");
        jb_raw(&msg, (const char *)e.code.ptr, e.code.len);
        jb_cat(&msg, ": ");
        jb_raw(&msg, (const char *)e.message.ptr, e.message.len);
        crm_plugin_types_plugin_error_free(&e);
        ok = crm_fail(err, "webhook.failed", msg.data);
        goto done;
    }
    unsigned status = resp.status;
    crm_plugin_http_http_response_free(&resp);
    jb_cat(&msg, "POST ");
    jb_cat(&msg, url->str);
    jb_cat(&msg, " -> ");
    jb_int(&msg, status);
    if (status >= 200 && status < 300) {
        crm_log(CRM_PLUGIN_HOST_LEVEL_INFO, msg.data);
    } else {
        ok = crm_fail(err, "webhook.failed", msg.data);
    }

done:
    jb_free(&body);
    jb_free(&msg);
    json_free(url);
    free(url_json);
    exports_crm_plugin_handler_event_free(event);
    return ok;
}

bool exports_crm_plugin_handler_handle_request(exports_crm_plugin_handler_request_t *req,
                                               exports_crm_plugin_handler_response_t *ret,
                                               exports_crm_plugin_handler_plugin_error_t *err) {
    /* No endpoints are declared, so the host never calls this. */
    (void)ret;
    exports_crm_plugin_handler_request_free(req);
    return crm_fail(err, "webhook.no_endpoints", "this plugin serves no endpoints");
}
