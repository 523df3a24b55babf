"""Deploying with TLS and authentication (docs/security.md): the roles' skydive_tls_* variables on
the simulated nodes. The analyzer serves HTTPS/WSS, agents connect over WSS verifying it with the
CA, the post-deploy check logs in over HTTPS; plain HTTP gets no answer."""

import json
import os
import subprocess

import pytest
import requests

from tests.deploy.test_multinode import DEPLOY, UNINSTALL

pytestmark = pytest.mark.timeout(1800)


def make_certs(directory, ip):
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o755)
    ca_key, ca = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.crt")
    key, csr, cert = (os.path.join(directory, n) for n in ("analyzer.key", "analyzer.csr", "analyzer.crt"))
    ext = os.path.join(directory, "ext.cnf")
    with open(ext, "w") as fh:
        fh.write("subjectAltName=IP:%s\n" % ip)

    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "1",
        "-subj", "/CN=skydive test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=%s" % ip)
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "1",
        "-extfile", ext)
    os.chmod(key, 0o644)     # the analyzer runs as the skydive system user
    return {"skydive_tls_server_cert": cert, "skydive_tls_server_key": key, "skydive_tls_ca_cert": ca}


def test_deploy_with_tls_and_auth(sim_cluster):
    ip = sim_cluster.nodes["controller"]["ip"]
    tls = make_certs(os.path.join(sim_cluster.base, "tls"), ip)
    try:
        res = sim_cluster.playbook(DEPLOY, "-e", json.dumps(tls))
        assert res.rc == 0, res.tail()       # includes the post-deploy check, over HTTPS
        url = "https://%s:8082" % ip
        user, password = sim_cluster.api_auth()
        st = requests.get(url + "/api/status", verify=tls["skydive_tls_ca_cert"], auth=(user, password), timeout=10)
        assert st.status_code == 200
        assert set(sim_cluster.names) <= set(st.json()["Agents"]), st.json()["Agents"]
        assert requests.get(url + "/api/status", verify=tls["skydive_tls_ca_cert"], timeout=10).status_code == 401
        with pytest.raises(requests.RequestException):
            requests.get("http://%s:8082/api/status" % ip, timeout=5)
        r = requests.post(url + "/login", data={"username": user, "password": password},
                          verify=tls["skydive_tls_ca_cert"], timeout=10)
        assert r.status_code == 200 and "Secure" in r.headers["Set-Cookie"]
        for name in sim_cluster.names:
            with open(os.path.join(sim_cluster.nodes[name]["root"], "etc", "skydive", "skydive.yml")) as fh:
                text = fh.read()
            assert "ca_cert: %s" % tls["skydive_tls_ca_cert"] in text
            assert ("server_cert:" in text) == (name == "controller"), name
            assert password in text          # the generated credentials reached every node
    finally:
        gone = sim_cluster.playbook(UNINSTALL)
        assert gone.rc == 0, gone.tail()
