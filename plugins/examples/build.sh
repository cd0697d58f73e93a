#!/usr/bin/env bash
# Rebuilds the example plugins (each <name>/<name>.c -> <name>/<name>.wasm, WIT
# crm:plugin@1.0.0) after running the native self-tests of the shared C code
# (common/selftest.c: SHA-256, HMAC-SHA256 RFC 4231 vectors, JSON; enrich-region's phone
# table) with the host's `cc`.
# Needs clang + wasi-libc and jco; see plugins/sdk/c/toolchain.sh for what it installs
# (apt packages when root; jco into $CRM_PLUGIN_TOOLS/node, default /work/tools).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../sdk/c/toolchain.sh"
cd "$here"

crm_log_step "native self-tests (cc)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"${CC:-cc}" -O2 -Wall -Wextra -Werror -o "$tmp/selftest" common/selftest.c common/json.c common/sha256.c
"$tmp/selftest"
"${CC:-cc}" -O2 -Wall -Wextra -Werror -o "$tmp/region_test" enrich-region/region_test.c enrich-region/region.c
"$tmp/region_test"

crm_need_clang
crm_need_jco
crm_log_step "building examples"
common=(-Icommon common/json.c)
crm_component "$here/webhook-forwarder/webhook-forwarder.wasm" 1.0 \
    webhook-forwarder/webhook-forwarder.c "${common[@]}" common/sha256.c
crm_component "$here/enrich-region/enrich-region.wasm" 1.0 \
    enrich-region/enrich-region.c enrich-region/region.c "${common[@]}"
crm_component "$here/lead-import/lead-import.wasm" 1.0 \
    lead-import/lead-import.c "${common[@]}"
