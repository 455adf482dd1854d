#!/usr/bin/env bash
# Installs the Debian packages listed in .ci/system-packages.txt that are missing (tests need
# them: pgbouncer, chromium, ...). Runs apt-get update once, only when something is missing.
# Needs root (CI and the development machines run as root); without it, says what to install.
set -euo pipefail
list="$(dirname "$0")/system-packages.txt"
missing=()
while read -r package _; do
  [[ -z "$package" || "$package" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$package")
done < "$list"
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "missing Debian packages: ${missing[*]} (install them, e.g. sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
