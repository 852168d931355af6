# Sourced by the install scripts (scripts/test.sh, scripts/socketio-deps.sh):
# `apt_ensure COMMAND PACKAGE WHY` installs Debian's PACKAGE with apt-get when
# COMMAND is not on the PATH (as root, or through sudo), and fails with the
# install command when it cannot.
apt_ensure() {
    local command="$1" package="$2" why="$3" sudo=""
    command -v "$command" >/dev/null 2>&1 && return 0
    echo "--- installing $package ($why)"
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            echo "$command is missing and cannot be installed (not root, no sudo):" >&2
            echo "install it with your package manager (Debian: apt-get install $package)" >&2
            return 1
        fi
    fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q -o DPkg::Lock::Timeout=300 "$package"
}
