#!/usr/bin/env bash
# Install the host tools labctl and its tests use, from Debian packages; quick when present.
set -euo pipefail
packages=(
  debootstrap          # base image root file system
  nftables conntrack   # host-side checks of lab rules and flows
  iproute2 tcpdump     # namespaces, captures of lab segments
  iputils-ping         # pings between test namespaces (tests/integration)
  tshark               # dissecting captures (IKE, ESP)
  vpnc                 # an independent IKEv1 client for interop tests
  iperf3               # throughput benchmarks
  graphviz             # labctl graph --format svg (and the web console's topology)
  chromium chromium-driver  # the web console's browser tests (selenium, headless)
  python3-venv
  python3-cryptography # integration tests run the data plane on Debian's python3, as nodes do
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "host packages: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run as root: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer for it.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "host packages: installed ${missing[*]}"
