#!/usr/bin/env bash
# The README's pictures of a session: /save writes it as SVG and as HTML, and headless
# chromium (Debian's package) renders the HTML to a PNG, as a reader's browser shows it.
#   bash benchmarks/session_picture.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -f "$here/session.svg"
printf '/color on\nWhat is noble?\n/save %s\n/save %s\n' "$here/session.svg" "$work/session.html" |
    charchat -n 300 --seed 1 >/dev/null
chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$work/profile" \
    --window-size=1040,150 --screenshot="$here/session.png" "file://$work/session.html" 2>/dev/null
echo "wrote $here/session.svg and $here/session.png"
