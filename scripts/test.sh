#!/usr/bin/env bash
# Every check smtpgate has, on a fresh Debian 12 machine: installs the dependencies, checks the
# formatting, builds and runs the unit and integration tests, runs them again under
# AddressSanitizer + UndefinedBehaviorSanitizer, and runs each fuzz target briefly.
# Exit status 0 only when all of it passed.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh || exit 1

status=0
step() { printf '\n==== %s\n' "$*"; }

step "format check (clang-format 14)"
mapfile -t sources < <(git ls-files '*.cpp' '*.hpp' 2>/dev/null || find include src test bench -name '*.[ch]pp')
if clang-format --dry-run -Werror "${sources[@]}"; then
  echo "formatting ok (${#sources[@]} files)"
else
  echo "formatting: FAILED (run clang-format -i on the files above)"; status=1
fi

step "build and test (RelWithDebInfo)"
if ./scripts/build.sh build; then
  ctest --test-dir build --output-on-failure --no-tests=error -j2 || status=1
else
  status=1
fi

step "build and test under ASan + UBSan"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if ./scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DSMTPGATE_SANITIZE=ON; then
  ctest --test-dir build-asan --output-on-failure --no-tests=error -j2 || status=1
else
  status=1
fi
unset ASAN_OPTIONS UBSAN_OPTIONS

step "fuzz targets (libFuzzer, short runs)"
if CC=clang CXX=clang++ ./scripts/build.sh build-fuzz -DSMTPGATE_FUZZ=ON -DSMTPGATE_TESTS=OFF; then
  ctest --test-dir build-fuzz --output-on-failure --no-tests=error -L fuzz || status=1
else
  status=1
fi

step "result"
[ $status -eq 0 ] && echo "all checks passed" || echo "SOME CHECKS FAILED"
exit $status
