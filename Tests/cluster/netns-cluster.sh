#!/usr/bin/env bash
# netns-cluster.sh — real corosync 3 clusters of N nodes on one host, one
# network namespace per node, for testing clustered logs over CPG.
#
#   netns-cluster.sh up [N]            N = 2..5 (default 3); waits until quorate
#   netns-cluster.sh down              stops everything started here; idempotent
#   netns-cluster.sh exec K cmd...     runs cmd as a client of node K
#   netns-cluster.sh kill-corosync K   kill -9 node K's corosync
#   netns-cluster.sh start-corosync K  (re)starts node K's corosync
#   netns-cluster.sh partition K       cuts node K off the bridge
#   netns-cluster.sh heal K            puts node K back on the bridge
#   netns-cluster.sh wait-members K M [quorate|inquorate] [SECS]
#                                      waits until node K sees M members
#   netns-cluster.sh status            membership/quorum view from every node
#   netns-cluster.sh selftest          up 3, partition, heal, kill, start, down
#
# Environment:
#   CLUSTER_PREFIX   namespace name prefix (default "mld-"; selftest: "mldst-")
#   CLUSTER_NET      first three octets of the test /24 (default 10.250.7)
#   CLUSTER_TOKEN_MS corosync totem token timeout in ms (default 1000)
#   CLUSTER_WAIT     seconds `up` waits for N quorate members (default 60)
#   TMPDIR           where the state file and per-cluster temp dir go (/tmp)
#
# See README.md beside this file for the design.  Needs root, iproute2,
# util-linux (unshare) and corosync 3 (scripts/install-deps.sh installs it).

set -euo pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
PROG=netns-cluster.sh

PREFIX=${CLUSTER_PREFIX:-mld-}
NET=${CLUSTER_NET:-10.250.7}
TOKEN_MS=${CLUSTER_TOKEN_MS:-1000}
UP_WAIT=${CLUSTER_WAIT:-60}
BASE=${TMPDIR:-/tmp}
TAGVAR=MLD_NETNS_CLUSTER        # environment tag carried by every corosync we start
MARKER=.mld-netns-cluster       # marker file in our temp dir (rm -rf only with it)
MAXN=5

die()  { echo "$PROG: $*" >&2; exit 1; }
note() { echo "$PROG: $*" >&2; }

# ---------------------------------------------------------------- naming ---

set_prefix() {
    PREFIX=$1
    [[ $PREFIX =~ ^[a-z][a-z0-9-]{0,11}$ ]] ||
        die "CLUSTER_PREFIX '$PREFIX' must match [a-z][a-z0-9-]{0,11}"
    TAG=${PREFIX%-}
    BRNS=${PREFIX}br
    STATE=$BASE/netns-cluster-$TAG-state
}

