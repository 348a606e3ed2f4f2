"""The Python client against a reducerd serving TLS (and mutual TLS) with bearer-token auth.

Certificates and tokens are made here, for each run: a CA that signs the server's and a
client's certificate, and a second CA that has signed nothing the server uses.
"""

import hashlib
import secrets
import threading
import uuid
from types import SimpleNamespace

import grpc
import pytest
import trustme
from conftest import Reducerd

from purereducer import Client, PureReducerError, Status


def key(name: str) -> str:
    return f"py-tls-{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """CA, server and client certificates as PEM files, and the tokens reducerd accepts."""
    d = tmp_path_factory.mktemp("pki")
    ca, stranger = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(d / "ca.pem")
    stranger.cert_pem.write_to_path(d / "stranger-ca.pem")
    server = ca.issue_cert("localhost", "127.0.0.1")
    server.private_key_pem.write_to_path(d / "server.key")
    (d / "server.pem").write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    client = ca.issue_cert("clients-test")
    client.private_key_pem.write_to_path(d / "client.key")
    (d / "client.pem").write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    # A client certificate from a CA the mutual-TLS server does not trust.
    outsider = stranger.issue_cert("outsider")
    outsider.private_key_pem.write_to_path(d / "outsider.key")
    (d / "outsider.pem").write_bytes(b"".join(blob.bytes() for blob in outsider.cert_chain_pems))

    admin, reader = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    entries = [(admin, "clients-test", "admin"), (reader, "clients-reader", "reader")]
    (d / "tokens.toml").write_text("".join(
        f'[[token]]\nsha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n'
        f'subject = "{subject}"\nnamespaces = ["*"]\nroles = ["{role}"]\n\n'
        for token, subject, role in entries))
    return SimpleNamespace(dir=d, ca=d / "ca.pem", stranger_ca=d / "stranger-ca.pem",
                           client_cert=d / "client.pem", client_key=d / "client.key",
                           outsider_cert=d / "outsider.pem", outsider_key=d / "outsider.key",
                           admin=admin, reader=reader)


def _config(pki, client_ca: bool) -> str:
    tls = f'[server.tls]\ncert_file = "{pki.dir / "server.pem"}"\nkey_file = "{pki.dir / "server.key"}"\n'
    if client_ca:
        tls += f'client_ca_file = "{pki.ca}"\n'
    return tls + f'\n[auth]\nmode = "token"\ntokens_file = "{pki.dir / "tokens.toml"}"\n'


@pytest.fixture(scope="module")
def secure(pki, tmp_path_factory):
    """A reducerd with TLS and token auth; `.addr` is its address."""
    srv = Reducerd(tmp_path_factory.mktemp("tls"), _config(pki, client_ca=False))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def mutual(pki, tmp_path_factory):
    """A reducerd with TLS that also requires client certificates signed by the CA."""
    srv = Reducerd(tmp_path_factory.mktemp("mtls"), _config(pki, client_ca=True))
    yield srv
    srv.stop()


def _refused(call, code):
    with pytest.raises(PureReducerError) as err:
        call()
    assert err.value.code == code, err.value.details
    return err.value


@pytest.mark.parametrize("trust", ["ca_file", "root_certificates"])
def test_tls_with_token_handles_an_action_and_reads_the_state(secure, pki, trust):
    roots = {"ca_file": pki.ca} if trust == "ca_file" else {"root_certificates": pki.ca.read_bytes()}
    k = key("order")
    with Client(secure.addr, tls=True, token=pki.admin, **roots) as c:
        first = c.handle_action(k, "merge", "set", {"customer": "ana", "total": 42})
        assert (first.status, first.version) == (Status.COMMITTED, 1)
        state = c.get_state(k)
    assert (state.version, state.state) == (1, {"customer": "ana", "total": 42})


def test_tls_with_token_subscribe_receives_a_committed_event(secure, pki):
    k = key("sub")
    with Client(secure.addr, tls=True, ca_file=pki.ca, token=pki.admin) as c:
        events = c.subscribe(workflow_keys=[k], timeout=30)
        received = threading.Event()
        failures = []

        def commit_until_received():
            # The stream has no "subscribed" signal: commit again every 100 ms until the
            # subscriber has an event, for at most 10 s.
            try:
                for i in range(100):
                    c.handle_action(k, "merge", "set", {"i": i})
                    if received.wait(0.1):
                        return
            except Exception as err:  # surfaced below, on the test's thread
                failures.append(err)

        writer = threading.Thread(target=commit_until_received, daemon=True)
        writer.start()
        try:
            event = next(e for e in events if e.kind == "state_committed")
        finally:
            received.set()
            events.close()
            writer.join(timeout=30)
    assert not failures, failures
    # Commit i made version i + 1; which commit is the first one seen depends on when the
    # subscription took effect.
    assert event.workflow_key == k
    assert event.body["state"] == {"i": event.version - 1}


def test_calls_without_a_token_are_unauthenticated(secure, pki):
    with Client(secure.addr, tls=True, ca_file=pki.ca) as c:
        _refused(lambda: c.get_state(key("none")), grpc.StatusCode.UNAUTHENTICATED)
        _refused(lambda: c.handle_action(key("none"), "merge", "set", {"x": 1}),
                 grpc.StatusCode.UNAUTHENTICATED)
        _refused(lambda: next(c.subscribe(workflow_keys=[key("none")], timeout=10)),
                 grpc.StatusCode.UNAUTHENTICATED)


def test_an_unknown_token_is_unauthenticated(secure, pki):
    with Client(secure.addr, tls=True, ca_file=pki.ca, token="not-" + pki.admin) as c:
        _refused(lambda: c.get_state(key("unknown")), grpc.StatusCode.UNAUTHENTICATED)


def test_a_reader_token_reads_but_may_not_write(secure, pki):
    k = key("reader")
    with Client(secure.addr, tls=True, ca_file=pki.ca, token=pki.admin) as admin:
        admin.handle_action(k, "merge", "set", {"x": 1})
    with Client(secure.addr, tls=True, ca_file=pki.ca, token=pki.reader) as reader:
        assert reader.get_state(k).state == {"x": 1}
        _refused(lambda: reader.handle_action(k, "merge", "set", {"x": 2}),
                 grpc.StatusCode.PERMISSION_DENIED)
    with Client(secure.addr, tls=True, ca_file=pki.ca, token=pki.admin) as admin:
        assert admin.get_state(k).version == 1


@pytest.mark.parametrize("roots", ["another CA", "system roots"])
def test_a_client_that_does_not_trust_the_server_ca_fails(secure, pki, roots):
    trust = {"ca_file": pki.stranger_ca} if roots == "another CA" else {}
    with Client(secure.addr, tls=True, token=pki.admin, **trust) as c:
        err = _refused(lambda: c.get_state(key("stranger")), grpc.StatusCode.UNAVAILABLE)
    assert "CERTIFICATE_VERIFY_FAILED" in err.details, err.details


def test_a_plaintext_client_cannot_talk_to_a_tls_server(secure, pki):
    with Client(secure.addr, token=pki.admin) as c:
        _refused(lambda: c.get_state(key("plain")), grpc.StatusCode.UNAVAILABLE)


def test_mutual_tls_with_a_client_certificate_and_token(mutual, pki):
    k = key("mtls")
    with Client(mutual.addr, tls=True, ca_file=pki.ca, client_cert=pki.client_cert,
                client_key=pki.client_key, token=pki.admin) as c:
        assert c.handle_action(k, "merge", "set", {"m": 1}).status == Status.COMMITTED
        assert c.get_state(k).state == {"m": 1}


@pytest.mark.parametrize("cert", [None, "outsider"])
def test_mutual_tls_refuses_a_client_without_a_trusted_certificate(mutual, pki, cert):
    certs = {"client_cert": pki.outsider_cert, "client_key": pki.outsider_key} if cert else {}
    with Client(mutual.addr, tls=True, ca_file=pki.ca, token=pki.admin, **certs) as c:
        _refused(lambda: c.get_state(key("no-cert")), grpc.StatusCode.UNAVAILABLE)


def test_tls_options_are_refused_without_tls(pki):
    with pytest.raises(ValueError, match="TLS options without tls=True: ca_file"):
        Client("127.0.0.1:1", ca_file=pki.ca)
    with pytest.raises(ValueError, match="without tls=True: client_cert, client_key"):
        Client("127.0.0.1:1", client_cert=pki.client_cert, client_key=pki.client_key)


def test_client_cert_and_key_go_together(pki):
    with pytest.raises(ValueError, match="go together"):
        Client("127.0.0.1:1", tls=True, ca_file=pki.ca, client_cert=pki.client_cert)
    with pytest.raises(ValueError, match="not both"):
        Client("127.0.0.1:1", tls=True, ca_file=pki.ca, root_certificates=pki.ca.read_bytes())


def test_a_missing_ca_file_is_an_error_at_construction(pki):
    with pytest.raises(FileNotFoundError):
        Client("127.0.0.1:1", tls=True, ca_file=pki.dir / "absent.pem")
