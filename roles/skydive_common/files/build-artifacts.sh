#!/usr/bin/env bash
# Controller side of the skydive roles: build the skydive-runtime wheel from the collection's
# sources (cached by a fingerprint of those sources, reproducible bytes) and, when asked, a
# tarball of dependency wheels for nodes without a package index. Prints one JSON object.
#   build-artifacts.sh PYTHON SOURCE_DIR CACHE_DIR WANT_WHEELHOUSE(0|1) [EXTRA_REQUIREMENT...]
set -euo pipefail
py=$1 src=$2 cache=$3 want_wheelhouse=$4
shift 4
extra=("$@")
export PIP_DISABLE_PIP_VERSION_CHECK=1 SOURCE_DATE_EPOCH=315532800
[ -f "$src/pyproject.toml" ] && [ -d "$src/skydive_runtime" ] || {
  echo "skydive_source_dir $src does not hold pyproject.toml and skydive_runtime/" >&2; exit 2; }
mkdir -p "$cache/wheels"

fp=$(cd "$src" && find pyproject.toml skydive_runtime -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
     | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
out="$cache/wheels/$fp"
if ! ls "$out"/skydive_runtime-*.whl >/dev/null 2>&1; then
  stage=$(mktemp -d); trap 'rm -rf "$stage" "$out.tmp.$$"' EXIT
  cp -r "$src/pyproject.toml" "$src/skydive_runtime" "$stage"/
  for f in README.md LICENSE; do if [ -f "$src/$f" ]; then cp "$src/$f" "$stage"/; fi; done
  find "$stage" -name __pycache__ -prune -exec rm -rf {} +
  mkdir -p "$out.tmp.$$"
  "$py" -m pip wheel -q --no-deps --no-build-isolation -w "$out.tmp.$$" "$stage" >&2 \
    || "$py" -m pip wheel -q --no-deps -w "$out.tmp.$$" "$stage" >&2
  mv "$out.tmp.$$" "$out" 2>/dev/null || rm -rf "$out.tmp.$$"   # a concurrent build won
  # keep the 5 most recent builds
  ls -1dt "$cache"/wheels/*/ 2>/dev/null | tail -n +6 | xargs -r rm -rf
fi
wheel=$(ls "$out"/skydive_runtime-*.whl | head -n1)
sha=$(sha256sum "$wheel" | cut -d' ' -f1)

wheelhouse=""
if [ "$want_wheelhouse" = 1 ]; then
  dfp=$({ "$py" -c 'import sys; print(sys.version_info[:2], sys.platform)'
          sed -n '/^dependencies/,/^]/p' "$src/pyproject.toml"; echo "${extra[*]:-}"; } | sha256sum | cut -c1-16)
  wheelhouse="$cache/wheelhouse-$dfp.tar"
  if [ ! -s "$wheelhouse" ]; then
    work=$(mktemp -d)
    "$py" -m pip wheel -q -w "$work/wheelhouse" "$wheel" "${extra[@]}" >&2
    rm -f "$work"/wheelhouse/skydive_runtime-*.whl
    tar --sort=name --mtime=@315532800 --owner=0 --group=0 --numeric-owner -C "$work" -cf "$wheelhouse.tmp.$$" wheelhouse
    mv "$wheelhouse.tmp.$$" "$wheelhouse"
    rm -rf "$work"
  fi
fi
printf '{"wheel": "%s", "wheel_name": "%s", "wheel_sha": "%s", "wheelhouse": "%s", "fingerprint": "%s"}\n' \
  "$wheel" "$(basename "$wheel")" "$sha" "$wheelhouse" "$fp"
