"""Drives ferry's FTPS with Python's ftplib and prints one JSON object of results.

Usage: ftplib_client.py SCENARIO PORT USER PASSWORD CAFILE [ARGS...]
Every step records its outcome (reply codes, hashes, names) for the Rust test to assert.
"""
import ftplib
import hashlib
import io
import json
import os
import socket
import ssl
import sys


def context(cafile, minimum=None, maximum=None, seclevel0=False):
    ctx = ssl.create_default_context(cafile=cafile)
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    if seclevel0:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


class ResumingFTP_TLS(ftplib.FTP_TLS):
    """Data connections resume the control connection's TLS session, as FileZilla insists."""

    reused = None

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
            if self.reused is not None:
                self.reused.append(conn.session_reused)
        return conn, size


def connect(port, user, password, ctx, kind=None):
    ftp = (kind or ResumingFTP_TLS)(context=ctx, timeout=30)
    ftp.connect("127.0.0.1", port)
    ftp.auth()
    ftp.login(user, password)
    ftp.prot_p()
    return ftp


def code_of(exc):
    return str(exc)[:3]


def main_scenario(port, user, password, cafile):
    r = {}
    ftp = connect(port, user, password, context(cafile))
    data = os.urandom(1024 * 1024 + 3)
    ftp.storbinary("STOR a.bin", io.BytesIO(data))
    out = io.BytesIO()
    ftp.retrbinary("RETR a.bin", out.write)
    r["roundtrip"] = hashlib.sha256(out.getvalue()).hexdigest() == hashlib.sha256(data).hexdigest()
    r["size"] = ftp.size("a.bin")
    r["mkd"] = ftp.mkd("d1")
    ftp.rename("a.bin", "d1/b.bin")
    r["nlst_d1"] = sorted(ftp.nlst("d1"))
    try:
        ftp.rmd("d1")
        r["rmd_nonempty"] = "ok"
    except ftplib.error_perm as e:
        r["rmd_nonempty"] = code_of(e)
    ftp.delete("d1/b.bin")
    r["rmd"] = ftp.rmd("d1")[:3]
    name = "naïve café 日本.txt"
    ftp.storbinary("STOR " + name, io.BytesIO(b"unicode"))
    r["unicode_listed"] = name in ftp.nlst()
    r["mlsd_many"] = len([n for n, facts in ftp.mlsd("many") if facts.get("type") == "file"])
    for attempt, key in (("RETR ../../etc/passwd", "escape_retr"), ("RETR /etc/passwd", "abs_retr")):
        try:
            ftp.retrbinary(attempt, lambda b: None)
            r[key] = "ok"
        except ftplib.error_perm as e:
            r[key] = code_of(e)
    try:
        ftp.cwd("..")
        r["cdup_root"] = "ok"
        r["pwd_after_cdup"] = ftp.pwd()
    except ftplib.error_perm as e:
        r["cdup_root"] = code_of(e)
    try:
        ftp.storbinary("STOR ro/x.txt", io.BytesIO(b"x"))
        r["ro_upload"] = "ok"
    except ftplib.error_perm as e:
        r["ro_upload"] = code_of(e)
    r["ccc"] = ftp.sendcmd("NOOP")[:3]
    try:
        ftp.sendcmd("CCC")
        r["ccc"] = "ok"
    except ftplib.error_perm as e:
        r["ccc"] = code_of(e)
    # ABOR during a download: 426 for the transfer, then 226 for ABOR.
    conn = ftp.transfercmd("RETR big.bin")
    conn.recv(65536)
    ftp.putcmd("ABOR")
    first = ftp.getline()
    second = ftp.getline()
    conn.close()
    r["abor"] = [first[:3], second[:3]]
    r["after_abor"] = ftp.sendcmd("NOOP")[:3]
    r["tls_version"] = ftp.sock.version()
    ftp.quit()
    print(json.dumps(r))


def tls_versions(port, user, password, cafile):
    r = {}
    for label, minimum, maximum in (("1.2", None, ssl.TLSVersion.TLSv1_2), ("1.3", ssl.TLSVersion.TLSv1_3, None)):
        ftp = connect(port, user, password, context(cafile, minimum, maximum))
        out = io.BytesIO()
        ftp.retrbinary("RETR hello.txt", out.write)
        r[label] = {"control": ftp.sock.version(), "data": out.getvalue().decode()}
        ftp.quit()
    try:
        ctx = context(cafile, ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1, seclevel0=True)
        connect(port, user, password, ctx)
        r["1.1"] = "connected"
    except (ssl.SSLError, ConnectionError, OSError) as e:
        r["1.1"] = str(e)
    print(json.dumps(r))


def resumption(port, user, password, cafile):
    r = {}
    for label, maximum in (("1.2", ssl.TLSVersion.TLSv1_2), ("1.3", None)):
        ftp = ResumingFTP_TLS(context=context(cafile, None, maximum), timeout=30)
        ftp.reused = []
        ftp.connect("127.0.0.1", port)
        ftp.auth()
        ftp.login(user, password)
        ftp.prot_p()
        out = io.BytesIO()
        ftp.retrbinary("RETR hello.txt", out.write)
        ftp.retrbinary("RETR hello.txt", out.write)
        r[label] = {"reused": ftp.reused, "data": out.getvalue().decode()}
        ftp.quit()
    print(json.dumps(r))


def plaintext(port, user, password, cafile):
    ftp = ftplib.FTP(timeout=30)
    ftp.connect("127.0.0.1", port)
    try:
        ftp.login(user, password)
        print(json.dumps({"login": "ok"}))
    except ftplib.error_perm as e:
        print(json.dumps({"login": str(e)}))


