#!/usr/bin/env bash
# Installs what building, testing and the demo need and this machine lacks, and says what it
# installed. Each Debian package is checked by a file the build or the tests really use, not by a
# command name alone: `protoc` without libprotobuf-dev's include files fails the etcd client's
# build with "google/protobuf/descriptor.proto: File not found".
#
# The table below is also read by scripts/sealed-run.sh, which traces a whole `make test` and
# fails when it used a Debian package that is neither named here nor on a fresh machine
# (scripts/baseline-packages.txt): that is how a package missing from this list shows up on a
# machine that happens to have it installed already.
#
# Safe to run again: it installs only what is missing. `scripts/deps.sh --list` prints the
# package names and installs nothing.
set -euo pipefail

# package | files that prove it is there (any one of them) | what uses it
table=$(
  cat <<'TABLE'
etcd-server        | /usr/bin/etcd                                                     | tests and demo start their own etcd
etcd-client        | /usr/bin/etcdctl                                                  | tests inspect and compact etcd
protobuf-compiler  | /usr/bin/protoc                                                   | etcd-client's build script (gRPC code)
libprotobuf-dev    | /usr/include/google/protobuf/descriptor.proto                     | the .proto files protoc imports
git                | /usr/bin/git                                                      | GitOps tests and the demo's state repo
curl               | /usr/bin/curl                                                     | the demo and the post-receive hook send webhooks
openssl            | /usr/bin/openssl                                                  | the demo signs webhooks
pkg-config         | /usr/bin/pkg-config                                               | libgit2's build finds OpenSSL
libssl-dev         | /usr/include/openssl/ssl.h                                        | libgit2's https transport links OpenSSL
prometheus         | /usr/bin/promtool                                                 | deploy/ alert rules: promtool check and test
strace             | /usr/bin/strace                                                   | scripts/sealed-run.sh traces what make test reads
systemd            | /usr/bin/systemd-analyze                                          | deploy/ systemd unit: systemd-analyze verify
zsh                | /usr/bin/zsh /bin/zsh                                             | `nomarch completion zsh` checked with zsh -n
fish               | /usr/bin/fish                                                     | `nomarch completion fish` checked with fish -n
chromium           | /usr/lib/chromium/chromium                                        | the dashboard's browser tests (headless)
chromium-driver    | /usr/bin/chromedriver                                             | WebDriver for those tests
TABLE
)

packages() { awk -F'|' '!/^#/ { gsub(/ /, "", $1); print $1 }' <<<"$table"; }

if [ "${1:-}" = "--list" ]; then
  packages
  exit 0
fi

missing=()
while IFS='|' read -r package files _; do
  package=${package// /}
  [[ $package == \#* ]] && continue
  present=""
  for file in $files; do
    [ -e "$file" ] && present=yes
  done
  [ -n "$present" ] || missing+=("$package")
done <<<"$table"

if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  # Recommends stay out on purpose: what the build needs is named above, so a package that only
  # arrived as a recommendation can never be what keeps the build green.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "deps: installed ${missing[*]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install the Rust toolchain (https://rustup.rs) and run make again" >&2
  exit 1
fi
echo "deps ok: $(etcd --version | head -n1), $(protoc --version), $(git --version)"
