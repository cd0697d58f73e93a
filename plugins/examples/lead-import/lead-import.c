/*
 * lead-import: an endpoint that creates customers from a JSON array of leads.
 *
 *   POST /api/v1/ext/{install}/leads
 *   [{"name": "张三", "phone": "13812345678", "email": "z@example.com",
 *     "company": "…", "source": "展会"}, …]            (at most 500)
 *
 * Each lead becomes records.create("customers", {"name", "phone", "email", "source"}); the
 * source defaults to "import". `company` is dropped: customers have no field for it.
 * Answers 200 {"created": n, "failed": [{"index": i, "code": …, "message": …}]},
 * 400 {"error": "body must be a JSON array"}, 422 when there are more than 500 leads.
 */
#include <stdlib.h>
#include <string.h>

#include "plugin.h"
#include "crm_sdk.h"
#include "json.h"

#define MAX_LEADS 500

void exports_crm_plugin_handler_describe(exports_crm_plugin_handler_manifest_t *ret) {
    static const char *const permissions[] = {"customers:create", NULL};
    memset(ret, 0, sizeof *ret);
    ret->name = crm_dup("lead-import");
    ret->version = crm_dup("1.0.0");
    ret->description = crm_dup("Imports leads as customers from a JSON array");
    ret->endpoints.ptr = calloc(1, sizeof *ret->endpoints.ptr);
    if (!ret->endpoints.ptr) __builtin_trap();
    ret->endpoints.len = 1;
    ret->endpoints.ptr[0].method = crm_dup("POST");
    ret->endpoints.ptr[0].path = crm_dup("leads");
    ret->endpoints.ptr[0].permission = crm_dup("customers:create");
    ret->endpoints.ptr[0].summary = crm_dup("Imports leads from a JSON array");
    ret->permissions = crm_strings(permissions);
}

bool exports_crm_plugin_handler_on_event(exports_crm_plugin_handler_event_t *event,
                                         exports_crm_plugin_handler_list_action_t *ret,
                                         exports_crm_plugin_handler_plugin_error_t *err) {
    /* It subscribes to no events. */
    (void)err;
    memset(ret, 0, sizeof *ret);
    exports_crm_plugin_handler_event_free(event);
    return true;
}

/* Sets a JSON response; takes the buffer's bytes. */
static void respond(exports_crm_plugin_handler_response_t *ret, uint16_t status, jbuf *body) {
    if (body->oom) __builtin_trap();
    ret->status = status;
    ret->headers.ptr = calloc(1, sizeof *ret->headers.ptr);
    if (!ret->headers.ptr) __builtin_trap();
    ret->headers.len = 1;
    ret->headers.ptr[0].name = crm_dup("content-type");
    ret->headers.ptr[0].value = crm_dup("application/json");
    size_t len;
    char *bytes = jb_take(body, &len);
    if (len) {
        ret->body.ptr = (uint8_t *)bytes;
        ret->body.len = len;
    } else {
        free(bytes);
    }
}

static void error_response(exports_crm_plugin_handler_response_t *ret, uint16_t status,
                           const char *message) {
    jbuf b;
    jb_init(&b);
    jb_cat(&b, "{\"error\":");
    jb_cstr(&b, message);
    jb_cat(&b, "}");
    respond(ret, status, &b);
}

/* A text field of a lead: a non-empty string, or a number (phones typed as numbers). */
static const char *text_field(const json *lead, const char *key) {
    json *v = json_get(lead, key);
    if ((json_is(v, JSON_STRING) && *v->str) || json_is(v, JSON_NUMBER)) return v->str;
    return NULL;
}

static void add_failure(jbuf *failed, size_t index, const char *code, size_t code_len,
                        const char *message, size_t message_len) {
    if (failed->len) jb_cat(failed, ",");
    jb_cat(failed, "{\"index\":");
    jb_int(failed, (long long)index);
    jb_cat(failed, ",\"code\":");
    jb_str(failed, code, code_len);
    jb_cat(failed, ",\"message\":");
    jb_str(failed, message, message_len);
    jb_cat(failed, "}");
}

static void import_leads(const json *leads, exports_crm_plugin_handler_response_t *ret) {
    size_t created = 0;
    jbuf failed, fields;
    jb_init(&failed);
    jb_init(&fields);
    plugin_string_t object = crm_str("customers");
    size_t index = 0;
    for (json *lead = leads->child; lead; lead = lead->next, index++) {
        if (!json_is(lead, JSON_OBJECT)) {
            static const char m[] = "each lead must be a JSON object";
            add_failure(&failed, index, "lead.invalid", 12, m, sizeof m - 1);
            continue;
        }
        const char *name = text_field(lead, "name");
        if (!name) {
            static const char m[] = "name is required";
            add_failure(&failed, index, "lead.invalid", 12, m, sizeof m - 1);
            continue;
        }
        const char *phone = text_field(lead, "phone");
        const char *email = text_field(lead, "email");
        const char *source = text_field(lead, "source");
        fields.len = 0;
        jb_cat(&fields, "{\"name\":");
        jb_cstr(&fields, name);
        if (phone) {
            jb_cat(&fields, ",\"phone\":");
            jb_cstr(&fields, phone);
        }
        if (email) {
            jb_cat(&fields, ",\"email\":");
            jb_cstr(&fields, email);
        }
        jb_cat(&fields, ",\"source\":");
        jb_cstr(&fields, source ? source : "import");
        jb_cat(&fields, "}");
        if (fields.oom) __builtin_trap();

        plugin_string_t body = crm_strn(fields.data, fields.len), record;
        crm_plugin_records_plugin_error_t e;
        if (crm_plugin_records_create(&object, &body, &record, &e)) {
            created++;
            plugin_string_free(&record);
        } else {
            add_failure(&failed, index, (const char *)e.code.ptr, e.code.len,
                        (const char *)e.message.ptr, e.message.len);
            crm_plugin_types_plugin_error_free(&e);
        }
    }
    jbuf out;
    jb_init(&out);
    jb_cat(&out, "{\"created\":");
    jb_int(&out, (long long)created);
    jb_cat(&out, ",\"failed\":[");
    if (failed.len) jb_raw(&out, failed.data, failed.len);
    jb_cat(&out, "]}");
    if (failed.oom) __builtin_trap();
    respond(ret, 200, &out);
    jb_free(&failed);
    jb_free(&fields);
}

bool exports_crm_plugin_handler_handle_request(exports_crm_plugin_handler_request_t *req,
                                               exports_crm_plugin_handler_response_t *ret,
                                               exports_crm_plugin_handler_plugin_error_t *err) {
    (void)err;
    memset(ret, 0, sizeof *ret);
    if (!crm_eq(&req->path, "leads")) {
        error_response(ret, 404, "no such path");
    } else if (!crm_eq(&req->method, "POST")) {
        error_response(ret, 405, "use POST");
    } else {
        json *leads = json_parse((const char *)req->body.ptr, req->body.len, NULL);
        if (!json_is(leads, JSON_ARRAY)) {
            error_response(ret, 400, "body must be a JSON array");
        } else if (leads->count > MAX_LEADS) {
            jbuf b;
            jb_init(&b);
            jb_cat(&b, "{\"error\":\"at most 500 leads per request\",\"count\":");
            jb_int(&b, (long long)leads->count);
            jb_cat(&b, "}");
            respond(ret, 422, &b);
        } else {
            import_leads(leads, ret);
        }
        json_free(leads);
    }
    exports_crm_plugin_handler_request_free(req);
    return true;
}