check_net() {
    [[ $NET =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] ||
        die "CLUSTER_NET '$NET' must be three octets, e.g. 10.250.7"
    local o
    for o in "${BASH_REMATCH[@]:1}"; do (( o <= 255 )) || die "bad CLUSTER_NET '$NET'"; done
}

nodens()   { echo "${PREFIX}n$1"; }
nodeaddr() { echo "$NET.$1"; }

# ----------------------------------------------------------------- state ---
# The state file is key=value lines: prefix, n, net, dir, pid.K.

state_get() {   # key -> value (empty if absent)
    [[ -f $STATE ]] || return 0
    local k v
    while IFS='=' read -r k v; do
        [[ $k == "$1" ]] && { echo "$v"; return 0; }
    done < "$STATE"
    return 0
}

state_set() {   # key value
    local tmp
    tmp=$(mktemp "$STATE.XXXXXX")
    if [[ -f $STATE ]]; then
        grep -v "^$1=" "$STATE" > "$tmp" || true
    fi
    echo "$1=$2" >> "$tmp"
    mv -f "$tmp" "$STATE"
}

load_state() {
    [[ -f $STATE ]] || die "no cluster with prefix '$PREFIX' (no $STATE); run: $PROG up"
    N=$(state_get n)
    DIR=$(state_get dir)
    local net
    net=$(state_get net)
    [[ -n $net ]] && NET=$net
    [[ $N =~ ^[2-5]$ && -d $DIR && -f $DIR/$MARKER ]] || die "state file $STATE is damaged; run: $PROG down"
}

check_node() {
    [[ ${1:-} =~ ^[1-9][0-9]*$ ]] && (( $1 <= N )) || die "node must be 1..$N, got '${1:-}'"
}

# ------------------------------------------------------------- processes ---

ns_exists() { [[ -e /run/netns/$1 ]]; }

tagged_pids() {   # extended regex for the tag value -> pids of our tagged processes
    local p
    for p in /proc/[0-9]*; do
        grep -qzE "^$TAGVAR=$1\$" "$p/environ" 2> /dev/null && echo "${p#/proc/}"
    done
    return 0
}

corosync_pid() {  # node -> pid of its corosync, if running
    local p
    for p in $(tagged_pids "$(nodens "$1")"); do
        [[ $(cat "/proc/$p/comm" 2> /dev/null) == corosync ]] && { echo "$p"; return 0; }
    done
    return 0
}

alive() { kill -0 "$1" 2> /dev/null && [[ $(awk '{print $3}' "/proc/$1/stat" 2> /dev/null) != Z ]]; }

wait_gone() {     # secs pid... -> 0 if all gone in time
    local deadline=$(( SECONDS + $1 )) p left
    shift
    while :; do
        left=0
        for p in "$@"; do alive "$p" && left=1; done
        (( left )) || return 0
        (( SECONDS < deadline )) || return 1
        sleep 0.2
    done
}

stop_pids() {     # TERM, wait up to 10 s, then KILL and wait up to 5 s
    (( $# )) || return 0
    kill -TERM "$@" 2> /dev/null || true
    wait_gone 10 "$@" && return 0
    note "sending KILL to $*"
    kill -KILL "$@" 2> /dev/null || true
    wait_gone 5 "$@" || note "processes $* did not exit"
}

# ------------------------------------------------------ node environment ---

# Runs "$@" inside node K's network namespace and a fresh mount namespace in
# which the node's own directories are bind-mounted over corosync's paths.
# Every entry of node K builds the same view, so a client started this way
# sees the same /run, /dev/shm and /etc/corosync as node K's corosync.
in_node() {       # node cmd...
    local k=$1
    shift
    ip netns exec "$(nodens "$k")" unshare --mount --propagation private -- \
        "$SELF" __enter "$DIR/n$k" "$@"
}

do_enter() {      # (internal) dir cmd...
    local d=$1 m
    shift
    for m in etc:/etc/corosync lib:/var/lib/corosync log:/var/log/corosync \
             shm:/dev/shm run:/run; do
        mount --bind "$d/${m%%:*}" "${m#*:}"
    done
    exec "$@"
}

write_conf() {    # node
    local k=$1 j f=$DIR/n$1/etc/corosync.conf
    {
        echo "# generated by $PROG for node $k of $N (prefix $PREFIX)"
        echo "totem {"
        echo "    version: 2"
        echo "    cluster_name: $TAG"
        echo "    transport: knet"
        echo "    ip_version: ipv4"
        echo "    crypto_cipher: none"
        echo "    crypto_hash: none"
        echo "    token: $TOKEN_MS"
        echo "}"
        echo "nodelist {"
        for (( j = 1; j <= N; j++ )); do
            echo "    node {"
            echo "        nodeid: $j"
            echo "        name: n$j"
            echo "        ring0_addr: $(nodeaddr "$j")"
            echo "    }"
        done
        echo "}"
        echo "quorum {"
        echo "    provider: corosync_votequorum"
        echo "}"
        echo "logging {"
        echo "    to_logfile: yes"
        echo "    logfile: /var/log/corosync/corosync.log"
        echo "    to_stderr: no"
        echo "    to_syslog: no"
        echo "    timestamp: on"
        echo "    debug: off"
        echo "}"
    } > "$f"
}

start_node() {    # node -> starts corosync -f in the background, waits for its IPC
    local k=$1 pid deadline
    pid=$(corosync_pid "$k")
    [[ -n $pid ]] && { note "node $k: corosync already running (pid $pid)"; return 0; }
    setsid env -u NOTIFY_SOCKET "$TAGVAR=$(nodens "$k")" \
        ip netns exec "$(nodens "$k")" unshare --mount --propagation private -- \
        "$SELF" __enter "$DIR/n$k" corosync -f \
        < /dev/null >> "$DIR/n$k/corosync.out" 2>&1 &
    deadline=$(( SECONDS + 20 ))
    while :; do
        pid=$(corosync_pid "$k")
        if [[ -n $pid ]] && in_node "$k" timeout 5 corosync-cfgtool -s > /dev/null 2>&1; then
            break
        fi
        if (( SECONDS >= deadline )); then
            note "node $k: corosync did not come up; last lines of its logs:"
            tail -n 5 "$DIR/n$k/corosync.out" "$DIR/n$k/log/corosync.log" >&2 2> /dev/null || true
            return 1
        fi
        sleep 0.3
    done
    state_set "pid.$k" "$pid"
    note "node $k: corosync pid $pid"
}

# ---------------------------------------------------------- quorum views ---

# view K -> "down" or "<members> <yes|no> <id,id,...>" as node K's corosync sees it
view() {
    local out members quorate ids
    if [[ -z $(corosync_pid "$1") ]]; then echo down; return 0; fi
    out=$(in_node "$1" timeout 5 corosync-quorumtool -s 2>&1) || true
    members=$(awk -F: '/^Nodes:/ {gsub(/ /, "", $2); print $2}' <<< "$out")
    quorate=$(awk -F: '/^Quorate:/ {gsub(/ /, "", $2); print tolower($2)}' <<< "$out")
    ids=$(awk '/^Membership information/ {m = 1; next} m && $1 ~ /^[0-9]+$/ {print $1}' <<< "$out" |
          paste -sd, -)
    if [[ -z $members || -z $quorate ]]; then echo down; return 0; fi
    echo "$members $quorate ${ids:-?}"
}

# wait_view K members quorate|inquorate|any secs -> 0 when node K sees it
wait_view() {
    local k=$1 m=$2 q=$3 deadline=$(( SECONDS + $4 )) v want
    case $q in quorate) want=yes ;; inquorate) want=no ;; *) want='*' ;; esac
    while :; do
        v=$(view "$k")
        # shellcheck disable=SC2053
        [[ $v != down && ${v%% *} == "$m" && $(cut -d' ' -f2 <<< "$v") == $want ]] && return 0
        (( SECONDS < deadline )) || { LAST_VIEW=$v; return 1; }
        sleep 0.5
    done
}

