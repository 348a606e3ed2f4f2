#!/usr/bin/env bash
# Short coverage-guided fuzz runs (cargo fuzz, libFuzzer) of the built-in reducers and of event
# decoding; a crash fails the run and leaves its input under fuzz/artifacts/. Ends with one line
# "N passed, N failed".
#
#   scripts/check-fuzz.sh                    20 s per target (the test command)
#   FUZZ_SECONDS=3600 scripts/check-fuzz.sh  a long run
#
# cargo fuzz needs unstable compiler flags; RUSTC_BOOTSTRAP lets the stable toolchain accept
# them. No sanitizer is used: the code is safe Rust, and what a run looks for is panics.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
export PATH="$HOME/.cargo/bin:$PATH" RUSTC_BOOTSTRAP=1
seconds=${FUZZ_SECONDS:-20}
if ! command -v cargo-fuzz >/dev/null; then
  echo "check-fuzz: installing cargo-fuzz (cargo install)"
  cargo install cargo-fuzz --version 0.13.2 --locked --quiet
fi
cargo fuzz build -s none -O
passed=0 failed=0
for target in $(cargo fuzz list); do
  echo "==> fuzz $target for ${seconds}s"
  if cargo fuzz run -s none -O "$target" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 | tail -4; then
    passed=$((passed + 1))
  else
    echo "check-fuzz: $target crashed; the input is in fuzz/artifacts/$target/"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
