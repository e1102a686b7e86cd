#!/usr/bin/env bash
# Fails when a C++ file is not clang-format clean (.clang-format at the root).
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.h' '*.cpp' 2>/dev/null || find common services tests -name '*.h' -o -name '*.cpp')
bad=0
for f in $files; do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "not clang-format clean: $f" >&2
    bad=1
  fi
done
if [ $bad -ne 0 ]; then
  echo "run: clang-format -i \$(git ls-files '*.h' '*.cpp')" >&2
  exit 1
fi
echo "clang-format: clean"
