# Shared by plugins/examples/build.sh and plugins/tests/fixtures/build.sh (source it).
#
# Builds C plugins for TC CRM as WebAssembly components:
#   clang (wasm32-wasi, wasi-libc)  ->  core module (reactor)
#   jco new [--wasi-reactor]        ->  component (adds the WASI preview1 adapter only when
#                                       the module imports wasi_snapshot_preview1)
#
# What it needs, and where it puts what it installs:
#   - clang + wasm-ld + wasi-libc + the wasm32 compiler-rt builtins. Debian 12:
#       apt-get install -y clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32
#     installed here automatically when missing and running as root (else it stops and says
#     so). Another clang: set CRM_WASM_CC (and CRM_WASM_SYSROOT if the sysroot is not found).
#   - jco (npm @bytecodealliance/jco, 1.35.0 unless CRM_JCO_VERSION), installed into
#     $CRM_PLUGIN_TOOLS/node when missing; CRM_JCO points at another jco binary.
#   - wit-bindgen-cli only to regenerate ../sdk/c/v*/ from the WIT (gen-bindings.sh); the
#     generated bindings are committed, so a plain build does not need it.
# CRM_PLUGIN_TOOLS defaults to /work/tools.

set -euo pipefail

CRM_SDK_C="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CRM_PLUGIN_TOOLS="${CRM_PLUGIN_TOOLS:-/work/tools}"
JCO="${CRM_JCO:-$CRM_PLUGIN_TOOLS/node/node_modules/.bin/jco}"

crm_log_step() { printf '==> %s\n' "$*" >&2; }

crm_need_clang() {
    if [ -z "${CRM_WASM_CC:-}" ]; then
        if command -v clang-14 >/dev/null; then CRM_WASM_CC=clang-14
        elif command -v clang >/dev/null; then CRM_WASM_CC=clang
        fi
    fi
    local missing=0
    [ -n "${CRM_WASM_CC:-}" ] || missing=1
    command -v wasm-ld-14 >/dev/null || command -v wasm-ld >/dev/null || missing=1
    [ -f "${CRM_WASM_SYSROOT:-/usr}/lib/wasm32-wasi/libc.a" ] || missing=1
    if [ "$missing" = 1 ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            crm_log_step "installing clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32 (apt)"
            apt-get install -y clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32 >/dev/null
            CRM_WASM_CC=clang-14
        else
            echo "need clang with wasm-ld and wasi-libc: apt-get install clang-14 lld-14" \
                "wasi-libc libclang-rt-14-dev-wasm32 (or set CRM_WASM_CC / CRM_WASM_SYSROOT)" >&2
            exit 1
        fi
    fi
    CRM_WASM_CFLAGS=(--target=wasm32-wasi -O2 -mexec-model=reactor -s -Wall -Wextra -Werror)
    [ -n "${CRM_WASM_SYSROOT:-}" ] && CRM_WASM_CFLAGS+=(--sysroot="$CRM_WASM_SYSROOT")
    return 0
}

crm_need_jco() {
    if [ ! -x "$JCO" ]; then
        crm_log_step "installing @bytecodealliance/jco into $CRM_PLUGIN_TOOLS/node (npm)"
        mkdir -p "$CRM_PLUGIN_TOOLS/node"
        npm install --silent --prefix "$CRM_PLUGIN_TOOLS/node" \
            "@bytecodealliance/jco@${CRM_JCO_VERSION:-1.35.0}" >/dev/null
    fi
}

# crm_component OUT.wasm WIT_VERSION (1.0|1.1) SOURCES... [-- extra clang args]
# Compiles and links the sources with the generated bindings of that WIT version,
# componentizes, and checks the component exports crm:plugin/handler@WIT_VERSION.0.
crm_component() {
    local out="$1" ver="$2"
    shift 2
    local bindings="$CRM_SDK_C/v$ver"
    local tmp
    tmp="$(mktemp -d)"
    "$CRM_WASM_CC" "${CRM_WASM_CFLAGS[@]}" -I"$bindings" -I"$CRM_SDK_C" "$@" \
        "$bindings/plugin.c" "$bindings/plugin_component_type.o" -o "$tmp/core.wasm"
    local adapt=()
    "$JCO" print "$tmp/core.wasm" >"$tmp/core.wat"
    if grep -q '(import "wasi_snapshot_preview1"' "$tmp/core.wat"; then
        adapt=(--wasi-reactor)
    fi
    "$JCO" new "$tmp/core.wasm" "${adapt[@]}" -o "$out" >/dev/null
    "$JCO" wit "$out" >"$tmp/component.wit"
    if ! grep -q "export crm:plugin/handler@$ver.0;" "$tmp/component.wit"; then
        echo "$out does not export crm:plugin/handler@$ver.0" >&2
        cat "$tmp/component.wit" >&2
        rm -rf "$tmp"
        exit 1
    fi
    rm -rf "$tmp"
    printf '    %-60s %7d bytes%s\n' "${out#"$PWD/"}" "$(stat -c %s "$out")" \
        "${adapt:+ (with the WASI adapter)}" >&2
}
