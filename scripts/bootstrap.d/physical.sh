# The physical side (issue 15): lldpd plays a ToR switch in a namespace for the lldp probe's tests
# (tests/agent/test_lldp.py).
APT_PACKAGES+=(lldpd)

# lldpd's postinst would start a system-wide lldpd: a policy-rc.d refusing service starts during
# the install, removed afterwards if we put it there.
if ! dpkg-query -W -f='${Status}' lldpd 2>/dev/null | grep -q "install ok installed" && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  PHYSICAL_POLICY_RC_D=1
fi

post_physical() {
  if [ -n "${PHYSICAL_POLICY_RC_D:-}" ]; then
    rm -f /usr/sbin/policy-rc.d
  fi
}
