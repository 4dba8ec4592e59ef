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
