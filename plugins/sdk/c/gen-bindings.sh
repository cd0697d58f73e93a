#!/usr/bin/env bash
# Regenerates the C bindings in plugins/sdk/c/v1.0 and v1.1 from plugins/wit/ with
# wit-bindgen-cli (installed into $CRM_PLUGIN_TOOLS/wit-bindgen with cargo when missing;
# CRM_PLUGIN_TOOLS defaults to /work/tools; it builds with `nice` and one job).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
wit="$here/../../wit"
tools="${CRM_PLUGIN_TOOLS:-/work/tools}"
version=0.63.0
bin="$tools/wit-bindgen/bin/wit-bindgen"
if [ ! -x "$bin" ] || ! "$bin" --version | grep -q "$version"; then
    echo "==> installing wit-bindgen-cli $version into $tools/wit-bindgen (cargo)" >&2
    CARGO_TARGET_DIR="$tools/target" nice -n 19 \
        cargo install wit-bindgen-cli --version "$version" --locked --root "$tools/wit-bindgen" -j 1
fi
for v in 1.0 1.1; do
    rm -rf "$here/v$v"
    "$bin" c "$wit/v$v" --world plugin --out-dir "$here/v$v" >/dev/null
    echo "==> generated $here/v$v" >&2
done
