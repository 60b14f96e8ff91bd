"""Drives ferry's FTPS with Python's ftplib and prints one JSON object of results.

Usage: ftplib_client.py SCENARIO PORT USER PASSWORD CAFILE [ARGS...]
Every step records its outcome (reply codes, hashes, names) for the Rust test to assert.
"""
import ftplib
import hashlib
import io
import json
import os
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


def connect(port, user, password, ctx):
    ftp = ftplib.FTP_TLS(context=ctx, timeout=30)
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


class ResumingFTP_TLS(ftplib.FTP_TLS):
    """Data connections resume the control connection's TLS session, as FileZilla insists."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
            self.reused.append(conn.session_reused)
        return conn, size


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


if __name__ == "__main__":
    scenario, port, user, password, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    {
        "main": main_scenario,
        "tls": tls_versions,
        "resumption": resumption,
        "plaintext": plaintext,
        "vanish": vanish,
    }[scenario](
        port, user, password, cafile
    )