linked() {        # node -> 0 if its bridge port is on the bridge
    ip -n "$BRNS" -o link show "p$1" 2> /dev/null | grep -q " master br0 "
}

# ------------------------------------------------------------- commands ---

cmd_up() {
    N=${1:-3}
    [[ $N =~ ^[2-5]$ ]] || die "N must be 2..$MAXN, got '$N'"
    check_net
    (( TOKEN_MS >= 200 )) || die "CLUSTER_TOKEN_MS must be >= 200"
    command -v corosync > /dev/null || die "corosync not installed (run scripts/install-deps.sh)"
    local k
    [[ -f $STATE ]] && die "a cluster with prefix '$PREFIX' is up ($STATE); run: $PROG down"
    for (( k = 0; k <= MAXN; k++ )); do
        local ns=$BRNS
        (( k )) && ns=$(nodens "$k")
        ns_exists "$ns" && die "namespace $ns already exists; run: $PROG down"
    done
    for k in /etc/corosync /var/lib/corosync /var/log/corosync /run /dev/shm; do
        [[ -d $k ]] || mkdir -p "$k"    # mount points for the per-node binds
    done

    # Anything failing from here on undoes what was made.
    trap 'rc=$?; if (( rc )); then note "up failed; cleaning up"; cmd_down > /dev/null || true; fi' EXIT
    trap 'exit 130' INT TERM HUP

    DIR=$(mktemp -d "$BASE/netns-cluster-$TAG.XXXXXX")
    touch "$DIR/$MARKER"
    printf 'prefix=%s\nn=%s\nnet=%s\ndir=%s\n' "$PREFIX" "$N" "$NET" "$DIR" > "$STATE"

    local t0=$SECONDS
    # The bridge lives in a namespace of its own: the root namespace's links
    # and routes are never touched.
    ip netns add "$BRNS"
    ip -n "$BRNS" link set lo up
    ip -n "$BRNS" link add br0 type bridge
    ip -n "$BRNS" link set br0 up
    for (( k = 1; k <= N; k++ )); do
        local ns d
        ns=$(nodens "$k")
        d=$DIR/n$k
        mkdir -p "$d"/{etc,lib,log,run,shm}
        chmod 1777 "$d/shm"
        mkdir -p "$d/etc/uidgid.d"
        ip netns add "$ns"
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
            net.ipv6.conf.default.disable_ipv6=1 2> /dev/null || true
        ip -n "$ns" link set lo up
        ip link add eth0 netns "$ns" type veth peer name "p$k" netns "$BRNS"
        ip -n "$BRNS" link set "p$k" master br0
        ip -n "$BRNS" link set "p$k" up
        ip -n "$ns" addr add "$(nodeaddr "$k")/24" dev eth0
        ip -n "$ns" link set eth0 up
        write_conf "$k"
    done
    for (( k = 1; k <= N; k++ )); do
        start_node "$k"
    done
    for (( k = 1; k <= N; k++ )); do
        if ! wait_view "$k" "$N" quorate "$(( UP_WAIT - (SECONDS - t0) > 1 ? UP_WAIT - (SECONDS - t0) : 1 ))"; then
            note "node $k: last lines of its corosync.log:"
            tail -n 15 "$DIR/n$k/log/corosync.log" >&2 2> /dev/null || true
            die "node $k did not see $N quorate members within ${UP_WAIT}s (sees: ${LAST_VIEW:-?})"
        fi
    done
    trap - EXIT INT TERM HUP
    local pids=()
    for (( k = 1; k <= N; k++ )); do pids+=("$(state_get "pid.$k")"); done
    echo "up: $N nodes (${PREFIX}n1..${PREFIX}n$N, $NET.1-$N/24) quorate with $N members in $(( SECONDS - t0 ))s; corosync pids ${pids[*]}; state $DIR"
}

