#!/bin/sh
# netns.sh - hosts of their own for tests: network namespaces joined by
# veth links, so that a test can cut one host's link while the others run.
#
#   sh tests/netns.sh up NAME HUB HOST...  makes the namespaces NAME-HUB and
#                                          NAME-HOST for each HOST, each HOST
#                                          linked to HUB by a veth pair (below)
#   sh tests/netns.sh cut NAME HUB HOST    takes HUB's end of HOST's link down
#   sh tests/netns.sh heal NAME HUB HOST   brings it up again, and waits until
#                                          the link carries packets again
#   sh tests/netns.sh exec NAME HOST CMD.. runs CMD in NAME-HOST
#   sh tests/netns.sh down NAME            kills every process left in the
#                                          namespaces NAME-*, then deletes them
#
# Link k (the k-th HOST, from 1) is 10.231.k.0/24: HUB is 10.231.k.1 on its
# device HOST, HOST is 10.231.k.2 on its device HUB; lo is up everywhere.
# The addresses exist only inside these namespaces, so parallel runs (with
# different NAMEs) do not collide.  Names must be short: a device name holds
# 15 characters.
#
# A cut is a pulled cable, not a refusal: HOST's packets, and HUB's to HOST,
# vanish; nothing sends a reset, so established connections just stop
# answering, and new ones time out.  (Each end knows the other's hardware
# address for good, so that no failed ARP lookup reports "No route to host"
# to HOST during a cut either.)
#
# up exits with status 77, the reason on stderr, when this machine does not
# allow it (not root, no ip command, no network namespaces or veth), after
# removing what it made; any other failure is status 1.
set -eu

PROG="netns.sh"
SKIP=77
SUBNET=10.231

die() {
        echo "$PROG: $*" >&2
        exit 1
}

skip() {
        echo "$PROG: $*" >&2
        exit $SKIP
}

usage() {
        echo "usage: sh tests/netns.sh up NAME HUB HOST... | cut NAME HUB HOST |" \
                "heal NAME HUB HOST | exec NAME HOST CMD... | down NAME" >&2
        exit 2
}

# The namespaces whose name starts with NAME-, one a line.
our_namespaces() {
        ip netns list 2>/dev/null | awk -v p="$1-" '{ if (index($1, p) == 1) print $1 }'
}

cmd_down() {
        name=$1
        for ns in $(our_namespaces "$name"); do
                # A namespace outlives its name while processes are in it.
                tries=0
                while pids=$(ip netns pids "$ns" 2>/dev/null) && [ -n "$pids" ]; do
                        # shellcheck disable=SC2086 # one pid a word
                        kill -KILL $pids 2>/dev/null || true
                        tries=$((tries + 1))
                        [ $tries -le 100 ] || die "processes in $ns do not die: $pids"
                        sleep 0.05
                done
                ip netns del "$ns" || die "cannot delete namespace $ns"
        done
}

# shellcheck disable=SC2317 # called from the EXIT trap of cmd_up
up_exit() {
        trap - EXIT
        [ "$1" -eq 0 ] || cmd_down "$name" >/dev/null 2>&1 || true
        exit "$1"
}

cmd_up() {
        name=$1
        hub=$2
        shift 2
        [ "$(id -u)" -eq 0 ] || skip "network namespaces need root"
        command -v ip >/dev/null 2>&1 || skip "no ip command (install iproute2)"
        [ -z "$(our_namespaces "$name")" ] || die "namespaces $name-* exist already"
        # Whatever fails from here leaves nothing behind.
        trap 'up_exit $?' EXIT
        err=$(ip netns add "$name-$hub" 2>&1) || skip "cannot make a network namespace: $err"
        ip -n "$name-$hub" link set lo up || die "cannot bring lo up in $name-$hub"
        k=0
        for host in "$@"; do
                k=$((k + 1))
                ns=$name-$host
                ip netns add "$ns" || die "cannot make namespace $ns"
                ip -n "$ns" link set lo up || die "cannot bring lo up in $ns"
                err=$(ip -n "$name-$hub" link add name "$host" type veth \
                        peer name "$hub" netns "$ns" 2>&1) || skip "cannot make a veth link: $err"
                ip -n "$name-$hub" addr add "$SUBNET.$k.1/24" dev "$host"
                ip -n "$ns" addr add "$SUBNET.$k.2/24" dev "$hub"
                ip -n "$name-$hub" link set dev "$host" up
                ip -n "$ns" link set dev "$hub" up
                pin_neighbours "$name" "$hub" "$host" $k
        done
}

# The hardware address of device $3 in namespace $1-$2.
mac_of() {
        ip -n "$1-$2" -o link show dev "$3" | sed -n 's|.*link/ether \([0-9a-f:]*\).*|\1|p'
}

# Makes the neighbour entries of link k (HUB's device HOST, HOST's device HUB) permanent.
pin_neighbours() {
        name=$1
        hub=$2
        host=$3
        k=$4
        ip -n "$name-$host" neigh replace "$SUBNET.$k.1" lladdr "$(mac_of "$name" "$hub" "$host")" \
                dev "$hub" nud permanent || die "cannot set the neighbour of $host"
        ip -n "$name-$hub" neigh replace "$SUBNET.$k.2" lladdr "$(mac_of "$name" "$host" "$hub")" \
                dev "$host" nud permanent || die "cannot set the neighbour of $hub"
}

# The hub's address on its device HOST (10.231.k.1).
hub_address() {
        ip -n "$1-$2" -4 -o addr show dev "$3" 2>/dev/null |
                awk '{ sub("/.*", "", $4); print $4; exit }'
}

cmd_cut() {
        ip -n "$1-$2" link set dev "$3" down || die "cannot take $3 down in $1-$2"
}

cmd_heal() {
        name=$1
        hub=$2
        host=$3
        ip -n "$name-$hub" link set dev "$host" up || die "cannot bring $host up in $name-$hub"
        addr=$(hub_address "$name" "$hub" "$host")
        [ -n "$addr" ] || die "$host in $name-$hub has no address"
        # Taking the device down dropped the hub's entry for HOST.
        k=${addr#"$SUBNET".}
        pin_neighbours "$name" "$hub" "$host" "${k%.1}"
        # Back once HOST's end has its carrier again and the hub has its
        # route to HOST (the kernel drops it with the device, and puts it
        # back when the device comes up).
        tries=0
        until [ "$(ip -n "$name-$host" -o link show dev "$hub" 2>/dev/null |
                grep -c 'LOWER_UP')" -eq 1 ] &&
                ip -n "$name-$hub" route get "${addr%.1}.2" >/dev/null 2>&1; do
                tries=$((tries + 1))
                [ $tries -le 100 ] || die "the link of $host did not come back"
                sleep 0.05
        done
}

main() {
        [ $# -ge 2 ] || usage
        cmd=$1
        name=$2
        shift 2
        case $cmd in
        up)
                [ $# -ge 2 ] || usage
                cmd_up "$name" "$@"
                ;;
        cut)
                [ $# -eq 2 ] || usage
                cmd_cut "$name" "$@"
                ;;
        heal)
                [ $# -eq 2 ] || usage
                cmd_heal "$name" "$@"
                ;;
        exec)
                [ $# -ge 2 ] || usage
                host=$1
                shift
                exec ip netns exec "$name-$host" "$@"
                ;;
        down)
                [ $# -eq 0 ] || usage
                cmd_down "$name"
                ;;
        *) usage ;;
        esac
}

main "$@"
