#!/usr/bin/env bash
# Build the real Pulumi engine (CLI, Node.js language host, providers) from the
# Go module proxy alone, into a cache keyed by component and version.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/engine/build.sh [--check] [COMPONENT...]

Builds the Pulumi engine this project needs from published Go modules (the Go
module proxy is the only source), caches each binary under
  ${GITLAB_CLUSTER_ENGINE_CACHE:-~/.cache/gitlab-cluster-engine}/<component>-<version>/bin/
and links it into .../bin/, the directory to put on PATH (the engine finds
pulumi-language-nodejs and pulumi-resource-<name> there as ambient plugins).
A component already in the cache is only verified, never rebuilt.

components (default: all, in this order):
  cli      pulumi                    github.com/pulumi/pulumi/pkg/v3 (cmd/pulumi)
  nodejs   pulumi-language-nodejs    github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3
  command  pulumi-resource-command   github.com/pulumi/pulumi-command/provider
  random   pulumi-resource-random    github.com/pulumi/pulumi-random/provider/v4
  docker   pulumi-resource-docker    github.com/pulumi/pulumi-docker/provider/v4

options:
  --check    verify the cached binaries only; build and download nothing
  -h, --help this text

environment:
  GITLAB_CLUSTER_ENGINE_CACHE  cache root (default ~/.cache/gitlab-cluster-engine)

exit codes:
  0  every requested component is built (or cached) and verified
  1  a download, build or verification failed (its log is named)
  2  usage error
  3  a requested component cannot be built here: the Go module proxy refuses
     its module at the pinned version, or no build recipe exists for it yet;
     the other components were still built
  4  --check: a requested component is not in the cache or fails verification
EOF
}

CACHE=${GITLAB_CLUSTER_ENGINE_CACHE:-$HOME/.cache/gitlab-cluster-engine}
ALL_COMPONENTS=(cli nodejs command random docker)

# --- pinned versions --------------------------------------------------------
# The CLI and the Go SDK every wrapper builds against.
PULUMI_VERSION=3.274.1
# Same replace as pulumi's own pkg/go.mod (a dependency's replaces do not apply
# to the module that requires it, so the wrapper repeats it).
CLIPBOARD_REPLACE="github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e"
# The language host is a module of its own with no tags, so it has only
# pseudo-versions. This one is the commit of tag v3.259.0, the newest release
# commit whose hash we could establish (the proxy's .info for pkg/sdk v3.274.1
# carries no commit, so the v3.274.1 pseudo-version cannot be derived here).
NODEJS_VERSION=3.259.0
NODEJS_MODULE_VERSION=v3.0.0-20260819165155-0ac56e876614
# pulumi-command tags vX.Y.Z at the repository root, but its Go module lives in
# provider/, so the module has only pseudo-versions: this is the v1.2.1 commit.
COMMAND_VERSION=1.2.1
COMMAND_MODULE_VERSION=v0.0.0-20260303235922-7f3eb6f3b77c
# Bridged providers: the newest releases whose other dependencies (the
# terraform bridge, pulumi's terraform-plugin-sdk fork) the proxy serves.
# random v4.19.2+ needs bridge v3.125.0 and docker v4.11.2 needs it too: refused.
RANDOM_VERSION=4.19.1
RANDOM_MODULE_VERSION=v4.0.0-20260128034448-cf143e6acc9c
DOCKER_VERSION=4.11.1
DOCKER_MODULE_VERSION=v4.0.0-20260313125519-20ef3ab325a6

# --- output ---------------------------------------------------------------
START=$(date +%s)
say() { printf '[%4ds] %s\n' "$(($(date +%s) - START))" "$*"; }
die() { echo "build.sh: $*" >&2; exit 2; }

# --- arguments --------------------------------------------------------------
CHECK_ONLY=false
REQUESTED=()
while (($#)); do
    case $1 in
        --check) CHECK_ONLY=true ;;
        -h|--help) usage; exit 0 ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *)
            case " ${ALL_COMPONENTS[*]} " in
                *" $1 "*) REQUESTED+=("$1") ;;
                *) die "unknown component '$1'; one of: ${ALL_COMPONENTS[*]}" ;;
            esac ;;
    esac
    shift
