# OVN (tests/fixtures/ovn.py: NB + SB ovsdb-servers, ovn-northd, ovn-controller) for the analyzer's
# ovn probe and the Neutron ML2/OVN tests.
APT_PACKAGES+=(ovn-central ovn-host)

# The packages' postinst scripts would start ovn-northd / ovn-controller against the system's
# Open vSwitch (creating br-int there): a policy-rc.d refusing service starts during the install,
# removed afterwards if we put it there.
if ! dpkg-query -W -f='${Status}' ovn-host 2>/dev/null | grep -q "install ok installed" && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  OVN_POLICY_RC_D=1
fi

post_ovn() {
  if [ -n "${OVN_POLICY_RC_D:-}" ]; then
    rm -f /usr/sbin/policy-rc.d
  fi
}
