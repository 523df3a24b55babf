# TripleO's own tooling for tests/deploy/test_tripleo.py (docs/tripleo.md, "How it is verified"):
# a real Heat (Debian's heat-all, run without Keystone as tripleoclient's ephemeral Heat), the
# tripleo-heat-templates 18.0.0 tree (only its sdist holds it) and python-tripleoclient 20.0.0 in a
# venv of its own (system site packages: Debian's heatclient and openstackclient), outside .venv.
APT_PACKAGES+=(heat-common python3-heatclient python3-openstackclient)

TRIPLEO_CACHE=${SKYDIVE_TRIPLEO_CACHE:-$HOME/.cache/skydive-tripleo}

post_tripleo() {
  mkdir -p "$TRIPLEO_CACHE"
  local sdist="$TRIPLEO_CACHE/tripleo-heat-templates-18.0.0.tar.gz"
  if [ ! -s "$sdist" ]; then
    echo "bootstrap: downloading the tripleo-heat-templates 18.0.0 sdist"
    .venv/bin/pip download -q --disable-pip-version-check --no-binary :all: --no-deps \
      -d "$TRIPLEO_CACHE" tripleo-heat-templates==18.0.0
  fi
  echo "09026a2ace181b1a2eeddb941504add4a10429a391bd265b4c04571f131b8b89  $sdist" | sha256sum -c --quiet
  local venv="$TRIPLEO_CACHE/venv"
  if ! "$venv/bin/python" -c 'import tripleoclient, tripleo_common, ansible_runner, git' 2>/dev/null; then
    echo "bootstrap: installing python-tripleoclient 20.0.0 into $venv"
    rm -rf "$venv"
    /usr/bin/python3 -m venv --system-site-packages "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps python-tripleoclient==20.0.0 tripleo-common==18.0.0
    "$venv/bin/pip" install -q --disable-pip-version-check ansible-runner GitPython 'ansible-core<2.20'
  fi
}
