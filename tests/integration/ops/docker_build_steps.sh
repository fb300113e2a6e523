#!/usr/bin/env bash
# shellcheck disable=SC2016 # the patterns match a literal "$1" and "$BUILD_DIR"
# integration: the images are built by the same steps as tests/run (no Docker engine here,
# so this reads the files; docker_builder.sh runs the build step for real):
#   - the builder stage installs deploy/install-deps --build and builds with
#     deploy/docker/build-release, i.e. lib.sh's ess_cmake_configure + ess_cmake_build, the
#     functions tests/run and deploy/local/ess use, for all targets (no --target anywhere);
#   - every pkg-config module the CMake build needs comes from a package of that list;
#   - every service and tool executable of the tree has an image target, and the runtime
#     stages run as a non-root user with a HEALTHCHECK.
# shellcheck source=tests/integration/ops/common.sh
. "$(dirname "$0")/common.sh"

cd "$OPS_SOURCE"
DOCKERFILE=deploy/docker/Dockerfile

# stage_of NAME: the lines of the Dockerfile stage NAME.
stage_of() {
  awk -v want="$1" 'toupper($1) == "FROM" { in_stage = (tolower($NF) == want) } in_stage' \
    "$DOCKERFILE"
}

build_stage=$(stage_of build)
check "the builder stage is debian:bookworm-slim" \
  grep -Eq '^FROM debian:bookworm-slim AS build$' <<<"$build_stage"
check "it installs deploy/install-deps --build" \
  grep -Eq '^RUN deploy/install-deps --build( |$)' <<<"$build_stage"
check "it builds with deploy/docker/build-release" \
  grep -Eq '^RUN deploy/docker/build-release /opt/ess-build$' <<<"$build_stage"
check "build-release configures with lib.sh" \
  grep -Eq '^ess_cmake_configure "\$1" release' deploy/docker/build-release
check "build-release builds every target with lib.sh" \
  grep -Eqx 'ess_cmake_build "\$1"' deploy/docker/build-release
check "tests/run configures with lib.sh" \
  grep -Eq '^ *ess_cmake_configure "\$BUILD_DIR" sanitize$' tests/run
check "tests/run builds every target with lib.sh" \
  grep -Eq '^ *ess_cmake_build "\$BUILD_DIR"$' tests/run
check "deploy/local/ess builds with lib.sh" grep -Eq '^ *ess_cmake_build "\$BUILD_DIR"' \
  deploy/local/ess
check "the image's build picks no targets" \
  test -z "$(grep -nE -- '^RUN .*--target|ess_cmake_build .*--target' "$DOCKERFILE" \
    deploy/docker/build-release || true)"

# Every pkg-config module of the build (cmocka only for tests, which the image leaves out)
# is provided by a package that install-deps --build installs.
build_packages=$(deploy/install-deps --print build)
modules=$(grep -ohE 'pkg_check_modules\([A-Z_]+ +REQUIRED +IMPORTED_TARGET +[a-z0-9._-]+' \
  CMakeLists.txt | awk '{ print $NF }' | grep -v '^cmocka$' || true)
check "the build declares pkg-config modules" test -n "$modules"
for module in $modules; do
  pc=$(pkg-config --path "$module" 2>/dev/null) || fail "pkg-config knows no $module"
  package=$(dpkg -S "$pc" 2>/dev/null | head -n1 | cut -d: -f1) || true
  check "module $module comes from $package, in install-deps --build" \
    grep -qx "$package" <<<"$build_packages"
done

# Every executable of services/ and tools/ has an image target that copies it from the
# builder and runs it.
# Development tools that only make repository data are not deployed: stations-gen writes
# deploy/data/geo/stations_synthetic.csv.
executables=$(cat services/*/CMakeLists.txt tools/*/CMakeLists.txt 2>/dev/null |
  grep -oE '^ *add_executable\( *[A-Za-z0-9_-]+' | sed -E 's/.*\( *//' |
  grep -vx 'stations-gen' | sort -u)
check "the tree has executables" test -n "$executables"
for executable in $executables; do
  check "$executable is copied into an image" \
    grep -Eq "^COPY --from=build /opt/ess-build/bin/$executable /usr/local/bin/$executable\$" \
    "$DOCKERFILE"
done

runtime=$(stage_of runtime)
check "the runtime stage is debian:bookworm-slim" \
  grep -Eq '^FROM debian:bookworm-slim AS runtime$' <<<"$runtime"
check "it installs only deploy/install-deps --runtime" grep -q -- '--runtime' <<<"$runtime"
check "it runs as a non-root user" grep -Eq '^USER ess(:ess)?$' <<<"$runtime"
for stage in ingress conversation georouter notifier audit console line-emulator; do
  lines=$(stage_of "$stage")
  check "target $stage builds on runtime" grep -Eq "^FROM runtime AS $stage\$" <<<"$lines"
  check "target $stage has a HEALTHCHECK on /healthz" \
    grep -Eq 'CMD curl -fsS .*/healthz' <<<"$lines"
  binary=$(grep -oE '^COPY --from=build /opt/ess-build/bin/[A-Za-z0-9_-]+' <<<"$lines" |
    sed 's|.*/||')
  check "target $stage runs the binary it copies" \
    grep -Eq "^ENTRYPOINT \[\"/usr/local/bin/$binary\"\]\$" <<<"$lines"
  check "target $stage keeps the runtime user" test -z "$(grep -E '^USER' <<<"$lines" || true)"
done
check "target migrate runs essctl db migrate" \
  grep -Eq '^CMD \["db", "migrate"\]$' <<<"$(stage_of migrate)"
