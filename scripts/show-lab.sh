#!/usr/bin/env bash
# After `make lab`: connect both clients, ping through their tunnels, and show the state the
# seed document shows: the PIX's xlate and arp, the concentrator's sessions, a client's status.
set -euo pipefail
py=$1
topology=$2
lab=$("$py" -c "import sys; from labctl.topology import load_lab; print(load_lab(sys.argv[1]).name)" "$topology")
labctl() { "$py" -m labctl "$@"; }
for client in client1 client2; do
  echo
  echo "== $client: vpn connect, then ping the private host 192.168.2.10 through the tunnel"
  labctl exec --lab "$lab" "$client" -- vpn connect --wait --timeout 60
  labctl exec --lab "$lab" "$client" -- ping -c 3 -i 0.3 -W 2 192.168.2.10 | tail -2
done
echo
echo "== pix# show xlate"
labctl show --lab "$lab" pix xlate
echo
echo "== pix# show arp"
labctl show --lab "$lab" pix arp
echo
echo "== vpn3000: Administration > Administer Sessions"
labctl show --lab "$lab" vpn3000 sessions -v
echo
echo "== client1: VPN Client status"
labctl show --lab "$lab" client1 status
