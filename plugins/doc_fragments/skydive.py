# -*- coding: utf-8 -*-
# Copyright: (c) 2024, skydive.skydive contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Connection options of the modules.
    DOCUMENTATION = r"""
options:
  analyzer:
    description:
      - Address of the Skydive analyzer, C(host:port), C(host) (port 8082) or a URL
        C(http://host:port) / C(https://host:port) (a URL scheme wins over O(ssl)).
      - When not set, O(provider.endpoint) is used, then the environment variables
        E(SKYDIVE_ANALYZER) and E(SKYDIVE_ENDPOINT), then C(127.0.0.1:8082).
    type: str
    aliases: [endpoint]
  username:
    description:
      - User to authenticate as. The module logs in once (C(POST /login)) and sends the
        C(authtoken) cookie with every request, plus a basic C(Authorization) header.
      - When not set, O(provider.username) is used, then E(SKYDIVE_USERNAME). Without a user, no
        authentication is attempted (analyzer with the C(noauth) backend).
    type: str
  password:
    description:
      - Password of O(username). When not set, O(provider.password) is used, then
        E(SKYDIVE_PASSWORD).
    type: str
  ssl:
    description:
      - Talk HTTPS to the analyzer when O(analyzer) has no URL scheme.
      - When not set, O(provider.ssl) is used, then E(SKYDIVE_SSL), then V(false).
    type: bool
  validate_certs:
    description:
      - Verify the analyzer's TLS certificate.
      - When not set, the inverse of O(insecure) is used, then O(provider.validate_certs) or the
        inverse of O(provider.insecure), then E(SKYDIVE_VALIDATE_CERTS) or the inverse of
        E(SKYDIVE_INSECURE), then V(true).
    type: bool
  insecure:
    description:
      - Skip the verification of the analyzer's TLS certificate; the upstream name, the inverse
        of O(validate_certs). Setting both to contradicting values is an error.
    type: bool
  ca_path:
    description:
      - PEM file of the certificate authorities used to verify the analyzer.
      - When not set, O(provider.ca_path) is used, then E(SKYDIVE_CA_PATH).
    type: path
  timeout:
    description:
      - Seconds to wait for each HTTP answer of the analyzer.
      - When not set, O(provider.timeout) is used, then E(SKYDIVE_TIMEOUT), then V(30).
    type: int
  provider:
    description:
      - Connection settings as one dictionary, as the original C(skydive.skydive) and
        C(community.skydive) modules took them. The flat options above win over these.
      - Most convenient set once for all modules with
        C(module_defaults) and the action group C(group/skydive.skydive.skydive).
    type: dict
    suboptions:
      endpoint:
        description:
          - Address of the analyzer, as O(analyzer).
        type: str
        aliases: [analyzer]
      username:
        description:
          - User to authenticate as, as O(username).
        type: str
      password:
        description:
          - Password, as O(password).
        type: str
      ssl:
        description:
          - Use HTTPS, as O(ssl).
        type: bool
      insecure:
        description:
          - Skip TLS verification, as O(insecure).
        type: bool
      validate_certs:
        description:
          - Verify TLS certificates, as O(validate_certs).
        type: bool
      ca_path:
        description:
          - CA bundle, as O(ca_path).
        type: path
      timeout:
        description:
          - Seconds per request, as O(timeout).
        type: int
notes:
  - The modules talk to the analyzer's REST API with the Python standard library; nothing has
    to be installed on the target. They normally run on the controller
    (with C(delegate_to) V(localhost) or C(connection) V(local)).
  - Call the modules by their full name (C(skydive.skydive.skydive_node)); ansible-core routes
    the short names C(skydive_node), C(skydive_edge), C(skydive_capture) to the removed
    C(community.skydive) collection.
"""

    # Connection options of the lookup and inventory plugins.
    PLUGINS = r"""
options:
  analyzer:
    description:
      - Address of the Skydive analyzer, C(host:port), C(host) (port 8082) or a URL
        C(http://host:port) / C(https://host:port) (a URL scheme wins over O(ssl)).
    type: str
    default: 127.0.0.1:8082
    aliases: [endpoint]
    env:
      - name: SKYDIVE_ANALYZER
      - name: SKYDIVE_ENDPOINT
  username:
    description:
      - User to authenticate as (C(POST /login), then the C(authtoken) cookie).
      - Without a user, no authentication is attempted.
    type: str
    env:
      - name: SKYDIVE_USERNAME
  password:
    description:
      - Password of O(username).
    type: str
    env:
      - name: SKYDIVE_PASSWORD
  ssl:
    description:
      - Talk HTTPS to the analyzer when O(analyzer) has no URL scheme.
    type: bool
    default: false
    env:
      - name: SKYDIVE_SSL
  validate_certs:
    description:
      - Verify the analyzer's TLS certificate.
    type: bool
    default: true
    env:
      - name: SKYDIVE_VALIDATE_CERTS
  ca_path:
    description:
      - PEM file of the certificate authorities used to verify the analyzer.
    type: path
    env:
      - name: SKYDIVE_CA_PATH
  timeout:
    description:
      - Seconds to wait for each HTTP answer of the analyzer.
    type: int
    default: 30
    env:
      - name: SKYDIVE_TIMEOUT
"""
