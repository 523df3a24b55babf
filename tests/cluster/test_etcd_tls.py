"""etcd over TLS, as TripleO's etcd runs under TLS everywhere: https:// members with
client-cert-auth; the client gets in with `etcd.tls` (CA, certificate, key) and is refused
without a certificate; an analyzer keeps its resources there."""

import os
import shutil
import signal
import subprocess
import threading

import pytest
import requests

from skydive_runtime.storage.etcd import EtcdClient, EtcdError, tls_context
from tests.fixtures.processes import SkydiveProcess, free_port, wait_until

pytestmark = pytest.mark.skipif(not (shutil.which("etcd") and shutil.which("openssl")),
                                reason="needs etcd (Debian etcd-server) and openssl")


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True)


def _pki(d):
    """A CA, a server certificate for 127.0.0.1 (client usage too: etcd's gateway dials the member
    with it, as certmonger's certificates allow) and a client certificate, signed by the CA."""
    ca_key, ca = str(d / "ca.key"), str(d / "ca.crt")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
             "-keyout", ca_key, "-out", ca)
    out = {"ca": ca}
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        key, csr, crt, extf = (str(d / (name + s)) for s in (".key", ".csr", ".crt", ".ext"))
        with open(extf, "w") as f:
            f.write(ext + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name, "-keyout", key, "-out", csr)
        _openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "1",
                 "-extfile", extf, "-out", crt)
        out[name] = (crt, key)
    return out


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory):
    d = tmp_path_factory.mktemp("etcd-tls")
    pki = _pki(d)
    port, peer = free_port(), free_port()
    url = "https://127.0.0.1:%d" % port
    proc = subprocess.Popen(
        ["etcd", "--name", "tls1", "--data-dir", str(d / "data"),
         "--listen-client-urls", url, "--advertise-client-urls", url,
         "--listen-peer-urls", "http://127.0.0.1:%d" % peer, "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peer,
         "--initial-cluster", "tls1=http://127.0.0.1:%d" % peer,
         "--cert-file", pki["server"][0], "--key-file", pki["server"][1],
         "--client-cert-auth", "--trusted-ca-file", pki["ca"]],
        stdout=subprocess.DEVNULL, stderr=open(str(d / "etcd.log"), "wb"), start_new_session=True)
    try:
        ctx = tls_context(pki["ca"], *pki["client"])
        client = EtcdClient([url], timeout=5, tls=ctx)

        def up():
            try:
                client.get("/probe")
                return True
            except EtcdError:
                return False
        wait_until(up, timeout=30, message="etcd over TLS answers")
        yield url, pki, client
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_client_over_tls(tls_etcd):
    url, pki, client = tls_etcd
    seen, stop = [], threading.Event()
    _rows, rev = client.range_prefix("/tls/")          # the watch starts after this revision
    t = threading.Thread(target=client.watch_prefix, args=("/tls/", lambda *ev: seen.append(ev), stop, rev + 1),
                         daemon=True)
    t.start()
    try:
        client.put("/tls/a", "1")
        assert client.get("/tls/a") is not None
        wait_until(lambda: ("PUT", "/tls/a", "1") in seen, timeout=10, message="the watch over TLS")
    finally:
        stop.set()
        client.close_watches()
        t.join(10)
    # no client certificate: the member refuses; an unknown CA: the client refuses the member
    with pytest.raises(EtcdError):
        EtcdClient([url], timeout=3, tls=tls_context(pki["ca"])).get("/tls/a")
    with pytest.raises(EtcdError):
        EtcdClient([url], timeout=3).get("/tls/a")
    with pytest.raises(Exception, match="cert_file and key_file go together"):
        tls_context(pki["ca"], pki["client"][0])


def test_analyzer_resources_in_tls_etcd(tls_etcd, tmp_path):
    url, pki, client = tls_etcd
    tls = {"ca_file": pki["ca"], "cert_file": pki["client"][0], "key_file": pki["client"][1]}
    cfg = {"host_id": "tls-an", "etcd": {"servers": [url], "tls": tls},
           "storage": {"sqlite": {"path": str(tmp_path / "db.sqlite")}}, "logging": {"level": "INFO"}}
    an = SkydiveProcess("analyzer", tmp_path / "an", cfg)
    try:
        an.start(timeout=40)
        r = requests.post(an.url + "/api/alert", json={"Name": "tls-alert", "Expression": "G.V().Has('Name', 'nothing')"},
                          headers={"Content-Type": "application/json"}, timeout=10)
        assert r.status_code in (200, 201), r.text
        uid = r.json()["UUID"]
        rows, _rev = client.range_prefix("/skydive/resources/alert/")
        assert any(row[0].endswith("/" + uid) for row in rows), rows
    finally:
        an.stop()
    # etcd.tls with plain http:// servers: refused at start, naming the setting
    bad = dict(cfg, etcd={"servers": ["http://127.0.0.1:1"], "tls": tls})
    p = SkydiveProcess("analyzer", tmp_path / "bad", bad)
    with pytest.raises(Exception):
        p.start(timeout=15)
    p.stop()
    assert "etcd.tls: set, but etcd.servers are not https://" in open(p.log_path).read()
