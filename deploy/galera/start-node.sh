#!/bin/bash
# Entrypoint of every Galera node in docker-compose.yml: decides whether
# this node starts a new cluster, then runs the mariadb image's own
# entrypoint (docker-entrypoint.sh) with the node's arguments, adding
# --wsrep-new-cluster when it does.
#
# A node starts a new cluster only when no address of its
# --wsrep_cluster_address answers on the group-communication port and
#   - its data directory has no Galera state yet (no grastate.dat) and
#     GALERA_FIRST_NODE=1: the very first start of galera-1; or
#   - its grastate.dat says "safe_to_bootstrap: 1": it was the last node
#     to leave the cluster, so it has every committed transaction
#     (`docker compose down` stops galera-1 last, since the others depend
#     on it).
# Otherwise it joins the running cluster, or waits for one to form. So
# `docker compose up -d` works the first time and after
# `docker compose down`, and a node whose volume was lost never starts a
# second cluster beside a running one. README.md, "Restarting a stopped
# cluster", covers the other cases.
#
# GALERA_DATADIR (default /var/lib/mysql) and GALERA_PROBE_TIMEOUT
# (seconds, default 2) exist for the tests.
set -euo pipefail

datadir=${GALERA_DATADIR:-/var/lib/mysql}
state=$datadir/grastate.dat

# peers_answer reports whether any node of --wsrep_cluster_address (given
# among the arguments) accepts a TCP connection on its group-communication
# port (4567 unless the address names one).
peers_answer() {
	local arg addrs="" addr host port
	for arg in "$@"; do
		case $arg in
		--wsrep_cluster_address=gcomm://* | --wsrep-cluster-address=gcomm://*) addrs=${arg#*=gcomm://} ;;
		esac
	done
	addrs=${addrs%%\?*} # options after '?'
	local -a list
	IFS=, read -ra list <<<"$addrs"
	for addr in "${list[@]}"; do
		host=${addr%%:*}
		port=4567
		if [[ $addr == *:* ]]; then
			port=${addr##*:}
		fi
		[ -n "$host" ] || continue
		# shellcheck disable=SC2016 # $1 and $2 expand in the child shell
		if timeout "${GALERA_PROBE_TIMEOUT:-2}" bash -c 'exec 3<>"/dev/tcp/$1/$2"' probe "$host" "$port" 2>/dev/null; then
			return 0
		fi
	done
	return 1
}

bootstrap=
if ! peers_answer "$@"; then
	if [ -e "$state" ]; then
		if grep -q '^safe_to_bootstrap: *1' "$state"; then
			bootstrap=1
		fi
	elif [ "${GALERA_FIRST_NODE:-}" = 1 ]; then
		bootstrap=1
	fi
fi
if [ -n "$bootstrap" ]; then
	echo "start-node.sh: no other node answers and this node may start the cluster: adding --wsrep-new-cluster" >&2
	set -- "$@" --wsrep-new-cluster
fi
exec docker-entrypoint.sh "$@"
