#!/usr/bin/env bash
# Python dependencies, installed only from the committed lock (uv.lock, with hashes).
#
#   scripts/deps.sh sync [uv sync flags]   make .venv exactly what uv.lock says (make run, test, bench)
#   scripts/deps.sh check                  fail, saying what to do, when pyproject.toml and uv.lock disagree
#   scripts/deps.sh lock                   re-lock after editing pyproject.toml, changing no other version
#   scripts/deps.sh upgrade                re-resolve everything (and uv itself) to the newest releases
#   scripts/deps.sh lowest                 $VENV-lowest: the runtime dependencies at their lower bounds
#
# Why uv: one tool resolves every extra into one universal lock with hashes, refuses a stale lock
# (--locked), and re-locks on purpose (--upgrade); pip-tools would need a requirements file per
# extra combination, and pip alone checks hashes but resolves nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TOOL_VENV=${UV_TOOL_VENV:-.cache/uv} # where uv itself is installed
UV=$TOOL_VENV/bin/uv
PINNED=scripts/uv-requirements.txt

# uv installs into $VENV with the interpreter make chose, never downloads a Python of its own,
# and trusts the system's certificate store (as pip does here).
export UV_PROJECT_ENVIRONMENT=$VENV UV_PYTHON=$PYTHON UV_PYTHON_DOWNLOADS=never UV_SYSTEM_CERTS=1

pinned_version() { sed -n 's/^uv==\([0-9.]*\).*/\1/p' "$PINNED"; }

# uv lives in a virtualenv of its own: `uv sync` makes $VENV exactly the lock's, which would
# remove uv itself from it.
bootstrap() {
    local want
    want=$(pinned_version)
    if [ -x "$UV" ] && [ "$("$UV" --version | cut -d' ' -f2)" = "$want" ]; then
        return
    fi
    PYTHON=$PYTHON scripts/system-deps.sh venv
    rm -rf "$TOOL_VENV"
    "$PYTHON" -m venv "$TOOL_VENV"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$TOOL_VENV/bin/pip" install -q --require-hashes -r "$PINNED"
}

check() {
    local out
    if out=$("$UV" lock --check 2>&1); then
        return
    fi
    if ! grep -q -e "needs to be updated" -e "No solution found" <<<"$out"; then
        echo "$out" >&2 # not a stale lock (no network, a broken pyproject.toml): uv says what
        exit 1
    fi
    grep -e "^error:" -e "^  cause:" <<<"$out" >&2 || true
    cat >&2 <<'EOF'
pyproject.toml and uv.lock disagree: the lock no longer satisfies the dependencies declared.
  - changed pyproject.toml on purpose?  run `make lock`, review `git diff uv.lock`, commit both
  - want the newest releases?           run `make upgrade` (re-locks and runs the suite)
Nothing was installed.
EOF
    exit 1
}

upgrade_uv() {
    local newest
    newest=$(printf 'uv\n' | "$UV" pip compile - --no-header --quiet | sed -n 's/^uv==//p')
    [ "$newest" = "$(pinned_version)" ] && return
    echo "uv: $(pinned_version) -> $newest" >&2
    {
        sed -n '/^#/p' "$PINNED"
        printf 'uv==%s\n' "$newest" |
            "$UV" pip compile - --generate-hashes --universal --no-header --quiet
    } >"$PINNED.new"
    mv "$PINNED.new" "$PINNED"
    bootstrap
}

# The bounds library users see, each at its lowest: `make test-lowest` runs the suite on them, so
# a lower bound in pyproject.toml is a release the suite has passed on, not a guess. The tooling
# (pytest and the rest) resolves as it may: it is not what the bounds promise.
lowest() {
    local venv=$VENV-lowest constraints=.cache/lower-bounds.txt
    mkdir -p .cache
    "$PYTHON" - >"$constraints" <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
for line in project["dependencies"] + extras["speed"] + extras["aiohttp-session"]:
    name, bound = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[.*\])?>=([^,;]+)", line).groups()
    print(f"{name}=={bound}")
PY
    "$UV" venv --quiet --allow-existing "$venv"
    "$UV" pip install --python "$venv/bin/python" --quiet --constraint "$constraints" \
        -e ".[test,speed,aiohttp-session]"
    "$UV" pip list --python "$venv/bin/python" 2>/dev/null |
        grep -i -f <(cut -d= -f1 "$constraints" | sed 's/^/^/;s/$/ /') >&2
}

bootstrap
case "${1:-}" in
sync)
    shift
    check
    "$UV" sync --locked --quiet "$@"
    ;;
check) check ;;
lock) "$UV" lock ;;
upgrade)
    upgrade_uv
    "$UV" lock --upgrade
    ;;
lowest) lowest ;;
*)
    echo "usage: $0 sync [uv sync flags] | check | lock | upgrade | lowest" >&2
    exit 2
    ;;
esac
