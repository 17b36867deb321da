#!/usr/bin/env bash
# Installs what building, testing and the demo need and this machine lacks:
# etcd (server and etcdctl), protoc (for the etcd client's gRPC code), git, OpenSSL's headers and
# pkg-config (libgit2's https transport links OpenSSL), and curl and openssl (the demo and the
# post-receive hook sign and send webhooks with them).
# Safe to run again: it installs only what is missing.
set -euo pipefail

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
command -v git >/dev/null 2>&1 || missing+=(git)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)

if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install the Rust toolchain (https://rustup.rs) and run make again" >&2
  exit 1
fi
echo "deps ok: $(etcd --version | head -n1), $(protoc --version), $(git --version)"
