#!/usr/bin/env bash
# Runs TC CRM's whole test suite: first installs what the tests need when it is missing, then
# `cargo test --workspace` with this script's arguments (e.g. `./test.sh --test api mail`).
#
# Made for Debian 12 as root (Rust via rustup, Node 20 + npm). It makes sure of:
#   - PostgreSQL answering on 127.0.0.1:5432 (installed, started, trust auth on a fresh install);
#   - a project-local virtualenv, .venv-test/, with the Python packages icalendar,
#     moto[server], aiosmtpd and gql (the system Python is left alone); it comes first on PATH for
#     the tests, so the `python3` they run is the venv's;
#   - Debian's chromium with fonts-noto-cjk (Chinese glyphs in the screenshots and in the
#     server's PDFs), poppler-utils (pdftotext reads the PDFs back) and
#     `npm ci --prefix tests/browser` (playwright-core, no downloaded browser);
#   - the web app's packages, `npm ci --prefix admin-ui` (build.rs builds admin-ui/dist with
#     them; the tests type-check the app and run its unit tests).
# A second run finds everything in place and goes straight to cargo, without the network.
set -euo pipefail

cd "$(dirname "$0")"
repo=$(pwd)

section() { printf '==== %s ====\n' "$*"; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tc-crm-target}
export DEBIAN_FRONTEND=noninteractive

# Root runs apt and pg_ctlcluster itself; anyone else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=false
apt_install() {
    echo "apt-get install $*"
    if [ "$apt_updated" = false ]; then
        as_root apt-get update -q
        apt_updated=true
    fi
    as_root apt-get install -y -q "$@"
}

# ---------------------------------------------------------------------------------------------
section "PostgreSQL on 127.0.0.1:5432"

# The cluster's version: the first directory under /etc/postgresql (Debian's layout).
pg_version() {
    # shellcheck disable=SC2012 # version directories are plain numbers
    ls /etc/postgresql | head -n1
}

pg_ready() {
    command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432
}

installed_pg=false
if ! pg_ready; then
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -d /etc/postgresql ] \
        || [ -z "$(ls -A /etc/postgresql 2>/dev/null)" ]; then
        echo "PostgreSQL is not installed: installing it"
        apt_install postgresql postgresql-contrib
        installed_pg=true
    fi
    version=$(pg_version)
    echo "starting cluster $version/main"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do
        pg_ready && break
        sleep 1
    done
    if ! pg_ready; then
        echo "PostgreSQL did not become ready on 127.0.0.1:5432 within 30 s" >&2
        tail -n 30 "/var/log/postgresql/postgresql-$version-main.log" >&2 || true
        exit 1
    fi
fi

# The tests connect as postgres (and as the role crm_test_app) over TCP without a password.
# A PostgreSQL we just installed has Debian's scram-sha-256 default for 127.0.0.1: switch that
# fresh, empty cluster to trust on loopback. An existing installation is left as it is.
if [ -z "${TEST_DATABASE_URL:-}" ] \
    && ! psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
    if [ "$installed_pg" = true ]; then
        version=$(pg_version)
        hba="/etc/postgresql/$version/main/pg_hba.conf"
        echo "enabling trust authentication on 127.0.0.1 in $hba (fresh install)"
        as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
        sleep 1
    else
        echo "warning: cannot connect as postgres@127.0.0.1:5432 without a password;" \
            "the API tests need trust auth there (or TEST_DATABASE_URL)" >&2
    fi
fi
echo "accepting connections: $(psql --version)"

# ---------------------------------------------------------------------------------------------
section "Python tools in .venv-test/"
# The calendar test parses the .ics feed with icalendar, the attachment tests run against moto's
# S3 server (`python3 -m moto.server`), the mail tests deliver to an aiosmtpd server, the GraphQL
# tests drive the server with a standard client (`gql`, over HTTP and WebSocket). They go
# into a virtualenv of this checkout, never into the system Python (PEP 668).
venv="$repo/.venv-test"
py_modules="import icalendar, moto, moto.server, aiosmtpd, gql, gql.transport.requests, gql.transport.websockets"

# A venv without a working interpreter and pip (the Python it came from was upgraded or removed,
# or its creation was cut short) is built again.
if [ -e "$venv" ] && ! "$venv/bin/python3" -c 'import pip' >/dev/null 2>&1; then
    echo "$venv is broken: recreating it"
    rm -rf "$venv"
fi
if [ ! -e "$venv" ]; then
    # Debian ships venv's ensurepip in python3-venv.
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    echo "creating $venv with $(python3 --version)"
    python3 -m venv "$venv" || { rm -rf "$venv"; exit 1; }
fi
if ! "$venv/bin/python3" -c "$py_modules" >/dev/null 2>&1; then
    echo "pip install icalendar 'moto[server]' aiosmtpd 'gql[requests,websockets]'"
    "$venv/bin/python3" -m pip install --quiet icalendar 'moto[server]' aiosmtpd 'gql[requests,websockets]'
fi
"$venv/bin/python3" -c "$py_modules
import sys
print('python', sys.version.split()[0] + ',', 'icalendar', icalendar.__version__ + ',',
      'moto', moto.__version__ + ',', 'aiosmtpd', aiosmtpd.__version__ + ',', 'gql', gql.__version__)"

# ---------------------------------------------------------------------------------------------
section "Browser: chromium, fonts, Node, playwright-core, admin-ui"
# The portal pages are tested in Debian's chromium driven by playwright-core (pinned in
# tests/browser/package-lock.json), never a browser that npm would download.
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
    apt_install chromium
fi
"$chromium" --version 2>/dev/null
# Without a CJK font the web app's screenshots show boxes instead of Chinese, and the server
# cannot print PDFs (its default `[export] pdf_font` is this package's NotoSansCJK).
if ! dpkg -s fonts-noto-cjk >/dev/null 2>&1; then
    apt_install fonts-noto-cjk
fi
# The export tests read the PDFs back as text with pdftotext.
if ! command -v pdftotext >/dev/null 2>&1; then
    apt_install poppler-utils
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
    echo "the browser tests need Node.js 20 or later with npm (found: $(node --version 2>&1 || true))" >&2
    exit 1
fi

# npm ci writes node_modules/.package-lock.json; a lock file newer than that was changed since.
browser=tests/browser
if [ ! -f "$browser/node_modules/playwright-core/package.json" ] \
    || [ ! -f "$browser/node_modules/.package-lock.json" ] \
    || [ "$browser/package-lock.json" -nt "$browser/node_modules/.package-lock.json" ]; then
    echo "npm ci --prefix $browser"
    npm ci --prefix "$browser" --no-audit --no-fund
fi
echo "node $(node --version), npm $(npm --version), playwright-core" \
    "$(node -p 'require("./tests/browser/node_modules/playwright-core/package.json").version')"

# The web app (admin-ui): the same check as above for its lock file.
ui=admin-ui
if [ ! -f "$ui/node_modules/.package-lock.json" ] \
    || [ "$ui/package-lock.json" -nt "$ui/node_modules/.package-lock.json" ]; then
    echo "npm ci --prefix $ui"
    npm ci --prefix "$ui" --no-audit --no-fund
fi
echo "admin-ui: vite $(node -p 'require("./admin-ui/node_modules/vite/package.json").version')," \
    "typescript $(node -p 'require("./admin-ui/node_modules/typescript/package.json").version')"

# ---------------------------------------------------------------------------------------------
section "cargo test --workspace${*:+ $*}"
echo "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
export VIRTUAL_ENV="$venv"
export PATH="$venv/bin:$PATH"
exec cargo test --workspace "$@"
