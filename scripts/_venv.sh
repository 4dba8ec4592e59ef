# Sourced by scripts/test and scripts/demo: make .venv and install the project in it.
#
# The install is editable in setuptools' "compat" mode: that mode puts the repo
# root on sys.path through a .pth file, so twistd also finds our plugin in
# twisted/plugins/ (the default editable mode uses import hooks, which Twisted's
# plugin discovery cannot see).

: "${PYTHON:=python3}"
VENV=.venv

ensure_venv() {
    if [ -x "$VENV/bin/python" ]; then
        return
    fi
    if ! "$PYTHON" -m venv "$VENV"; then
        # Debian's own python3 needs python3-venv for this; install it when we can.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            rm -rf "$VENV"
            apt-get update
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv
            "$PYTHON" -m venv "$VENV"
        else
            echo "$0: cannot create $VENV with $PYTHON (on Debian: apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
}

# install_project [EXTRAS]: pip install -e '.[EXTRAS]' into .venv
install_project() {
    local spec=.
    if [ -n "${1:-}" ]; then
        spec=".[$1]"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --editable "$spec" --config-settings editable_mode=compat
}

# project_installed: true when .venv already runs this checkout's code and scripts
# (an editable install of it), so that a second ./scripts/demo skips pip.
project_installed() {
    [ -x "$VENV/bin/msmtp" ] && [ -x "$VENV/bin/twistd" ] || return 1
    local here
    here="$(pwd -P)"
    (cd / && "$here/$VENV/bin/python" -c 'import msmtp_twisted, sys
sys.exit(not msmtp_twisted.__file__.startswith(sys.argv[1] + "/"))' "$here") 2>/dev/null
}

# extra_requirements EXTRA: print the requirements of an extra, as pyproject.toml's
# [project.optional-dependencies] lists them.
extra_requirements() {
    "$VENV/bin/python" - "$1" <<'PY'
import sys, tomllib
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
for requirement in project["optional-dependencies"][sys.argv[1]]:
    print(requirement)
PY
}

# install_for_tests: the project with its [test] extra into .venv, then each optional
# extra (OPTIONAL_EXTRAS) on its own: one that cannot be installed (gssapi has no wheel
# and builds against the system's Kerberos: libkrb5-dev) is reported, never fatal; its
# tests skip (or fail under CI=true) as tests/conftest.py's require() says.
#
# Quick when nothing changed: a stamp in .venv records what was installed for which
# setup files and system state, and pip runs only when that changes.
OPTIONAL_EXTRAS=(ntlm gssapi bench buildbot)
# what the tests of an extra need besides the extra itself: the Buildbot tests run a
# real master with a worker in it (LocalWorker)
declare -A EXTRA_TEST_REQUIREMENTS=([buildbot]="buildbot-worker>=4.2,<5")
EXTRAS_MISSING=()
install_for_tests() {
    local stamp="$VENV/.scripts-test-installed" key
    key="$(cat setup.cfg setup.py pyproject.toml | sha256sum | cut -c1-16)"
    key+=" krb5-config=$(command -v krb5-config || echo none) cc=$(command -v cc || echo none)"
    if [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$key" ]; then
        mapfile -t EXTRAS_MISSING < <(tail -n +2 "$stamp")
        echo "== python packages: installed already (.venv)"
        return 0
    fi
    echo "== python packages: installing the project and its [test] and [docs] extras into .venv"
    install_project test,docs
    EXTRAS_MISSING=()
    local extra log reason
    for extra in "${OPTIONAL_EXTRAS[@]}"; do
        log=$(mktemp)
        # shellcheck disable=SC2046
        if "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
                $(extra_requirements "$extra") ${EXTRA_TEST_REQUIREMENTS[$extra]:-} \
                >"$log" 2>&1; then
            echo "   extra [$extra]: installed"
        else
            echo "   extra [$extra]: NOT INSTALLED (its tests skip, or fail under CI=true):"
            { grep -E -i 'error|not found' "$log" || tail -n 3 "$log"; } | head -n 5 \
                | sed 's/^/     | /' || true
            reason=$(grep -E -o -i '[a-z0-9_.-]+: (command )?not found' "$log" | head -n 1 || true)
            EXTRAS_MISSING+=("[$extra] (pip install failed${reason:+: $reason})")
        fi
        rm -f "$log"
    done
    {
        echo "$key"
        if [ "${#EXTRAS_MISSING[@]}" -gt 0 ]; then printf '%s\n' "${EXTRAS_MISSING[@]}"; fi
    } >"$stamp"
}
