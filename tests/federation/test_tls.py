"""Peers over HTTPS: certificates from a private CA named in ``federation.ca_file``."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hashmesh.node.config.peers import PeerConfig, add_peer
from hashmesh.node.service import HashQuery
from hashmesh.protocol.keys import PublicKey
from tests.federation.cluster import Cluster, Node, eventually

VALUE = "ab" * 32


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name("test CA")).issuer_name(_name("test CA"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def issue(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], host: str,
          directory: Path) -> None:
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
                ipaddress.ip_address(host))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (directory / "tls").mkdir(exist_ok=True)
    (directory / "tls" / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tls" / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (directory / "tls" / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))


def enable_tls(node: Node, trust_ca: bool) -> None:
    config = node.directory / "node.toml"
    text = config.read_text().replace('# [tls]\n# cert = "tls/cert.pem"\n# key = "tls/key.pem"',
                                      '[tls]\ncert = "tls/cert.pem"\nkey = "tls/key.pem"')
    if trust_ca:
        text = text.replace('[federation]\n', '[federation]\nca_file = "tls/ca.pem"\n')
    assert "[tls]\ncert" in text
    config.write_text(text)


def https_peer(node: Node) -> PeerConfig:
    key = PublicKey.from_id(node.origin)
    return PeerConfig(name=node.name, url=f"https://{node.host}:{node.port}",
                      node_key=PublicKey.from_id(node.node_key), origin=key,
                      accept_origins=(key,))


@pytest.fixture
async def tls_cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    cluster = Cluster(tmp_path)
    ca = make_ca()
    for name in "abc":
        node = cluster.make(name)
        issue(ca, node.host, node.directory)
        enable_tls(node, trust_ca=name != "c")
    a, b, c = (cluster.nodes[n] for n in "abc")
    add_peer(a.peers_file, https_peer(b))
    add_peer(b.peers_file, https_peer(a))
    add_peer(c.peers_file, https_peer(a))
    yield cluster
    await cluster.stop()


async def test_peers_sync_over_https_with_a_private_ca(tls_cluster: Cluster) -> None:
    await tls_cluster.start()
    await tls_cluster.nodes["a"].add(VALUE)

    async def b_matches() -> bool:
        return bool(await tls_cluster.nodes["b"].matches(VALUE))

    await eventually(b_matches, what="record reaches b over https")


async def test_peer_certificate_from_an_untrusted_ca_is_refused(tls_cluster: Cluster) -> None:
    await tls_cluster.start()
    c = tls_cluster.nodes["c"]
    await tls_cluster.nodes["a"].add(VALUE)
    federation = c.svc.federation
    assert federation is not None
    peer = c.svc.peers.by_name("a")
    assert peer is not None
    with pytest.raises(Exception, match="certificate verify failed"):
        await federation.sync_with(peer)
    [result] = await c.svc.match([HashQuery("pdq", VALUE)], {}, None, "test")
    assert result["matches"] == []
