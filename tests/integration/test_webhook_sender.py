"""The webhook sender over real sockets, on 127.0.0.1 only: the checked address is the one
connected to, a timeout and a redirect are failures, TLS certificates are verified, and the
signatures verify with an independent HMAC implementation."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chalicelib.notifications.adapters.webhook_http import HttpWebhookSender
from chalicelib.notifications.webhooks import new_secret
from tests.support.notify import Receiver, Tarpit, signed_by

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def test_it_connects_to_the_checked_address_and_names_the_host(receiver: Receiver) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    # A name that resolves nowhere: only the pinned address can be reached.
    url = f"http://hooks.invalid:{port}/hook?x=1"
    secrets = [new_secret(), new_secret()]
    result = HttpWebhookSender(5).post(url, ["127.0.0.1"], "evt_1", '{"a":1}', secrets, NOW)

    assert result.status == 200 and result.ok
    got = receiver.received[0]
    assert got.headers["host"] == f"hooks.invalid:{port}"
    assert got.headers["webhook-id"] == "evt_1" and got.headers["webhook-timestamp"] == str(
        int(NOW.timestamp())
    )
    assert all(signed_by(s, got.headers, got.body) for s in secrets)
    assert not signed_by(new_secret(), got.headers, got.body)


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_redirect_is_not_followed_and_a_silent_endpoint_times_out() -> None:
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/slow":
                release.wait(10)
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _Server(Handler)
    try:
        sender = HttpWebhookSender(0.5)
        redirected = sender.post(
            f"http://127.0.0.1:{server.port}/r", ["127.0.0.1"], "e", "{}", [new_secret()], NOW
        )
        slow = sender.post(
            f"http://127.0.0.1:{server.port}/slow", ["127.0.0.1"], "e", "{}", [new_secret()], NOW
        )
    finally:
        release.set()
        server.stop()
    assert redirected.status == 302 and not redirected.ok
    assert slow.status is None and slow.error is not None and "No answer" in slow.error


def _self_signed(tmp: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.invalid")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("hooks.invalid"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return context


def test_https_verifies_the_certificate(tmp_path: Path) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _Server(Handler, _self_signed(tmp_path))
    try:
        result = HttpWebhookSender(5).post(
            f"https://hooks.invalid:{server.port}/hook", ["127.0.0.1"], "e", "{}", [new_secret()], NOW
        )
    finally:
        server.stop()
    # An untrusted certificate is a failed try, never a delivery.
    assert result.status is None and result.error is not None and "SSLCertVerificationError" in result.error


def test_a_try_has_one_deadline_however_slowly_the_endpoint_drips() -> None:
    # GIVEN an endpoint that answers 200, but one byte every 0.5 s (30 s for the whole answer)
    tarpit = Tarpit(every=0.5)
    try:
        # WHEN a try with a 1 s limit is made
        result = HttpWebhookSender(1).post(tarpit.url, ["127.0.0.1"], "e", "{}", [new_secret()], NOW)
        sent = tarpit.sent
    finally:
        tarpit.stop()
    # THEN it is a failed try at its deadline, long before the endpoint finished its answer
    # (a limit per socket read would have waited for every byte and called it a delivery)
    assert result.status is None and result.error == "No answer within 1 s"
    assert sent < len(Tarpit.ANSWER) // 2


def test_a_url_with_a_non_ascii_path_and_host_is_sent_percent_encoded(receiver: Receiver) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    result = HttpWebhookSender(5).post(
        f"http://127.0.0.1:{port}/café/ñ?q=é", ["127.0.0.1"], "e", "{}", [new_secret()], NOW
    )
    assert result.ok, result
    assert receiver.paths == ["/caf%C3%A9/%C3%B1?q=%C3%A9"]
