# Sourced by tools/setup.sh and tools/fuzz.sh: fetch and unpack one Debian source package without
# touching the system's apt configuration. The deb-src entry reuses the mirror this machine's apt
# sources already name (no host is written anywhere) and lives in a private apt state directory.
#
#   debian_source SUITES PACKAGE=VERSION DEST   # e.g. debian_source "trixie" librdkafka=2.8.0-1 /tmp/x/src
#
# apt checks every downloaded file against the signed Sources index; the maintainer's own .dsc
# signature cannot be checked without debian-keyring, so dpkg-source is told not to try.

# The first URIs line of the machine's own deb822 sources, or the first deb line of sources.list.
configured_mirror() {
  local m=""
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources)
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) {print $i; exit}}' /etc/apt/sources.list)
  fi
  [ -n "$m" ] || { echo "cannot find the Debian mirror in /etc/apt sources" >&2; return 1; }
  printf '%s\n' "$m"
}

debian_source() {
  local suites=$1 package=$2 dest=$3 mirror work status=0
  mirror=$(configured_mirror) || return 1
  work=$(mktemp -d)
  mkdir -p "$work/etc" "$work/lists/partial"
  printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" "$suites" > "$work/etc/src.sources"
  local apt_opts=(-q -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/etc"
                  -o "Dir::State::Lists=$work/lists" -o APT::Sandbox::User=root)
  if apt-get "${apt_opts[@]}" update >"$work/apt.log" 2>&1 &&
     (cd "$work" && apt-get "${apt_opts[@]}" source --download-only "$package" >>"$work/apt.log" 2>&1) &&
     dpkg-source --no-check -x "$work"/*.dsc "$work/src" >>"$work/apt.log" 2>&1; then
    rm -rf "$dest" && mkdir -p "$(dirname "$dest")" && mv "$work/src" "$dest"
  else
    echo "fetching the Debian source of $package failed:" >&2
    tail -n 20 "$work/apt.log" >&2
    status=1
  fi
  rm -rf "$work"
  return $status
}
