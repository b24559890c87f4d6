#!/usr/bin/env bash
# The headless browser for the dashboard's real-browser test: Debian's Chromium, never a browser build
# downloaded by Playwright.
#
#   scripts/chromium.sh    install chromium and chromium-driver (Debian apt, as root) when /usr/bin/chromium
#                          is missing, check that it starts headless and renders a page, and print its path
#                          as the only line on stdout
#
# Running it again does nothing but the check. Everything else goes to stderr; on failure the last stderr
# line names the problem.
set -euo pipefail
set -o errtrace # the ERR trap below reports failures inside functions too

# Everything but the path goes to stderr, so `$(scripts/chromium.sh)` captures the path alone.
exec 3>&1 1>&2

PROG=chromium.sh
BROWSER=/usr/bin/chromium

log() { printf '%s: %s\n' "$PROG" "$*"; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*"
    exit 1
}
on_error() { printf '%s: error: command failed (exit %s, line %s): %s\n' "$PROG" "$1" "$2" "$3"; }
trap 'on_error "$?" "$LINENO" "$BASH_COMMAND"' ERR

[[ $# -eq 0 ]] || die "takes no arguments, got '$*'"

if [[ ! -x "$BROWSER" ]]; then
    [[ "$(id -u)" == 0 ]] || die "$BROWSER not found and not root to install it (apt-get install chromium)"
    command -v apt-get >/dev/null || die "$BROWSER not found and no apt-get to install it"
    log "installing chromium and chromium-driver with apt-get"
    apt-get update -qq
    # without recommends: they pull in desktop integration (upower, udev, a notification daemon, printer
    # setup) that a headless test does not need; a font still comes with the dependencies
    # (libfontconfig1 -> fontconfig-config -> fonts-dejavu-core), so pages render their text
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver \
        </dev/null
    [[ -x "$BROWSER" ]] || die "apt-get installed chromium but $BROWSER is missing"
fi

version="$("$BROWSER" --version 2>/dev/null)" || die "$BROWSER --version failed"
log "using $version"

# A headless start that must print a DOM: catches missing shared libraries and a broken sandbox setup.
# Its own chatter (dbus, GPU fallbacks) is kept and shown only when the check fails.
chatter="$(mktemp)"
trap 'rm -f "$chatter"' EXIT
if ! dom="$(timeout 60 "$BROWSER" --headless --no-sandbox --disable-gpu --dump-dom about:blank \
    2>"$chatter" </dev/null)"; then
    tail -n 20 "$chatter" || true
    die "$BROWSER --headless --dump-dom about:blank failed"
fi
if [[ "$dom" != *"<body"* ]]; then
    tail -n 20 "$chatter" || true
    die "$BROWSER --headless --dump-dom about:blank printed no page (got: ${dom:0:80})"
fi
log "headless check passed"

printf '%s\n' "$BROWSER" >&3