cmd_down() {
    local dir ns p pids=() k
    dir=$(state_get dir)

    # 1. corosync first (TERM lets it leave the membership cleanly), found by
    #    its environment tag so stray ones are found even without namespaces.
    mapfile -t pids < <(tagged_pids "${PREFIX}n[0-9]+")
    stop_pids "${pids[@]}"

    # 2. anything else still inside our namespaces or started with exec.
    mapfile -t pids < <(TAGVAR=MLD_NETNS_CLUSTER_CLIENT tagged_pids "${PREFIX}n[0-9]+")
    for ns in $(ip netns list 2> /dev/null | awk '{print $1}'); do
        [[ $ns == "$BRNS" || $ns =~ ^${PREFIX}n[0-9]+$ ]] || continue
        for p in $(ip netns pids "$ns" 2> /dev/null); do pids+=("$p"); done
    done
    stop_pids "${pids[@]}"

    # 3. namespaces (their veths and the bridge go with them).
    for ns in $(ip netns list 2> /dev/null | awk '{print $1}'); do
        [[ $ns == "$BRNS" || $ns =~ ^${PREFIX}n[0-9]+$ ]] || continue
        ip netns del "$ns" 2> /dev/null || note "could not delete namespace $ns"
    done

    # 4. temp dirs: the recorded one and any left by an interrupted up.
    for d in "$dir" "$BASE"/netns-cluster-"$TAG".*; do
        [[ -n $d && -d $d && -f $d/$MARKER ]] || continue
        case $d in "$BASE"/netns-cluster-"$TAG".??????) ;; *) continue ;; esac
        rm -rf -- "$d"
    done
    rm -f -- "$STATE" "$STATE".??????
    echo "down: prefix $PREFIX clean"
}

