/* Native self-test of the shared C code (run by ../build.sh with the host's `cc`):
 * SHA-256 / HMAC-SHA256 test vectors (FIPS 180-2, RFC 4231 cases 1, 2 and 6) and JSON
 * round trips (UTF-8, escapes, errors). Exit status 0 when everything passes. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "json.h"
#include "sha256.h"

static int failures;

static void expect(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "FAIL: %s\n", what);
        failures++;
    }
}

static void expect_hex(const uint8_t d[32], const char *want, const char *what) {
    char hex[65];
    hex_encode(d, 32, hex);
    if (strcmp(hex, want) != 0) {
        fprintf(stderr, "FAIL: %s\n  got  %s\n  want %s\n", what, hex, want);
        failures++;
    }
}

static void roundtrip(const char *in, const char *want, const char *what) {
    const char *err;
    json *v = json_parse(in, strlen(in), &err);
    if (!v) {
        fprintf(stderr, "FAIL: %s: %s\n", what, err);
        failures++;
        return;
    }
    jbuf b;
    jb_init(&b);
    jb_value(&b, v);
    if (strcmp(b.data, want) != 0) {
        fprintf(stderr, "FAIL: %s\n  got  %s\n  want %s\n", what, b.data, want);
        failures++;
    }
    jb_free(&b);
    json_free(v);
}

int main(void) {
    uint8_t d[32];

    sha256("abc", 3, d);
    expect_hex(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "sha256(abc)");
    sha256("", 0, d);
    expect_hex(d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sha256()");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256(m, strlen(m), d);
    expect_hex(d, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", "sha256(448 bits)");

    /* RFC 4231 test case 1. */
    uint8_t k1[20];
    memset(k1, 0x0b, sizeof k1);
    hmac_sha256(k1, sizeof k1, "Hi There", 8, d);
    expect_hex(d, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", "RFC 4231 case 1");
    /* RFC 4231 test case 2. */
    const char *msg2 = "what do ya want for nothing?";
    hmac_sha256("Jefe", 4, msg2, strlen(msg2), d);
    expect_hex(d, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", "RFC 4231 case 2");
    /* RFC 4231 test case 6 (a key longer than the block). */
    uint8_t k6[131];
    memset(k6, 0xaa, sizeof k6);
    const char *msg6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    hmac_sha256(k6, sizeof k6, msg6, strlen(msg6), d);
    expect_hex(d, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", "RFC 4231 case 6");

    roundtrip("{\"name\":\"张三\",\"n\":[1,-2.5e3,true,false,null]}",
              "{\"name\":\"张三\",\"n\":[1,-2.5e3,true,false,null]}", "utf-8 object");
    roundtrip("\"\\u5f20\\u4e09 \\ud83d\\ude00 \\\"q\\\" \\\\ \\/ \\n\\u0001\"",
              "\"张三 😀 \\\"q\\\" \\\\ / \\n\\u0001\"", "escapes");
    roundtrip(" [ ] ", "[]", "empty array");
    roundtrip("{ }", "{}", "empty object");

    const char *bad[] = {"", "[", "{\"a\"}", "[1,]", "01", "\"\\ud800\"", "\"\xff\"",
                         "tru", "[1] x", "\"a\nb\"", "{\"a\":1,}", "-", "1.", "\"\\x\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json *v = json_parse(bad[i], strlen(bad[i]), NULL);
        if (v) {
            fprintf(stderr, "FAIL: accepted bad JSON #%zu\n", i);
            failures++;
            json_free(v);
        }
    }

    char deep[200];
    memset(deep, '[', sizeof deep);
    expect(json_parse(deep, sizeof deep, NULL) == NULL, "depth limit");

    const char *t = "{\"a\":{\"b\":\"c\"},\"l\":[0,1,2]}";
    json *o = json_parse(t, strlen(t), NULL);
    expect(o && strcmp(json_get_string(json_get(o, "a"), "b"), "c") == 0, "json_get");
    expect(o && json_at(json_get(o, "l"), 2) && strcmp(json_at(json_get(o, "l"), 2)->str, "2") == 0,
           "json_at");
    expect(json_get(o, "zz") == NULL && json_at(json_get(o, "l"), 3) == NULL, "absent");
    json_free(o);

    jbuf b;
    jb_init(&b);
    jb_str(&b, "a\xff" "b\x7f", 4);
    expect(strcmp(b.data, "\"a\xEF\xBF\xBD" "b\\u007f\"") == 0, "writer sanitises");
    jb_free(&b);

    jb_init(&b);
    jb_int(&b, 0);
    jb_raw(&b, " ", 1);
    jb_int(&b, -9223372036854775807LL - 1);
    jb_raw(&b, " ", 1);
    jb_int(&b, 4200);
    expect(strcmp(b.data, "0 -9223372036854775808 4200") == 0, "jb_int");
    jb_free(&b);

    char clean[8];
    utf8_clean(clean, sizeof clean, "ab\xe5\xbc\xa0\xe4\xb8\x89", 8);
    expect(strcmp(clean, "ab\xe5\xbc\xa0") == 0, "utf8_clean cuts on a boundary");

    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("selftest: sha256, hmac (RFC 4231 1, 2, 6) and json OK\n");
    return 0;
}
