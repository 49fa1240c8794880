#!/usr/bin/env bash
# ./run.sh pipeline [snakemake args]   the reproduction pipeline (default: config.yaml)
# ./run.sh report [snakemake args]     report.html: the table and figures (after the pipeline)
# ./run.sh test [pytest args]          the test suite
# Each creates .venv and installs what it needs on first use (or when pyproject.toml changes).
set -euo pipefail
cd "$(dirname "$0")"

setup() {  # $1: pip extras
    local stamp=".venv/.installed-$1"
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        .venv/bin/python -m pip install --quiet --upgrade pip
        .venv/bin/python -m pip install --quiet -e ".[$1]"
        touch "$stamp"
    fi
}

clear_stale_lock() {  # a run killed by SIGKILL leaves Snakemake's lock behind
    local workdir="$PWD" previous="" arg
    for arg in "$@"; do  # the working folder the run names (--directory / -d), if any
        case "$previous" in --directory|-d) workdir="$arg" ;; esac
        case "$arg" in --directory=*) workdir="${arg#*=}" ;; esac
        previous="$arg"
    done
    [ -n "$(ls -A "$workdir/.snakemake/locks" 2>/dev/null)" ] || return 0
    workdir="$(cd "$workdir" && pwd -P)"
    for pid in $(pgrep -f snakemake || true); do
        [ "$pid" != "$$" ] && [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$workdir" ] && return 0
    done
    echo "run.sh: removing the lock of a killed run in $workdir (no Snakemake process runs there)"
    .venv/bin/snakemake --unlock --cores 1 "$@" > /dev/null
}

# The arguments with every --configfile's files gathered into one --configfile at the end:
# Snakemake keeps only the last --configfile flag, while each file given should count.
# Sets ARGS and CONFIG_FILES.
gather_config_files() {
    local collecting=0 arg
    ARGS=() CONFIG_FILES=()
    for arg in "$@"; do
        case "$arg" in
            --configfile|--configfiles) collecting=1 ;;
            --configfile=*|--configfiles=*) CONFIG_FILES+=("${arg#*=}"); collecting=0 ;;
            -*) collecting=0; ARGS+=("$arg") ;;
            *) if [ "$collecting" = 1 ]; then CONFIG_FILES+=("$arg"); else ARGS+=("$arg"); fi ;;
        esac
    done
    if [ "${#CONFIG_FILES[@]}" -gt 0 ]; then
        ARGS+=(--configfile "${CONFIG_FILES[@]}")
    fi
}

check_config_files() {  # Snakemake reports a YAML syntax error without file or line
    local files=()
    [ -f config.yaml ] && files+=(config.yaml)
    .venv/bin/python -m maml check-yaml "${files[@]}" "${CONFIG_FILES[@]}"
}

command="${1:-}"
shift || true
case "$command" in
    pipeline)
        setup pipeline
        gather_config_files "$@"
        check_config_files
        clear_stale_lock "${ARGS[@]}"
        exec .venv/bin/snakemake --cores all "${ARGS[@]}"
        ;;
    report)
        setup pipeline
        gather_config_files "$@"
        check_config_files
        exec .venv/bin/snakemake --cores 1 --report report.html "${ARGS[@]}"
        ;;
    test)
        setup test
        exec .venv/bin/python -m pytest "$@"
        ;;
    *)
        echo "usage: ./run.sh pipeline [snakemake args] | ./run.sh report [snakemake args] |" \
            "./run.sh test [pytest args]" >&2
        exit 2
        ;;
esac
