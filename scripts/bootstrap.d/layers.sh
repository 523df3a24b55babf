# Capture ExtraLayers tests (tests/flow_integration/test_extra_layers.py): dnsmasq answers DNS and
# offers DHCP leases in a namespace, busybox's udhcpc asks for one.
APT_PACKAGES+=(dnsmasq-base busybox)
