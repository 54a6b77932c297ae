"""Real SMTP server ("sink") used by ordergrid's integration tests.

The Rust test harness starts this script as a child process, reads the single
line ``READY <port>`` from its stdout, points the code under test at
``127.0.0.1:<port>`` and afterwards inspects the messages that were stored in
the maildir. It is built on aiosmtpd 1.4.6 (see requirements.txt next to it).

Usage::

    python smtp_sink.py --maildir DIR [--tls-mode none|starttls|implicit]
                        [--cert PEM --key PEM] [--user U --password P]

TLS modes:
  none      plaintext SMTP.
  starttls  STARTTLS is offered and required before MAIL/AUTH (530 otherwise).
  implicit  TLS from the first byte (SMTPS).

With ``--user/--password`` AUTH PLAIN/LOGIN is required before MAIL, only
those credentials are accepted (anything else gets ``535``).

Recipient behaviours, decided by the local part of the RCPT TO address
(case-insensitive):
  contains "reject"    -> 550 5.1.1 Recipient rejected
  contains "tempfail"  -> 451 4.3.0 Temporary failure, try again
  anything else        -> accepted

Every accepted message is stored atomically as
``DIR/<6-digit counter>-<uuid>.eml`` (the raw bytes as received) plus a
sidecar ``DIR/<same name>.json`` holding
``{"mail_from", "rcpt_tos", "auth_user", "tls"}``. Both are written to
``DIR/.tmp-*`` files first and renamed into place, sidecar first, so once an
``.eml`` is visible its sidecar is complete. The counter continues after the
highest one already present in DIR.

The server binds 127.0.0.1 on a kernel-chosen port (no free-port race: the
listening socket itself is bound to port 0) and runs until its stdin reaches
EOF or it receives SIGTERM/SIGINT. Note: started with stdin at EOF (e.g.
``</dev/null``) it exits immediately by design; keep a pipe open.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import os
import re
import signal
import ssl
import sys
import threading
import uuid
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

EML_NAME = re.compile(r"^(\d{6,})-[0-9a-f-]{36}\.eml$")


class SinkHandler:
    """aiosmtpd handler: recipient behaviours and atomic maildir storage."""

    def __init__(self, maildir: str) -> None:
        self.maildir = maildir
        highest = 0
        for name in os.listdir(maildir):
            m = EML_NAME.match(name)
            if m:
                highest = max(highest, int(m.group(1)))
        # All hooks run on the single event-loop thread, so a plain int is safe.
        self.counter = highest

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.rsplit("@", 1)[0].lower()
        if "reject" in local:
            return "550 5.1.1 Recipient rejected"
        if "tempfail" in local:
            return "451 4.3.0 Temporary failure, try again"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content
        if raw is None:
            raw = envelope.content
        if isinstance(raw, str):  # only if decode_data were enabled
            raw = raw.encode("utf-8", errors="surrogateescape")
        transport = server.transport
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "auth_user": session.auth_data if session.authenticated else None,
            "tls": transport is not None
            and transport.get_extra_info("ssl_object") is not None,
        }
        self.counter += 1
        uid = str(uuid.uuid4())
        base = os.path.join(self.maildir, f"{self.counter:06d}-{uid}")
        tmp_eml = os.path.join(self.maildir, f".tmp-{uid}")
        tmp_json = tmp_eml + ".json"
        with open(tmp_eml, "wb") as f:
            f.write(raw)
        with open(tmp_json, "w", encoding="utf-8") as f:
            json.dump(meta, f)
        os.replace(tmp_json, base + ".json")
        os.replace(tmp_eml, base + ".eml")
        return "250 Message accepted"


def make_authenticator(user: str, password: str):
    want_user, want_pass = user.encode(), password.encode()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            mechanism in ("PLAIN", "LOGIN")
            and isinstance(auth_data, LoginPassword)
            and hmac.compare_digest(auth_data.login, want_user)
            and hmac.compare_digest(auth_data.password, want_pass)
        )
        if ok:
            return AuthResult(success=True, auth_data=user)
        # handled=False without a message makes aiosmtpd reply 535 5.7.8.
        return AuthResult(success=False, handled=False)

    return authenticator


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--maildir", required=True)
    p.add_argument("--tls-mode", choices=("none", "starttls", "implicit"), default="none")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--port", type=int, default=0,
                   help="port to listen on (default 0: the kernel picks a free one)")
    args = p.parse_args(argv)
    if args.tls_mode != "none" and not (args.cert and args.key):
        p.error(f"--tls-mode {args.tls_mode} needs --cert and --key")
    if (args.user is None) != (args.password is None):
        p.error("--user and --password must be given together")
    return args


async def serve(args) -> None:
    loop = asyncio.get_running_loop()
    os.makedirs(args.maildir, exist_ok=True)

    tls_ctx = None
    if args.tls_mode != "none":
        tls_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_ctx.load_cert_chain(args.cert, args.key)

    smtp_kwargs = dict(
        hostname="localhost",  # avoid socket.getfqdn(), which can stall on DNS
        enable_SMTPUTF8=True,
    )
    if args.tls_mode == "starttls":
        smtp_kwargs.update(tls_context=tls_ctx, require_starttls=True)
    if args.user is not None:
        smtp_kwargs.update(
            auth_required=True,
            authenticator=make_authenticator(args.user, args.password),
            # aiosmtpd only counts STARTTLS as "TLS" for auth_require_tls; in
            # implicit mode the whole connection is TLS, so the check must be
            # off there as well as in plaintext mode.
            auth_require_tls=args.tls_mode == "starttls",
        )

    handler = SinkHandler(args.maildir)
    server = await loop.create_server(
        lambda: SMTP(handler, loop=loop, **smtp_kwargs),
        host="127.0.0.1",
        port=args.port,
        ssl=tls_ctx if args.tls_mode == "implicit" else None,
    )

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def watch_stdin() -> None:
        # A thread works for any kind of stdin (pipe, tty, file, closed fd).
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:  # loop already closed (we stopped on a signal)
            pass

    threading.Thread(target=watch_stdin, name="stdin-eof", daemon=True).start()

    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()

    await stop.wait()
    # Stop listening; asyncio.run() then cancels the open sessions. (No
    # wait_closed(): on Python >= 3.12 it would wait for clients to hang up.)
    server.close()


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="smtp_sink: %(levelname)s %(message)s"
    )
    # Known noise from aiosmtpd 1.4.6: the AUTH-without-TLS warning is expected
    # for this test server, and aiosmtpd itself sets the deprecated
    # Session.login_data on every successful AUTH.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    noise = ("auth_require_tls == False", "Session.login_data is deprecated")
    logging.getLogger("mail.log").addFilter(
        lambda record: not any(n in record.getMessage() for n in noise)
    )
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
