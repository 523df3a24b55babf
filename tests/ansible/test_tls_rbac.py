"""TLS and RBAC against a live analyzer serving HTTPS with a self-signed certificate, whose API
users have the upstream `guest` role (read-only)."""

import datetime
import ipaddress

import pytest

from tests.fixtures.processes import SkydiveProcess, analyzer_config

pytestmark = [pytest.mark.ansible]


def make_certificate(directory):
    """Self-signed certificate for 127.0.0.1 (written as cert.pem / key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "skydive-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def tls_analyzer(tmp_path_factory):
    pytest.importorskip("cryptography")
    workdir = tmp_path_factory.mktemp("tls-analyzer")
    cert, key = make_certificate(workdir)
    config = analyzer_config(workdir)
    config["tls"] = {"server_cert": cert, "server_key": key}
    config["auth"] = {"viewers": {"type": "basic", "users": {"viewer": "view-s3cret"}, "role": "guest"}}
    config["analyzer"]["auth"] = {"api": {"backend": "viewers"}}
    proc = SkydiveProcess("analyzer", workdir, config, auth=("viewer", "view-s3cret"), scheme="https",
                          verify=cert)
    proc.start()
    proc.cert = cert
    try:
        yield proc
    finally:
        proc.stop()


def test_tls_and_rbac(tls_analyzer, runner):
    creds = {"username": "viewer", "password": "view-s3cret"}
    query = dict(creds, query="G.V().Count()")
    addr = tls_analyzer.address
    run = runner.play([
        {"name": "untrusted", "skydive.skydive.skydive_query": dict(query, analyzer=addr, ssl=True)},
        {"name": "ca_path", "skydive.skydive.skydive_query": dict(query, analyzer=addr, ssl=True,
                                                                  ca_path=tls_analyzer.cert)},
        {"name": "https_url", "skydive.skydive.skydive_query": dict(query, analyzer="https://" + addr,
                                                                    ca_path=tls_analyzer.cert)},
        {"name": "insecure", "skydive.skydive.skydive_query": dict(query, provider={
            "endpoint": addr, "ssl": True, "insecure": True})},
        {"name": "plain_http", "skydive.skydive.skydive_query": dict(query, analyzer=addr, timeout=5)},
        {"name": "guest_write", "skydive.skydive.skydive_node": dict(
            creds, name="rbac-node", node_type="switch", analyzer=addr, ssl=True, validate_certs=False)},
        {"name": "guest_capture", "skydive.skydive.skydive_capture": dict(
            creds, query="G.V()", analyzer=addr, ssl=True, validate_certs=False)},
    ])
    untrusted = run["untrusted"]
    assert untrusted["failed"] and "could not be verified" in untrusted["msg"] and "ca_path" in untrusted["msg"]
    for name in ("ca_path", "https_url", "insecure"):
        assert not run[name].get("failed"), run[name].get("msg")
        assert run[name]["result"] == 0
    plain = run["plain_http"]
    assert plain["failed"] and "if it serves HTTPS, set ssl=true" in plain["msg"]
    guest = run["guest_write"]
    assert guest["failed"] and "HTTP 405, RBAC permission denied" in guest["msg"] and "'viewer'" in guest["msg"]
    capture = run["guest_capture"]
    assert capture["failed"] and "HTTP 405" in capture["msg"]
