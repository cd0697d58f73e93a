/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) for TC CRM plugins. No dependencies. */
#ifndef CRM_SHA256_H
#define CRM_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t total;
    uint8_t block[64];
    size_t fill;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, uint8_t out[32]);
void sha256(const void *data, size_t len, uint8_t out[32]);
void hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                 uint8_t out[32]);
/* Lower-case hex of `n` bytes into out (2n+1 bytes with the NUL). */
void hex_encode(const uint8_t *bytes, size_t n, char *out);

#endif
