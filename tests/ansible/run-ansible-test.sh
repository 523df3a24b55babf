#!/usr/bin/env bash
# Run `ansible-test sanity` and `ansible-test units` on the skydive.skydive collection, offline.
#
# ansible-test insists on running from a physical .../ansible_collections/<ns>/<name>/ directory
# (a symlink is refused), so the collection is first built from this work tree with
# `ansible-galaxy collection build` -- which applies galaxy.yml's build_ignore, so exactly what
# ships is what gets tested: meta, plugins, roles, playbooks, docs, changelogs, tests/unit,
# tests/sanity, and the runtime the roles deploy (skydive_runtime/, pyproject.toml) and tripleo/;
# not .venv, benchmarks, scripts or the pytest trees -- and the artifact is unpacked under a
# temporary ansible_collections/skydive/skydive tree.
#
# ansible-test bootstraps pip in each sanity virtualenv with a get-pip script downloaded from a
# host this machine cannot reach; a stand-in (tests/ansible/get_pip_standin.py) is installed in
# ~/.ansible/test/cache first. The first run fetches the pinned sanity tools from PyPI (~2 min);
# later runs reuse ~/.ansible/test/venv and need no network.
#
# Usage: tests/ansible/run-ansible-test.sh [sanity|units|all] [extra ansible-test args...]
# Env:   PYTHON_VERSION (default: the venv's python X.Y), KEEP_TREE=1 keeps the temporary tree,
#        SKYDIVE_VENV (default <repo>/.venv).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${SKYDIVE_VENV:-$repo/.venv}"
what="${1:-all}"
shift || true

if [ ! -x "$venv/bin/ansible-test" ]; then
    echo "run-ansible-test: $venv/bin/ansible-test not found (install ansible-core into $venv)" >&2
    exit 2
fi
export PATH="$venv/bin:$PATH"
pyver="${PYTHON_VERSION:-$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}"

# get-pip stand-in, named after the pip version this ansible-test pins.
pip_version="$("$venv/bin/python" - <<'PY'
import re, ansible_test, os
src = open(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")).read()
m = re.search(r"pip='([0-9.]+)'", src)
print(m.group(1) if m else "")
PY
)"
if [ -z "$pip_version" ]; then
    echo "run-ansible-test: cannot find the pip version pinned by ansible-test" >&2
    exit 2
fi
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
install -m 0644 "$here/get_pip_standin.py" "$cache/get_pip_${pip_version//./_}.py"

work="$(mktemp -d "${TMPDIR:-/tmp}/skydive-ansible-test.XXXXXX")"
cleanup() {
    if [ "${KEEP_TREE:-0}" = "1" ]; then
        echo "run-ansible-test: tree kept in $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

ansible-galaxy collection build --force "$repo" --output-path "$work" >/dev/null
coll="$work/ansible_collections/skydive/skydive"
mkdir -p "$coll"
tar -xzf "$work"/skydive-skydive-*.tar.gz -C "$coll"
# MANIFEST.json/FILES.json are build products, not sources: drop them so the tree looks like a
# checkout, and put galaxy.yml back (the build replaces it by MANIFEST.json) so that
# ansible-test knows the collection version (version_added checks).
rm -f "$coll/MANIFEST.json" "$coll/FILES.json"
cp "$repo/galaxy.yml" "$coll/galaxy.yml"
cd "$coll"

rc=0
if [ "$what" = "sanity" ] || [ "$what" = "all" ]; then
    echo "== ansible-test sanity --python $pyver"
    ansible-test sanity --python "$pyver" --color no "$@" || rc=$?
fi
if [ "$what" = "units" ] || [ "$what" = "all" ]; then
    echo "== ansible-test units --python $pyver"
    ansible-test units --python "$pyver" --requirements --color no "$@" || rc=$?
fi
exit $rc
