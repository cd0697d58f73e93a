/*
 * enrich-region: fills a customer's `region` from the prefix of its phone number
 * (area codes of 17 mainland cities, mainland mobiles, 11 international codes; see region.c).
 *
 * On customers.created / customers.updated it returns one action
 * {"action":"set_field","key":"region","value":"<region>"} unless the record already has that
 * region, which also ends the loop its own update would start. On an update that did not
 * change the phone it leaves a region someone already filled in alone.
 * On first use it makes sure the field exists (records.ensure-field; remembered in kv).
 */
#include <stdlib.h>
#include <string.h>

#include "plugin.h"
#include "crm_sdk.h"
#include "json.h"
#include "region.h"

void exports_crm_plugin_handler_describe(exports_crm_plugin_handler_manifest_t *ret) {
    static const char *const events[] = {"customers.created", "customers.updated", NULL};
    static const char *const permissions[] = {"customers:read", "customers:update",
                                              "fields:manage", NULL};
    memset(ret, 0, sizeof *ret);
    ret->name = crm_dup("enrich-region");
    ret->version = crm_dup("1.0.0");
    ret->description = crm_dup("Sets a customer's region from the phone number's prefix");
    ret->events = crm_strings(events);
    ret->permissions = crm_strings(permissions);
}

static void log_error(const char *what, crm_plugin_types_plugin_error_t *e) {
    jbuf m;
    jb_init(&m);
    jb_cat(&m, what);
    jb_cat(&m, ": ");
    jb_raw(&m, (const char *)e->code.ptr, e->code.len);
    jb_cat(&m, ": ");
    jb_raw(&m, (const char *)e->message.ptr, e->message.len);
    crm_log(CRM_PLUGIN_HOST_LEVEL_WARN, m.data ? m.data : what);
    jb_free(&m);
}

/* Creates the `region` field once per install. A failure is logged and retried next time
 * (`region` is a built-in customer field in TC CRM, so the action works regardless). */
static void ensure_field(void) {
    char *done = crm_kv_get("field_ensured");
    if (done) {
        free(done);
        return;
    }
    plugin_string_t object = crm_str("customers"), key = crm_str("region");
    plugin_string_t def = crm_str("{\"label\":\"地区\",\"type\":\"text\"}");
    crm_plugin_records_plugin_error_t e;
    if (crm_plugin_records_ensure_field(&object, &key, &def, &e)) {
        crm_kv_set("field_ensured", "1");
    } else {
        log_error("ensure-field customers.region", &e);
        crm_plugin_types_plugin_error_free(&e);
    }
}

/* Whether `changed` (a list of field keys) names `key`; 1 when there is no list. */
static int changed(const json *data, const char *key) {
    json *list = json_get(data, "changed");
    if (!json_is(list, JSON_ARRAY)) return 1;
    for (json *k = list->child; k; k = k->next)
        if (json_string(k) && strcmp(k->str, key) == 0) return 1;
    return 0;
}

static int ends_with(const plugin_string_t *s, const char *suffix) {
    size_t n = strlen(suffix);
    return s->len >= n && memcmp(s->ptr + s->len - n, suffix, n) == 0;
}

/* The phone as text: a string, or a number someone stored as one. */
static const char *phone_of(const json *record) {
    json *p = json_get(record, "phone");
    if (json_is(p, JSON_STRING) || json_is(p, JSON_NUMBER)) return p->str;
    return NULL;
}

bool exports_crm_plugin_handler_on_event(exports_crm_plugin_handler_event_t *event,
                                         exports_crm_plugin_handler_list_action_t *ret,
                                         exports_crm_plugin_handler_plugin_error_t *err) {
    bool ok = true;
    json *data = NULL, *fetched = NULL;
    memset(ret, 0, sizeof *ret);
    /* By object and action rather than the whole kind, so `customer.created` would do too. */
    if (!crm_eq(&event->object, "customers")) goto done;
    int created = ends_with(&event->kind, ".created");
    if (!created && !ends_with(&event->kind, ".updated")) goto done;

    ensure_field();

    data = json_parse((const char *)event->data.ptr, event->data.len, NULL);
    json *record = json_get(data, "record");
    if (!json_get(record, "phone") || !json_get(record, "region")) {
        /* Not in the payload: read the record (without its region we could not tell
         * whether our own update already happened, and would loop). */
        plugin_string_t object = crm_str("customers"), text;
        crm_plugin_records_plugin_error_t e;
        if (!crm_plugin_records_get(&object, &event->record_id, &text, &e)) {
            log_error("records.get", &e);
            if (crm_eq(&e.code, "record.not_found") || crm_eq(&e.code, "auth.forbidden")) {
                /* Deleted since, or not granted customers:read: retrying would not help. */
                crm_plugin_types_plugin_error_free(&e);
                goto done;
            }
            err->code = e.code; /* hand the host's error back: the event is retried */
            err->message = e.message;
            ok = false;
            goto done;
        }
        fetched = json_parse((const char *)text.ptr, text.len, NULL);
        plugin_string_free(&text);
        record = fetched;
    }

    const char *phone = phone_of(record);
    const char *region = phone ? phone_region(phone) : NULL;
    if (!region) goto done; /* no phone, or a prefix we do not know */
    const char *current = json_get_string(record, "region");
    if (current && strcmp(current, region) == 0) goto done; /* already right: no loop */
    if (!created && current && *current && !changed(data, "phone")) goto done;

    jbuf action;
    jb_init(&action);
    jb_cat(&action, "{\"action\":\"set_field\",\"key\":\"region\",\"value\":");
    jb_cstr(&action, region);
    jb_cat(&action, "}");
    if (action.oom) __builtin_trap();
    ret->ptr = calloc(1, sizeof *ret->ptr);
    if (!ret->ptr) __builtin_trap();
    ret->len = 1;
    size_t len;
    char *text = jb_take(&action, &len);
    ret->ptr[0].ptr = (uint8_t *)text; /* malloc'd: the bindings free it after the call */
    ret->ptr[0].len = len;

done:
    json_free(data);
    json_free(fetched);
    exports_crm_plugin_handler_event_free(event);
    return ok;
}

bool exports_crm_plugin_handler_handle_request(exports_crm_plugin_handler_request_t *req,
                                               exports_crm_plugin_handler_response_t *ret,
                                               exports_crm_plugin_handler_plugin_error_t *err) {
    (void)ret;
    exports_crm_plugin_handler_request_free(req);
    return crm_fail(err, "region.no_endpoints", "this plugin serves no endpoints");
}