done
((${#REQUESTED[@]})) || REQUESTED=("${ALL_COMPONENTS[@]}")

# --- component table --------------------------------------------------------
# Sets, for component $1: VERSION, BINARY, MODULE (the module that has the
# main package), MODULE_VERSION, MAIN (the main package), LDFLAGS, RECIPE.
describe() {
    case $1 in
        cli)
            VERSION=$PULUMI_VERSION BINARY=pulumi
            MODULE=github.com/pulumi/pulumi/pkg/v3 MODULE_VERSION=v$PULUMI_VERSION
            MAIN=$MODULE/cmd/pulumi
            LDFLAGS="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION"
            RECIPE=go-main ;;
        nodejs)
            VERSION=$NODEJS_VERSION BINARY=pulumi-language-nodejs
            MODULE=github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3
            MODULE_VERSION=$NODEJS_MODULE_VERSION MAIN=$MODULE
            LDFLAGS="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$NODEJS_VERSION"
            RECIPE=go-main ;;
        command)
            VERSION=$COMMAND_VERSION BINARY=pulumi-resource-command
            MODULE=github.com/pulumi/pulumi-command/provider MODULE_VERSION=$COMMAND_MODULE_VERSION
            MAIN=$MODULE/cmd/pulumi-resource-command
            # The engine matches a plugin to the version the npm SDK asks for.
            LDFLAGS="-X $MODULE/pkg/version.Version=$COMMAND_VERSION"
            RECIPE=go-main ;;
        random)
            VERSION=$RANDOM_VERSION BINARY=pulumi-resource-random
            MODULE=github.com/pulumi/pulumi-random/provider/v4 MODULE_VERSION=$RANDOM_MODULE_VERSION
            MAIN='' LDFLAGS='' RECIPE=bridged ;;
        docker)
            VERSION=$DOCKER_VERSION BINARY=pulumi-resource-docker
            MODULE=github.com/pulumi/pulumi-docker/provider/v4 MODULE_VERSION=$DOCKER_MODULE_VERSION
            MAIN='' LDFLAGS='' RECIPE=bridged ;;
    esac
    DIR=$CACHE/$1-$VERSION
    BIN=$DIR/bin/$BINARY
}

