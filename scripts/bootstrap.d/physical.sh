# The physical side (issue 15): lldpd plays a ToR switch in a namespace for the lldp probe's tests
# (tests/agent/test_lldp.py); nfdump's nfcapd collects the NetFlow v5 export of a capture's Target
# and nfdump reads it back (tests/flow_integration/test_netflow_export.py).
APT_PACKAGES+=(lldpd nfdump)

# Their postinst scripts would start a system-wide lldpd and nfcapd: a policy-rc.d refusing service
# starts during the install, removed afterwards if we put it there.
for _physical_pkg in lldpd nfdump; do
  if ! dpkg-query -W -f='${Status}' "$_physical_pkg" 2>/dev/null | grep -q "install ok installed" && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    PHYSICAL_POLICY_RC_D=1
  fi
done

post_physical() {
  if [ -n "${PHYSICAL_POLICY_RC_D:-}" ]; then
    rm -f /usr/sbin/policy-rc.d
  fi
}