def vanish(port, user, password, cafile):
    """Starts an upload over TLS and dies without finishing it (no close_notify, no QUIT)."""
    ftp = connect(port, user, password, context(cafile))
    conn = ftp.transfercmd("STOR vanished.bin")
    conn.sendall(os.urandom(2 * 1024 * 1024))
    print(json.dumps({"sent": True}), flush=True)
    os._exit(0)


def pasv_port(ftp):
    return ftplib.parse227(ftp.sendcmd("PASV"))[1]


def steal(port, user, password, cafile):
    """A second client on the same address races for the victim's passive port: with a fresh TLS
    handshake, and with a session resumed from its own login's control connection. Neither gets
    a byte; the victim sees 522 and its next transfer works. The victim logs in as USER, the
    thief as "thief" with the same password."""
    r = {}
    ctx = context(cafile)
    victim = connect(port, user, password, ctx)
    victim.reused = []
    thief = connect(port, "thief", password, ctx)

    def race(kind, session, after_handshake=None):
        data_port = pasv_port(victim)
        victim.putcmd("RETR secret.bin")
        r[kind + "_150"] = victim.getresp()[:3]
        raw = socket.create_connection(("127.0.0.1", data_port), timeout=30)
        got = b""
        try:
            tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
            r[kind + "_resumed"] = tls.session_reused
            if after_handshake:
                after_handshake()
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                got += chunk
        except (ssl.SSLError, OSError) as e:
            r[kind + "_error"] = type(e).__name__
        r[kind + "_stolen_bytes"] = len(got)
        try:
            victim.voidresp()
            r[kind + "_victim"] = "226"
        except ftplib.Error as e:
            r[kind + "_victim"] = code_of(e)

    race("fresh", None)
    race("other_login", thief.sock.session)
    # A session of a control connection that negotiated TLS but never logged in: the server
    # waits for that connection's login (a client's sibling connection may be logging in), and
    # when it closes without one, the session is nobody's.
    unbound = ftplib.FTP_TLS(context=ctx, timeout=30)
    unbound.connect("127.0.0.1", port)
    unbound.auth()
    try:
        unbound.sendcmd("NOOP")  # reads the TLS 1.3 ticket that follows the handshake
    except ftplib.Error:
        pass
    race("unbound", unbound.sock.session, after_handshake=unbound.close)
    # STOR through a stolen port: nothing may be written.
    data_port = pasv_port(victim)
    victim.putcmd("STOR planted.bin")
    r["stor_150"] = victim.getresp()[:3]
    raw = socket.create_connection(("127.0.0.1", data_port), timeout=30)
    try:
        tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        tls.sendall(b"planted by the thief")
        tls.unwrap()
    except (ssl.SSLError, OSError) as e:
        r["stor_error"] = type(e).__name__
    try:
        victim.voidresp()
        r["stor_victim"] = "226"
    except ftplib.Error as e:
        r["stor_victim"] = code_of(e)
    out = io.BytesIO()
    victim.retrbinary("RETR secret.bin", out.write)
    r["victim_sha256"] = hashlib.sha256(out.getvalue()).hexdigest()
    r["victim_reused"] = victim.reused
    # Python's stock FTP_TLS never resumes the session on data connections: refused as well.
    stock = connect(port, user, password, ctx, ftplib.FTP_TLS)
    try:
        stock.retrbinary("RETR secret.bin", lambda b: None)
        r["stock"] = "226"
    except ftplib.Error as e:
        r["stock"] = code_of(e)
    except (ssl.SSLError, OSError):
        # The data connection was closed under the client; the reply is still to be read.
        try:
            stock.voidresp()
            r["stock"] = "226"
        except ftplib.Error as e:
            r["stock"] = code_of(e)
    for ftp in (victim, thief, stock):
        ftp.quit()
    print(json.dumps(r))


def many(port, user, password, cafile, count="200"):
    """COUNT 4 KiB uploads, one data connection each, then every file read back."""
    ftp = connect(port, user, password, context(cafile))
    ftp.reused = []
    sent = {}
    for i in range(int(count)):
        data = os.urandom(4096)
        name = "small-%04d.bin" % i
        ftp.storbinary("STOR " + name, io.BytesIO(data))
        sent[name] = hashlib.sha256(data).hexdigest()
    same = 0
    for name, digest in sent.items():
        out = io.BytesIO()
        ftp.retrbinary("RETR " + name, out.write)
        same += hashlib.sha256(out.getvalue()).hexdigest() == digest
    ftp.quit()
    print(json.dumps({"sent": len(sent), "same": same, "all_resumed": all(ftp.reused)}))


def no_close_notify(port, user, password, cafile):
    """Sends a whole small file, then closes the data connection's TCP without close_notify:
    the upload must be discarded (426), and the session goes on."""
    r = {}
    ftp = connect(port, user, password, context(cafile))
    conn = ftp.transfercmd("STOR cut.bin")
    conn.sendall(os.urandom(4096))
    # SSLSocket.close() closes the socket without sending close_notify.
    conn.close()
    try:
        ftp.voidresp()
        r["cut"] = "226"
    except ftplib.Error as e:
        r["cut"] = code_of(e)
    ftp.storbinary("STOR fine.bin", io.BytesIO(b"fine"))
    r["listed"] = sorted(ftp.nlst())
    ftp.quit()
    print(json.dumps(r))


if __name__ == "__main__":
    scenario, port, user, password, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    {
        "main": main_scenario,
        "tls": tls_versions,
        "resumption": resumption,
        "plaintext": plaintext,
        "vanish": vanish,
        "steal": steal,
        "many": many,
        "no_close_notify": no_close_notify,
    }[scenario](port, user, password, cafile, *sys.argv[6:])
