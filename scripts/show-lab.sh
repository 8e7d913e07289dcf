#!/usr/bin/env bash
# After `make lab`: show the seed lab's state the way the seed document does.
set -euo pipefail
py=$1
topology=$2
lab=$("$py" -c "import sys; from labctl.topology import load_lab; print(load_lab(sys.argv[1]).name)" "$topology")
echo
echo "== nodes"
"$py" -m labctl status "$lab"
for client in client1 client2; do
  echo
  echo "== $client: ping the concentrator's public address through the PIX"
  "$py" -m labctl exec --lab "$lab" "$client" -- ping -c 2 -W 2 172.16.172.50 | tail -2
  # A datagram from UDP 4500, as NAT-T sends, so the PIX shows the PAT of port 4500.
  "$py" -m labctl exec --lab "$lab" "$client" -- sh -c 'printf probe | nc -u -w1 -p 4500 172.16.172.50 4500' || true
done
echo
echo "== pix# show xlate"
"$py" -m labctl show --lab "$lab" pix xlate
echo
echo "== pix# show arp"
"$py" -m labctl show --lab "$lab" pix arp
