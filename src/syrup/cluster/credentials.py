"""The local cluster's TLS material, bearer token and kubeconfig.

On first start a CA and a server certificate signed by it are generated (ECDSA P-256, like
kubeadm's defaults are RSA but any client accepts EC) and kept in the data directory with 0600
keys; later starts reuse them so kubeconfigs written earlier stay valid. The server
certificate names 127.0.0.1, ::1, localhost and the listen host.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Credentials:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    token: str


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san_for(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes.default.svc"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    try:
        ip = ipaddress.ip_address(host)
        if not ip.is_unspecified and str(ip) not in ("127.0.0.1", "::1"):
            names.append(x509.IPAddress(ip))
    except ValueError:
        if host not in ("localhost",):
            names.append(x509.DNSName(host))
    return names


def ensure(data_dir: Path, *, host: str) -> Credentials:
    """Return the cluster's credentials, generating any that are missing."""
    pki = data_dir / "pki"
    pki.mkdir(mode=0o700, exist_ok=True)
    ca_cert_path, ca_key_path = pki / "ca.crt", pki / "ca.key"
    cert_path, key_path = pki / "apiserver.crt", pki / "apiserver.key"
    token_path = data_dir / "token"
    now = datetime.datetime.now(datetime.UTC)

    if not (ca_cert_path.exists() and ca_key_path.exists()):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "syrup-ca")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(ca_key_path, _key_pem(ca_key))
        ca_cert_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        cert_path.unlink(missing_ok=True)

    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key_loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
    assert isinstance(ca_key_loaded, ec.EllipticCurvePrivateKey)

    # Reissue the server certificate when it does not name the host we now listen on.
    wanted = _san_for(host)
    if cert_path.exists() and key_path.exists():
        current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if not all(name in san for name in wanted):
            cert_path.unlink()
    if not cert_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(wanted), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .sign(ca_key_loaded, hashes.SHA256())
        )
        _write_private(key_path, _key_pem(key))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    if not token_path.exists():
        _write_private(token_path, secrets.token_urlsafe(32).encode())
    token = token_path.read_text().strip()
    return Credentials(ca_cert_path, cert_path, key_path, token)


def write_kubeconfig(path: Path, *, server: str, creds: Credentials, name: str = "syrup") -> None:
    """Write a kubeconfig whose cluster, user and context are all named ``name``."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(
                        creds.ca_cert.read_bytes()
                    ).decode(),
                },
            }
        ],
        "users": [{"name": name, "user": {"token": creds.token}}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}
        ],
        "current-context": name,
        "preferences": {},
    }
    tmp = path.with_suffix(".tmp")
    _write_private(tmp, yaml.safe_dump(config, sort_keys=False).encode())
    tmp.replace(path)
