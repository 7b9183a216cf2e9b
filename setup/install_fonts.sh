#!/usr/bin/env bash
# Installs the Debian font packages listed in $1 when this machine allows it (root + apt-get);
# otherwise prints one line and carries on: the glyph study then uses the fonts already present.
set -u
list=${1:-config/glyph-fonts.txt}
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "fonts: not root or no apt-get; the glyph study uses only the fonts already installed" >&2
    exit 0
fi
read -r -a wanted < <(tr -s ' \n' ' ' < "$list")
missing=()
for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "fonts: installing ${#missing[@]} Debian font packages (one time)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/tmp/divcoeff-fonts.log 2>&1; then
    echo "fonts: apt-get failed (see /tmp/divcoeff-fonts.log); the glyph study uses the fonts already installed" >&2
fi
exit 0