cmd_exec() {
    load_state
    check_node "${1:-}"
    local k=$1
    shift
    (( $# )) || die "usage: $PROG exec K cmd..."
    # The tag lets `down` find what was started here even if it outlives
    # the namespace; CLUSTER_NODE* tell the command where it runs.
    MLD_NETNS_CLUSTER_CLIENT=$(nodens "$k") CLUSTER_NODE=$k CLUSTER_NODE_DIR=$DIR/n$k \
        CLUSTER_NODE_ADDR=$(nodeaddr "$k") CLUSTER_SIZE=$N in_node "$k" "$@"
}

cmd_kill() {
    load_state
    check_node "${1:-}"
    local pid
    pid=$(corosync_pid "$1")
    if [[ -z $pid ]]; then echo "node $1: corosync not running"; return 0; fi
    kill -KILL "$pid" 2> /dev/null || true
    wait_gone 10 "$pid" || die "node $1: corosync pid $pid survived KILL"
    echo "node $1: killed corosync pid $pid"
}

cmd_start() {
    load_state
    check_node "${1:-}"
    start_node "$1"
    echo "node $1: corosync pid $(corosync_pid "$1")"
}

cmd_partition() {
    load_state
    check_node "${1:-}"
    if linked "$1"; then
        ip -n "$BRNS" link set "p$1" nomaster
        echo "node $1: partitioned (bridge port p$1 detached)"
    else
        echo "node $1: already partitioned"
    fi
}

cmd_heal() {
    load_state
    check_node "${1:-}"
    if linked "$1"; then
        echo "node $1: not partitioned"
    else
        ip -n "$BRNS" link set "p$1" master br0
        ip -n "$BRNS" link set "p$1" up
        echo "node $1: healed (bridge port p$1 attached)"
    fi
}

cmd_wait_members() {
    load_state
    check_node "${1:-}"
    [[ ${2:-} =~ ^[0-9]+$ ]] || die "usage: $PROG wait-members K M [quorate|inquorate|any] [SECS]"
    local q=${3:-any} secs=${4:-30}
    [[ $q =~ ^(quorate|inquorate|any)$ && $secs =~ ^[0-9]+$ ]] ||
        die "usage: $PROG wait-members K M [quorate|inquorate|any] [SECS]"
    if wait_view "$1" "$2" "$q" "$secs"; then
        echo "node $1: $(view "$1")"
    else
        die "node $1: not $2 members ($q) within ${secs}s; sees: ${LAST_VIEW:-?}"
    fi
}

cmd_status() {
    load_state
    local k v pid
    echo "cluster $PREFIX: $N nodes, $NET.0/24, state $DIR"
    for (( k = 1; k <= N; k++ )); do
        pid=$(corosync_pid "$k")
        v=$(view "$k")
        printf 'node %d  %-12s %-15s link %-11s corosync %-8s ' "$k" "$(nodens "$k")" \
            "$(nodeaddr "$k")" "$(linked "$k" && echo up || echo partitioned)" "${pid:-down}"
        if [[ $v == down ]]; then
            echo "no view"
        else
            read -r m q ids <<< "$v"
            echo "members $m [$ids] quorate $q"
        fi
    done
}

# ------------------------------------------------------------- selftest ---

PASSED=0
FAILED=0
check() {         # description cmd...
    local what=$1
    shift
    if "$@"; then
        echo "PASS $what"
        PASSED=$(( PASSED + 1 ))
    else
        echo "FAIL $what${LAST_VIEW:+ (saw: $LAST_VIEW)}"
        FAILED=$(( FAILED + 1 ))
    fi
    LAST_VIEW=
}

expect_view() {   # node members quorate|inquorate secs
    wait_view "$@"
}

client_is_node() { # node -> client in node K talks to node K's corosync
    local out
    out=$(in_node "$1" timeout 5 corosync-quorumtool -s 2>&1) || true
    LAST_VIEW=$(awk -F: '/^Node ID:/ {gsub(/ /, "", $2); print "Node ID " $2}' <<< "$out")
    [[ $LAST_VIEW == "Node ID $1" ]]
}

private_mounts() { # node -> node K's /run and /etc/corosync are its own
    local conf
    conf=$(in_node "$1" cat /etc/corosync/corosync.conf 2> /dev/null) || return 1
    grep -q "for node $1 of" <<< "$conf" &&
        [[ $(in_node "$1" ls -A /run) == "$(ls -A "$DIR/n$1/run")" ]] &&
        in_node "$1" test -e /var/log/corosync/corosync.log
}

client_running() {
    local deadline=$(( SECONDS + 10 )) p
    while (( SECONDS < deadline )); do
        for p in $(ip netns pids "$(nodens 1)" 2> /dev/null); do
            [[ $(cat "/proc/$p/comm" 2> /dev/null) == sleep ]] && return 0
        done
        sleep 0.2
    done
    return 1
}

corosync_gone() {  # node
    LAST_VIEW=$(corosync_pid "$1")
    [[ -z $LAST_VIEW ]]
}

root_snapshot() {
    { ip -o link show | sed 's/ state .*//' | awk '{print $2}'; ip route show; ip -6 route show; } 2> /dev/null | sort
}

nothing_left() {
    local left=()
    local ns
    for ns in $(ip netns list 2> /dev/null | awk '{print $1}'); do
        [[ $ns == "$PREFIX"* ]] && left+=("netns:$ns")
    done
    local p
    for p in $(tagged_pids "${PREFIX}n[0-9]+") ${ALL_PIDS[@]+"${ALL_PIDS[@]}"}; do
        alive "$p" && [[ $(cat "/proc/$p/comm" 2> /dev/null) == corosync ]] && left+=("corosync:$p")
    done
    for p in $(TAGVAR=MLD_NETNS_CLUSTER_CLIENT tagged_pids "${PREFIX}n[0-9]+"); do
        alive "$p" && left+=("client:$p")
    done
    [[ -e $STATE ]] && left+=("state:$STATE")
    [[ -n ${ST_DIR:-} && -e $ST_DIR ]] && left+=("dir:$ST_DIR")
    compgen -G "$BASE/netns-cluster-$TAG.*" > /dev/null && left+=("dir:$BASE/netns-cluster-$TAG.*")
    [[ $(root_snapshot) == "$ROOT_BEFORE" ]] || left+=("root-namespace-links/routes-changed")
    LAST_VIEW=${left[*]-}
    (( ${#left[@]} == 0 ))
}

cmd_selftest() {
    [[ -n ${CLUSTER_PREFIX:-} ]] || set_prefix mldst-
    export CLUSTER_PREFIX=$PREFIX CLUSTER_NET=$NET
    local t0=$SECONDS k
    ALL_PIDS=()
    ROOT_BEFORE=$(root_snapshot)
    if [[ -f $STATE ]] || ns_exists "$BRNS"; then
        die "a cluster with prefix '$PREFIX' exists; run: CLUSTER_PREFIX=$PREFIX $PROG down"
    fi
    trap '"$SELF" down > /dev/null 2>&1 || true' EXIT
    trap 'exit 130' INT TERM HUP

    check "up 3" "$SELF" up 3
    if [[ ! -f $STATE ]]; then
        echo "$PASSED passed, $(( FAILED + 1 )) failed"
        return 1
    fi
    load_state
    ST_DIR=$DIR
    for (( k = 1; k <= 3; k++ )); do ALL_PIDS+=("$(state_get "pid.$k")"); done

    for k in 1 2 3; do check "node $k sees 3 members, quorate" expect_view "$k" 3 quorate 30; done
    for k in 1 3; do check "exec $k: client talks to node $k's corosync" client_is_node "$k"; done
    check "exec 2: private /etc/corosync, /run, /var/log/corosync" private_mounts 2

    check "partition 3" "$SELF" partition 3
    for k in 1 2; do check "partition: node $k sees 2 members, quorate" expect_view "$k" 2 quorate 40; done
    check "partition: node 3 sees 1 member, not quorate" expect_view 3 1 inquorate 40
    check "partition 3 again (idempotent)" "$SELF" partition 3

    check "heal 3" "$SELF" heal 3
    for k in 1 2 3; do check "heal: node $k sees 3 members, quorate" expect_view "$k" 3 quorate 40; done
    check "heal 3 again (idempotent)" "$SELF" heal 3

    check "kill-corosync 2" "$SELF" kill-corosync 2
    check "kill: node 2's corosync is gone" corosync_gone 2
    for k in 1 3; do check "kill: node $k sees 2 members, quorate" expect_view "$k" 2 quorate 40; done
    check "kill-corosync 2 again (idempotent)" "$SELF" kill-corosync 2

    check "start-corosync 2" "$SELF" start-corosync 2
    ALL_PIDS+=("$(state_get pid.2)")
    for k in 1 2 3; do check "restart: node $k sees 3 members, quorate" expect_view "$k" 3 quorate 40; done
    check "start-corosync 2 again (idempotent)" "$SELF" start-corosync 2

    # A long-running client (as a daemon under test would be) must not survive down.
    "$SELF" exec 1 sleep 600 < /dev/null > /dev/null 2>&1 &
    check "exec 1: background client is running in node 1" client_running
    check "down" "$SELF" down
    check "nothing left (namespaces, corosync, temp dir, state, root links/routes)" nothing_left
    check "down again (idempotent)" "$SELF" down
    trap - EXIT INT TERM HUP

    echo "selftest took $(( SECONDS - t0 ))s"
    echo "$PASSED passed, $FAILED failed"
    (( FAILED == 0 ))
}

# ----------------------------------------------------------------- main ---

usage() {
    sed -n '2,/^$/p' "$SELF" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

main() {
    local cmd=${1:-}
    (( $# )) && shift
    if [[ $cmd == __enter ]]; then do_enter "$@"; fi
    (( EUID == 0 )) || die "must run as root"
    set_prefix "$PREFIX"
    case $cmd in
        up)             cmd_up "$@" ;;
        down)           cmd_down ;;
        exec)           cmd_exec "$@" ;;
        kill-corosync)  cmd_kill "$@" ;;
        start-corosync) cmd_start "$@" ;;
        partition)      cmd_partition "$@" ;;
        heal)           cmd_heal "$@" ;;
        wait-members)   cmd_wait_members "$@" ;;
        status)         cmd_status ;;
        selftest)       cmd_selftest ;;
        *)              usage ;;
    esac
}

main "$@"
