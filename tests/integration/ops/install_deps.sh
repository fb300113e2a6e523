#!/usr/bin/env bash
# integration: deploy/install-deps is silent and changes nothing when every package is
# present; its lists are consistent. (It is not made to install anything here: a test
# must not change the machine. When a package is missing the test is skipped.)
# shellcheck source=tests/integration/ops/common.sh
. "$(dirname "$0")/common.sh"

DEPS=$OPS_SOURCE/deploy/install-deps
"$DEPS" --check 2>/dev/null || skip "packages are missing: $("$DEPS" --check 2>&1 || true)"

output=$("$DEPS" 2>&1) || fail "install-deps failed: $output"
echo "ok: install-deps succeeds with everything present"
check "and prints nothing" test -z "$output"
check "the build list is part of the full list" \
  test -z "$(comm -23 <("$DEPS" --print build | sort) <("$DEPS" --print all | sort))"
check "the runtime list is installed here too" "$DEPS" --runtime
for package in nats-server postgresql-15 libcmocka-dev clang-14 docker-compose util-linux; do
  check "the full list has $package" grep -qx "$package" <("$DEPS" --print all)
done
if "$DEPS" --bogus 2>/dev/null; then fail "an unknown option is accepted"; fi
echo "ok: an unknown option is refused"
