# OpenStack services for tests/openstack (tests/fixtures/openstack.py): a real Keystone (uwsgi) and a
# real Neutron server (ML2/OVN, on a private PostgreSQL 15), as ../shared/reference/openstack-lab.md.
# OVN itself comes from bootstrap.d/ovn.sh.
APT_PACKAGES+=(keystone uwsgi-plugin-python3 neutron-server python3-neutron python3-psycopg2 postgresql-15)

# Their postinst scripts would start keystone, neutron-server and a PostgreSQL cluster as system
# services: a policy-rc.d refusing service starts during the install, removed afterwards if we put it there.
if ! dpkg-query -W -f='${Status}' neutron-server 2>/dev/null | grep -q "install ok installed" && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  OPENSTACK_POLICY_RC_D=1
fi

post_openstack() {
  if [ -n "${OPENSTACK_POLICY_RC_D:-}" ]; then
    rm -f /usr/sbin/policy-rc.d
  fi
}
