#!/usr/bin/env bash
# Runs a command (default: `make test`) in a copy of this repository made in an empty temporary
# folder, so that nothing beside the repository (a shared folder next to it, the checkout it came
# from) can be found, under strace, and then fails if the run read anything outside the copy or
# used a Debian package that `make deps` does not install (scripts/sealed_check.py says how).
#
# The copy holds the files git tracks, as they are in the working tree: what a clone of the
# next commit would hold, so a file you forgot to `git add` fails here as it would in CI.
#
#   bash scripts/sealed-run.sh              # make test, sealed
#   bash scripts/sealed-run.sh make demo    # any command
#
# NOMARCH_SEALED_KEEP=1 keeps the copy and the trace for a look afterwards.
set -euo pipefail

origin=$(cd "$(dirname "$0")/.." && pwd)
(($#)) || set -- make test

bash "$origin/scripts/deps.sh" >/dev/null
command -v strace >/dev/null || { echo "sealed: strace is missing (make deps installs it)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/nomarch-sealed.XXXXXX")
clone="$work/nomarch"
trace="$work.trace"
cleanup() {
  if [ -n "${NOMARCH_SEALED_KEEP:-}" ]; then
    echo "sealed: kept $clone and $trace"
  else
    rm -rf "$work" "$trace"
  fi
}
trap cleanup EXIT

# mktemp's 0700 would keep out the tests that run the controller as another user (nobody).
chmod 755 "$work"
mkdir -p "$clone"
(cd "$origin" && git ls-files -z --cached | while IFS= read -r -d '' file; do
  [ -e "$file" ] && printf '%s\0' "$file"
done) | tar -C "$origin" --null -T - -cf - | tar -C "$clone" -xf -
echo "sealed: $(git -C "$origin" ls-files | wc -l) tracked files copied to $clone; running: $*"

status=0
(cd "$clone" && strace -f --seccomp-bpf -qq -y -s 4096 -o "$trace" \
  -e trace=open,openat,openat2,stat,lstat,newfstatat,statx,access,faccessat,faccessat2,readlink,readlinkat,execve,chdir,fchdir,clone,clone3,fork,vfork \
  "$@") || status=$?
if ! python3 "$origin/scripts/sealed_check.py" "$trace" "$clone" "$origin"; then
  [ "$status" != 0 ] || status=1
fi
exit "$status"