# --- verification -----------------------------------------------------------
# A CLI proves itself with `pulumi version`; a plugin by starting and printing
# the port it serves on, as the engine expects of it.
verify() {
    local component=$1 out pid portfile i
    [[ -x $BIN ]] || return 1
    if [[ $component == cli ]]; then
        out=$(PULUMI_SKIP_UPDATE_CHECK=true "$BIN" version 2>&1) || return 1
        [[ $out == "v$VERSION" ]] || { echo "  $BINARY version says '$out', expected v$VERSION" >&2; return 1; }
        echo "  $BINARY version: $out"
        return 0
    fi
    portfile=$(mktemp)
    "$BIN" >"$portfile" 2>/dev/null &
    pid=$!
    for ((i = 0; i < 100; i++)); do
        [[ -s $portfile ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    out=$(head -n1 "$portfile")
    rm -f "$portfile"
    [[ $out =~ ^[0-9]+$ ]] || { echo "  $BINARY did not print a port on start (got '$out')" >&2; return 1; }
    echo "  $BINARY started and listened on port $out"
}

link_into_path_dir() {
    mkdir -p "$CACHE/bin"
    ln -sfn "../$(basename "$DIR")/bin/$BINARY" "$CACHE/bin/$BINARY"
}

# --- running a long step in the background with progress ----------------------
# run_logged LOG COMMAND...: runs COMMAND niced, output to LOG, and every 20s
# prints how many modules it downloaded and packages it compiled so far.
run_logged() {
    local log=$1 pid rc=0 next downloads packages last
    shift
    nice -n 10 "$@" >"$log" 2>&1 &
    pid=$!
    next=$(($(date +%s) + 20))
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        if (($(date +%s) >= next)) && kill -0 "$pid" 2>/dev/null; then
            next=$((next + 20))
            downloads=$(grep -c '^go: downloading' "$log" || true)
            packages=$(grep -vc '^go: ' "$log" || true)
            last=$(tail -n1 "$log" | cut -c1-90)
            say "  ... $downloads modules downloaded, $packages packages compiled; last: $last"
        fi
    done
    wait "$pid" || rc=$?
    return "$rc"
}

# Is this failure the proxy refusing a module version (rather than a build error)?
refused_by_proxy() {
    grep -qE '(403 Forbidden|404 Not Found|410 Gone|not available|unknown revision|invalid version)' "$1"
}

# --- recipes ------------------------------------------------------------------
# fetch_module: download the component's own module first, so that a refusal
# by the proxy names exactly that module@version. Returns 3 when refused.
fetch_module() {
    local component=$1 probe=$DIR/probe t
    mkdir -p "$probe"
    printf 'module gitlab-cluster.local/engine/%s-probe\n\ngo 1.26\n' "$component" >"$probe/go.mod"
    t=$(date +%s)
    say "[$component] fetch $MODULE@$MODULE_VERSION (log: $DIR/fetch.log)"
    if ! (cd "$probe" && run_logged "$DIR/fetch.log" go mod download -json "$MODULE@$MODULE_VERSION"); then
        if refused_by_proxy "$DIR/fetch.log"; then
            say "[$component] NOT SERVED: the Go module proxy refuses $MODULE@$MODULE_VERSION:"
            sed -n 's/^[[:space:]]*"Error": "\(.*\)",*$/\1/p' "$DIR/fetch.log" | sed 's/\\n\\t/ | /g; s/^/    /'
            return 3
        fi
        tail -n20 "$DIR/fetch.log" | sed 's/^/    /'
        return 1
    fi
    say "[$component] fetched in $(($(date +%s) - t))s"
}

# go-main: a wrapper module of ours that requires the component's module (and
# the pinned Go SDK) and builds its main package with the version stamped in.
build_go_main() {
    local component=$1 src=$DIR/src t
    fetch_module "$component" || return
    mkdir -p "$src" "$DIR/bin"
    # Generated fresh each time: go get fills in requirements and go.sum.
    cat >"$src/go.mod" <<EOF
module gitlab-cluster.local/engine/$component

go 1.26

replace $CLIPBOARD_REPLACE
EOF
    rm -f "$src/go.sum"
    t=$(date +%s)
    say "[$component] resolve $MAIN and its dependencies (log: $DIR/get.log)"
    if ! (cd "$src" && run_logged "$DIR/get.log" go get "$MAIN@$MODULE_VERSION" "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION"); then
        tail -n20 "$DIR/get.log" | sed 's/^/    /'
        return 1
    fi
    say "[$component] resolved in $(($(date +%s) - t))s"
    t=$(date +%s)
    say "[$component] go build $MAIN (nice -n 10; log: $DIR/build.log)"
    if ! (cd "$src" && run_logged "$DIR/build.log" go build -v -o "$BIN.tmp" -ldflags "$LDFLAGS" "$MAIN"); then
        tail -n20 "$DIR/build.log" | sed 's/^/    /'
        return 1
    fi
    mv "$BIN.tmp" "$BIN"
    say "[$component] built in $(($(date +%s) - t))s"
}

# bridged: a provider bridged from Terraform needs the provider's own module
# (its ProviderInfo, its shim of the Terraform provider) before anything else.
# Only that fetch is written: no release of either provider module is served,
# so the rest of the recipe (shim, tfgen, embedded schema) could not be tested.
build_bridged() {
    local component=$1
    fetch_module "$component" || return
    say "[$component] $MODULE@$MODULE_VERSION is served now, but the bridged build recipe (shim, tfgen, embedded schema) is not written yet"
    return 3
}

# --- main -------------------------------------------------------------------
command -v go >/dev/null || { echo "build.sh: needs Go (go1.26+) on PATH" >&2; exit 1; }
say "engine cache: $CACHE ($($CHECK_ONLY && echo 'check only' || echo 'build what is missing'); $(go env GOVERSION))"
declare -A RESULT
worst=0
for component in "${REQUESTED[@]}"; do
    describe "$component"
    say "[$component] $BINARY $VERSION"
    if verify "$component" 2>/dev/null; then
        link_into_path_dir
        RESULT[$component]="cached  $BIN"
        continue
    fi
    if $CHECK_ONLY; then
        say "[$component] MISSING from the cache: $BIN"
        RESULT[$component]="missing $BIN"
        worst=4
        continue
    fi
    rc=0
    case $RECIPE in
        go-main) build_go_main "$component" || rc=$? ;;
        bridged) build_bridged "$component" || rc=$? ;;
    esac
    if ((rc == 0)) && ! verify "$component"; then
        rm -f "$BIN"
        rc=1
    fi
    case $rc in
        0) link_into_path_dir; RESULT[$component]="built   $BIN" ;;
        3) RESULT[$component]="refused $MODULE@$MODULE_VERSION"; ((worst == 1)) || worst=3 ;;
        *) RESULT[$component]="FAILED  see $DIR/*.log"; worst=1 ;;
    esac
done

say "summary:"
for component in "${REQUESTED[@]}"; do
    printf '  %-8s %s\n' "$component" "${RESULT[$component]}"
done
say "put this directory on PATH: $CACHE/bin"
echo "  export PATH=\"$CACHE/bin:\$PATH\""
exit "$worst"
