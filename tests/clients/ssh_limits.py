"""paramiko as a plain or hostile SSH/SFTP client for ferry's limit tests. Prints JSON lines.

Usage:
  ssh_limits.py attempts PORT USER RIGHT WRONG_COUNT
      WRONG_COUNT wrong passwords, then the right one, on one connection; reports each answer.
  ssh_limits.py unread PORT USER PASSWORD COUNT LEN
      Uploads big.bin, then sends COUNT raw SFTP READs of LEN bytes on a fresh channel and never
      reads the channel. Prints {"sent": COUNT}, then waits for stdin to close and exits abruptly.
  ssh_limits.py hold PORT USER PASSWORD
      Reads commands from stdin, one per line, answering each with a JSON line:
      "open PREFIX N" opens up to N more files for writing, "close K" closes K of them,
      "stat PATH" stats a path. Exits abruptly at end of input.
  ssh_limits.py statuses PORT USER PASSWORD
      Provokes each SFTP status and reports the code and message text the server sent.
  ssh_limits.py readwrite PORT USER PASSWORD
      Read-back through handles opened r+, a+, w+.
"""
import io
import json
import logging
import os
import socket
import struct
import sys
import time

import paramiko
from paramiko import sftp as sftp_proto

logging.basicConfig(level=logging.CRITICAL)


def emit(value):
    print(json.dumps(value), flush=True)


def connect(port, user, password):
    transport = paramiko.Transport(("127.0.0.1", port))
    transport.connect(username=user, password=password)
    return transport


class Disconnects(logging.Handler):
    """Keeps paramiko's log lines that report a disconnect message from the server."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages = []

    def emit(self, record):
        text = record.getMessage()
        if "Disconnect" in text:
            self.messages.append(text)


def attempts(port, user, right, wrong_count):
    catcher = Disconnects()
    log = logging.getLogger("paramiko.transport")
    log.setLevel(logging.DEBUG)
    log.addHandler(catcher)
    sock = socket.create_connection(("127.0.0.1", port))
    transport = paramiko.Transport(sock)
    transport.auth_timeout = 60
    transport.start_client(timeout=60)
    answers, errors = [], []
    for i in range(wrong_count + 1):
        password = right if i == wrong_count else "wrong-%d" % i
        try:
            transport.auth_password(user, password)
            answers.append("ok")
        except paramiko.BadAuthenticationType as e:
            answers.append("bad-type:" + ",".join(e.allowed_types))
        except paramiko.AuthenticationException as e:
            answers.append("timeout" if "timeout" in str(e).lower() else "denied")
        except (paramiko.SSHException, EOFError, OSError) as e:
            answers.append("closed")
            errors.append("%s: %s" % (type(e).__name__, e))
    # The server's disconnect may trail the last answer.
    for _ in range(400):
        if catcher.messages or not transport.is_active():
            break
        time.sleep(0.05)
    emit({"answers": answers, "errors": errors, "disconnect": catcher.messages, "active": transport.is_active()})
    transport.close()


def packet(kind, payload):
    return struct.pack(">IB", len(payload) + 1, kind) + payload


def string(value):
    return struct.pack(">I", len(value)) + value


def read_packet(channel):
    def exact(n):
        out = b""
        while len(out) < n:
            chunk = channel.recv(n - len(out))
            if not chunk:
                raise EOFError("channel closed")
            out += chunk
        return out

    (length,) = struct.unpack(">I", exact(4))
    body = exact(length)
    return body[0], body[1:]


def unread(port, user, password, count, length):
    transport = connect(port, user, password)
    client = paramiko.SFTPClient.from_transport(transport)
    client.putfo(io.BytesIO(os.urandom(length)), "big.bin")
    client.close()
    channel = transport.open_session()
    channel.invoke_subsystem("sftp")
    channel.sendall(packet(1, struct.pack(">I", 3)))
    kind, _ = read_packet(channel)
    assert kind == 2, kind
    channel.sendall(packet(3, struct.pack(">I", 1) + string(b"big.bin") + struct.pack(">II", 1, 0)))
    kind, body = read_packet(channel)
    assert kind == 102, (kind, body)
    (handle_len,) = struct.unpack(">I", body[4:8])
    handle = body[8 : 8 + handle_len]
    requests = b"".join(
        packet(5, struct.pack(">I", 100 + i) + string(handle) + struct.pack(">QI", 0, length))
        for i in range(count)
    )
    channel.sendall(requests)
    emit({"sent": count})
    sys.stdin.read()
    os._exit(0)


def hold(port, user, password):
    transport = connect(port, user, password)
    client = paramiko.SFTPClient.from_transport(transport)
    files = []
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "open":
            prefix, n = words[1], int(words[2])
            opened, error = 0, None
            for i in range(n):
                try:
                    files.append(client.open("%s-%d" % (prefix, len(files)), "w"))
                    opened += 1
                except IOError as e:
                    error = str(e)
                    break
            emit({"opened": opened, "error": error, "open": len(files)})
        elif words[0] == "close":
            for _ in range(int(words[1])):
                files.pop().close()
            emit({"open": len(files)})
        elif words[0] == "stat":
            try:
                emit({"size": client.stat(words[1]).st_size})
            except IOError as e:
                emit({"error": str(e)})
    os._exit(0)


def statuses(port, user, password):
    transport = connect(port, user, password)
    client = paramiko.SFTPClient.from_transport(transport)
    seen = {}

    def status_of(name, *request):
        try:
            kind, msg = client._request(*request)
            seen[name] = {"kind": kind}
        except IOError as e:
            seen[name] = {"errno": e.errno, "text": e.strerror if e.errno else str(e)}

    client.putfo(io.BytesIO(b"x"), "there.txt")
    client.mkdir("folder")
    status_of("no_such_file", sftp_proto.CMD_STAT, "/missing.txt")
    status_of("failure", sftp_proto.CMD_MKDIR, "/folder", paramiko.SFTPAttributes())
    status_of("permission_denied", sftp_proto.CMD_OPEN, "/ro/new.txt", 0x1A, paramiko.SFTPAttributes())
    status_of("unsupported", sftp_proto.CMD_EXTENDED, "nothing@example.com")
    status_of("bad_message", sftp_proto.CMD_STAT)
    emit(seen)


def readwrite(port, user, password):
    transport = connect(port, user, password)
    client = paramiko.SFTPClient.from_transport(transport)
    result = {}
    client.putfo(io.BytesIO(b"0123456789"), "rplus.txt")
    with client.open("rplus.txt", "r+") as f:
        f.seek(2)
        f.write(b"ab")
        f.seek(0)
        result["r+"] = f.read().decode()
    client.putfo(io.BytesIO(b"start-"), "aplus.txt")
    with client.open("aplus.txt", "a+") as f:
        f.write(b"end")
        f.seek(0)
        result["a+"] = f.read().decode()
    with client.open("wplus.txt", "w+") as f:
        f.write(b"fresh")
        f.seek(1)
        result["w+"] = f.read(3).decode()
    for name in ("rplus.txt", "aplus.txt", "wplus.txt"):
        with client.open(name, "r") as f:
            result["after " + name] = f.read().decode()
    emit(result)


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    args = sys.argv[3:]
    if mode == "attempts":
        attempts(port, args[0], args[1], int(args[2]))
    elif mode == "unread":
        unread(port, args[0], args[1], int(args[2]), int(args[3]))
    elif mode == "hold":
        hold(port, args[0], args[1])
    elif mode == "statuses":
        statuses(port, *args)
    elif mode == "readwrite":
        readwrite(port, *args)
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
