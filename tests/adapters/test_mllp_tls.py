"""MLLP over TLS and mutual TLS, with certificates minted at test time."""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import replace

import pytest

from carehub.adapters.mllp.server import make_server_ssl_context

from .conftest import TEST_SETTINGS, StartServer, TLSFiles
from .mllp_testkit import ListPublisher, MLLPClient, adt


def client_context(tls: TLSFiles, *, with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls.ca))
    if with_cert:
        context.load_cert_chain(str(tls.client_cert), str(tls.client_key))
    return context


async def test_tls_listener_accepts_a_verifying_client(serve: StartServer, tls_files: TLSFiles) -> None:
    publisher = ListPublisher()
    server = await serve(publisher, ssl_context=make_server_ssl_context(tls_files.server_cert, tls_files.server_key))
    assert server.tls
    client = await MLLPClient.connect(server.port, client_context(tls_files, with_cert=False))
    ack = await client.exchange(adt("TLS-1"))
    assert (ack.code, ack.acked_id) == ("AA", "TLS-1")
    assert client.writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
    await client.close()
    assert publisher.control_ids() == ["TLS-1"]


async def test_tls_from_settings(serve: StartServer, tls_files: TLSFiles) -> None:
    settings = replace(TEST_SETTINGS, tls_cert=str(tls_files.server_cert), tls_key=str(tls_files.server_key))
    server = await serve(ListPublisher(), settings)
    client = await MLLPClient.connect(server.port, client_context(tls_files, with_cert=False))
    assert (await client.exchange(adt("TLS-2"))).code == "AA"
    await client.close()


async def test_mutual_tls_accepts_a_client_with_a_certificate(serve: StartServer, tls_files: TLSFiles) -> None:
    context = make_server_ssl_context(tls_files.server_cert, tls_files.server_key, client_ca=tls_files.ca)
    server = await serve(ListPublisher(), ssl_context=context)
    client = await MLLPClient.connect(server.port, client_context(tls_files, with_cert=True))
    assert (await client.exchange(adt("MTLS-1"))).code == "AA"
    await client.close()


async def test_mutual_tls_refuses_a_client_without_a_certificate(serve: StartServer, tls_files: TLSFiles) -> None:
    publisher = ListPublisher()
    context = make_server_ssl_context(tls_files.server_cert, tls_files.server_key, client_ca=tls_files.ca)
    server = await serve(publisher, ssl_context=context)
    # With TLS 1.3 the refusal may only surface on the first read, so go that far.
    with pytest.raises((ssl.SSLError, ConnectionError, EOFError, TimeoutError)):
        client = await MLLPClient.connect(server.port, client_context(tls_files, with_cert=False))
        try:
            await client.exchange(adt("NOPE"))
        finally:
            await client.close()
    assert publisher.messages == []


async def test_tls_client_closing_leaves_no_warnings(
    serve: StartServer, tls_files: TLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve(
        ListPublisher(), ssl_context=make_server_ssl_context(tls_files.server_cert, tls_files.server_key)
    )
    client = await MLLPClient.connect(server.port, client_context(tls_files, with_cert=False))
    assert (await client.exchange(adt("TLS-3"))).code == "AA"
    await client.close()
    await asyncio.sleep(0.05)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
