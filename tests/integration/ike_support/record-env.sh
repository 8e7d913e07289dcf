#!/bin/sh
# vpnc-script for the interop tests: records the environment vpnc hands its script
# (INTERNAL_IP4_ADDRESS, TUNDEV, CISCO_* ...) and touches NOTHING else -- no addresses,
# routes or resolv.conf.  The test harness configures the tunnel inside the client netns.
out="${IKE_TEST_OUT:-/tmp}/env.${reason:-unknown}"
env | sort > "$out.tmp" && mv "$out.tmp" "$out"
exit 0
