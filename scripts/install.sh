#!/usr/bin/env bash
# Idempotent set-up: the virtual environment at .venv (project installed editable with dev
# extras, reinstalled only when pyproject.toml changed) and the local stack's dependencies
# (Debian packages, Kafka jars via Maven: `cityhealth stack install`, cached).
set -euo pipefail
cd "$(dirname "$0")/.."

python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

if [ ! -x .venv/bin/python ]; then
  py=""
  for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
      py="$candidate"
      break
    fi
  done
  if [ -z "$py" ]; then
    echo "error: Python >= 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
    exit 1
  fi
  if ! "$py" -c 'import ensurepip' >/dev/null 2>&1; then
    # Debian splits venv/ensurepip out of python3: a fresh machine lacks it.
    if command -v apt-get >/dev/null 2>&1; then
      sudo=""
      if [ "$(id -u)" -ne 0 ]; then sudo="sudo -n"; fi
      venv_pkg="python$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
      echo "installing $venv_pkg (python -m venv needs it)"
      # sudo resets the environment: pass DEBIAN_FRONTEND through env(1).
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$venv_pkg"
    else
      echo "error: $py has no ensurepip/venv support; install your distribution's venv package" >&2
      exit 1
    fi
  fi
  echo "creating .venv with $("$py" --version)"
  "$py" -m venv .venv
fi
if ! python_ok .venv/bin/python; then
  echo "error: .venv uses $(.venv/bin/python --version); remove .venv to recreate it with 3.11+" >&2
  exit 1
fi

stamp=.venv/.cityhealth-pyproject.sha256
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -x .venv/bin/cityhealth ]; then
  echo "installing the project into .venv (pip install -e '.[dev]')"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  echo "$want" > "$stamp"
fi

.venv/bin/cityhealth stack install
