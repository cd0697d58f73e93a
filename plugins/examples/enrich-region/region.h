/* Phone number -> region, for the enrich-region example. */
#ifndef ENRICH_REGION_H
#define ENRICH_REGION_H

/* The region of a phone number in any common format (`+86 10 1234 5678`, `0755-8888 1234`,
 * `13812345678`, `+852 2345 6789`, E.164 as the CRM stores it, or masked as the CRM shows
 * it without `sensitive:read`: `138****5678`), or NULL when unknown. UTF-8, static. */
const char *phone_region(const char *phone);

#endif
