"""A stand-in for Hugging Face's router, reached through an HTTPS proxy: what a client sends there.

Tests cannot reach ``https://router.huggingface.co``, yet the credential rule is about that host:
the ambient token goes there and nowhere else. :class:`HubProxy` is an HTTP proxy on 127.0.0.1
that answers ``CONNECT router.huggingface.co:443`` itself: it opens TLS with a certificate for
Hugging Face's hosts signed by a throw-away authority, records the request inside (host, path,
headers) and answers it with a fixed status. A client trusts that authority and uses the proxy
through the standard variables ``SSL_CERT_FILE`` and ``HTTPS_PROXY`` (httpx reads both when it
builds a client), so the client under test is not patched.

Example::

    with HubProxy(tmp_path) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("SSL_CERT_FILE", str(proxy.ca_file))
        ...  # a request to https://router.huggingface.co/... lands in proxy.requests
"""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOSTS = ("router.huggingface.co", "huggingface.co")


@dataclass(frozen=True)
class SeenRequest:
    """One request read inside the tunnel: the CONNECT target, then the HTTP request itself."""

    tunnel: str
    method: str
    path: str
    headers: dict[str, str]


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA certificate, and a certificate and key for :data:`HOSTS` signed by it (PEM files)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    valid = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hfrag test authority")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTS[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in HOSTS]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key"
    ca_file.write_bytes(ca.public_bytes(pem))
    cert_file.write_bytes(leaf.public_bytes(pem))
    key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_file, cert_file, key_file


def _read_head(conn: socket.socket | ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the end of the head")
        data += chunk
    return data


def _parse(head: bytes) -> tuple[str, str, dict[str, str], bytes]:
    text, _, rest = head.partition(b"\r\n\r\n")
    lines = text.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers, rest


class HubProxy:
    """An HTTPS proxy that plays Hugging Face's hosts (see the module docstring).

    Every request is answered ``status`` with an HF-style JSON error body and the connection is
    closed; ``requests`` lists what arrived, in order.
    """

    def __init__(self, folder: Path, status: int = 401) -> None:
        self.ca_file, cert_file, key_file = _certificates(folder)
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(cert_file, key_file)
        self.status = status
        self.requests: list[SeenRequest] = []
        self.errors: list[str] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)  # close() does not wake a blocked accept(): poll a flag
        self._stopped = threading.Event()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> HubProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._sock.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)  # the listening socket's timeout is not inherited: set one
        try:
            method, tunnel, _, _ = _parse(_read_head(conn))
            if method != "CONNECT" or tunnel.split(":")[0] not in HOSTS:
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                self.errors.append(f"{method} {tunnel}")
                return
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            with self._tls.wrap_socket(conn, server_side=True) as tls:
                method, path, headers, rest = _parse(_read_head(tls))
                length = int(headers.get("content-length", "0") or 0)
                while len(rest) < length:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
                self.requests.append(SeenRequest(tunnel, method, path, headers))
                body = json.dumps({"error": "Invalid credentials in Authorization header"})
                tls.sendall(
                    f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode()
                )
        except (OSError, ValueError) as exc:
            self.errors.append(repr(exc))
        finally:
            conn.close()
