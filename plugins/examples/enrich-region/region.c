/* Phone number -> region: see region.h. */
#include "region.h"

#include <string.h>

struct prefix {
    const char *digits;
    const char *region;
};

/* Mainland area codes, with the trunk 0; longest first where they could overlap. */
static const struct prefix AREA[] = {
    {"0755", "深圳"}, {"0571", "杭州"}, {"0512", "苏州"}, {"0532", "青岛"},
    {"0591", "福州"}, {"0731", "长沙"}, {"0851", "贵阳"}, {"0871", "昆明"},
    {"010", "北京"},  {"021", "上海"},  {"022", "天津"},  {"023", "重庆"},
    {"020", "广州"},  {"025", "南京"},  {"027", "武汉"},  {"028", "成都"},
    {"029", "西安"},
};

/* International calling codes, longest first (852 before 8x, 1 last). */
static const struct prefix INTL[] = {
    {"852", "香港"}, {"853", "澳门"}, {"886", "台湾"}, {"44", "英国"},   {"81", "日本"},
    {"82", "韩国"},  {"65", "新加坡"}, {"49", "德国"}, {"33", "法国"},   {"61", "澳大利亚"},
    {"1", "北美"},
};

static const char *match(const struct prefix *table, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (strncmp(s, table[i].digits, strlen(table[i].digits)) == 0) return table[i].region;
    return NULL;
}

const char *phone_region(const char *phone) {
    /* Keep digits, the mask character and a leading '+'; drop spaces, dashes, brackets. */
    char s[40];
    size_t n = 0;
    for (const char *p = phone; *p && n + 2 < sizeof s; p++) {
        char c = *p;
        if ((c >= '0' && c <= '9') || c == '*') s[n++] = c;
        else if (c == '+' && n == 0) s[n++] = c;
        else if (c == ' ' || c == '-' || c == '(' || c == ')' || c == '.' || c == '\t') continue;
        else return NULL; /* letters, extensions, …: not a phone we understand */
    }
    s[n] = 0;
    if (n < 3) return NULL;

    const char *national = NULL;
    int had_country_code = 0;
    if (strncmp(s, "+86", 3) == 0) { national = s + 3; had_country_code = 1; }
    else if (strncmp(s, "0086", 4) == 0) { national = s + 4; had_country_code = 1; }
    else if (s[0] == '+') return match(INTL, sizeof INTL / sizeof *INTL, s + 1);
    else if (s[0] == '0' && s[1] == '0') return match(INTL, sizeof INTL / sizeof *INTL, s + 2);
    else national = s;

    size_t len = strlen(national);
    if (len == 11 && national[0] == '1' && national[1] >= '3' && national[1] <= '9')
        return "中国大陆（手机）";
    if (national[0] == '0' && !had_country_code)
        return match(AREA, sizeof AREA / sizeof *AREA, national);
    /* No trunk 0: after +86 (`+861012345678`) or as the CRM masks it (`101****5678`). */
    if (national[0] >= '1' && national[0] <= '9' && len >= 7) {
        char with_trunk[sizeof s + 1];
        with_trunk[0] = '0';
        memcpy(with_trunk + 1, national, len + 1);
        return match(AREA, sizeof AREA / sizeof *AREA, with_trunk);
    }
    return NULL;
}
