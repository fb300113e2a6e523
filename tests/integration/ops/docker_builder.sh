#!/usr/bin/env bash
# slow: runs the Docker builder stage's build step (deploy/docker/build-release) for real, in
# a temporary directory, and checks what the runtime stages rely on:
#   - every executable of services/ and tools/ lands in bin/ (the images COPY them);
#   - every shared library a binary needs directly comes from a package the runtime stage
#     installs (deploy/install-deps --runtime) or from libc.
# shellcheck source=tests/integration/ops/common.sh
. "$(dirname "$0")/common.sh"

cd "$OPS_SOURCE"
ops_tmpdir
trap 'rm -rf "$OPS_TMP"' EXIT

log=$OPS_TMP/build.log
if ! deploy/docker/build-release "$OPS_TMP/build" >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  fail "deploy/docker/build-release"
fi
echo "ok: the builder's build step succeeds"

executables=$(cat services/*/CMakeLists.txt tools/*/CMakeLists.txt 2>/dev/null |
  grep -oE '^ *add_executable\( *[A-Za-z0-9_-]+' | sed -E 's/.*\( *//' | sort -u)
runtime_packages=$(deploy/install-deps --print runtime)
for executable in $executables; do
  binary=$OPS_TMP/build/bin/$executable
  check "$executable is built into bin/" test -x "$binary"
  while read -r library; do
    # awk reads to the end: an early exit would SIGPIPE ldconfig, fatal under pipefail.
    path=$(ldconfig -p | awk -v lib="$library" '$1 == lib && !found { print $NF; found = 1 }')
    [[ -n "$path" ]] || fail "$executable needs $library, which ldconfig does not know"
    # usrmerge: dpkg may know the file under /lib or /usr/lib.
    package=$(dpkg -S "$path" 2>/dev/null || dpkg -S "${path#/usr}" 2>/dev/null ||
      dpkg -S "/usr$path" 2>/dev/null || true)
    package=${package%%:*}
    case "$package" in
      libc6) continue ;;
    esac
    check "$executable needs $library from $package, installed by --runtime" \
      grep -qx "$package" <<<"$runtime_packages"
  done < <(readelf -d "$binary" | sed -nE 's/.*\(NEEDED\).*\[(.*)\]/\1/p')
done

# The release build leaves the test failpoints out: the service does not know the variable.
help=$("$OPS_TMP/build/bin/ess-conversation" --help 2>&1 || true)
check "ess-conversation --help answers" grep -q ESS_DATA_KEY <<<"$help"
if grep -q ESS_CONVERSATION_FAILPOINT <<<"$help"; then
  fail "the release ess-conversation offers ESS_CONVERSATION_FAILPOINT"
fi
echo "ok: the release ess-conversation has no failpoint"
