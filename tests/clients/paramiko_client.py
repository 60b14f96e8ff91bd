"""Drives ferry with paramiko (password auth) and prints one JSON object of results.

Usage: paramiko_client.py PORT USER PASSWORD WORKDIR
Each step records what happened, so the Rust test asserts exact outcomes.
"""
import hashlib
import json
import os
import sys

import paramiko


def main():
    port, user, password, workdir = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    results = {}
    transport = paramiko.Transport(("127.0.0.1", port))
    transport.connect(username=user, password=password)
    sftp = paramiko.SFTPClient.from_transport(transport)

    data = os.urandom(3 * 1024 * 1024 + 17)
    with sftp.open("p.bin", "wb") as f:
        f.set_pipelined(True)
        f.write(data)
    with sftp.open("p.bin", "rb") as f:
        f.prefetch()
        back = f.read()
    results["roundtrip"] = hashlib.sha256(back).hexdigest() == hashlib.sha256(data).hexdigest()
    results["stat_size"] = sftp.stat("p.bin").st_size

    sftp.mkdir("d")
    sftp.putfo(__import__("io").BytesIO(b"x"), "d/one")
    results["listdir"] = sorted(sftp.listdir("d"))

    # Plain SFTP v3 rename refuses an existing target; posix-rename replaces it.
    sftp.putfo(__import__("io").BytesIO(b"target"), "t.txt")
    try:
        sftp.rename("d/one", "t.txt")
        results["rename_over_existing"] = "ok"
    except IOError as e:
        results["rename_over_existing"] = "error"
    sftp.posix_rename("d/one", "t.txt")
    with sftp.open("t.txt", "rb") as f:
        results["after_posix_rename"] = f.read().decode()

    try:
        sftp.stat("../../etc/passwd")
        results["escape"] = "ok"
    except PermissionError:
        results["escape"] = "permission"
    except FileNotFoundError:
        results["escape"] = "notfound"

    # `..` at the top stays at the top, as under a chroot.
    results["realpath_above_root"] = sftp.normalize("/../../..")
    sftp.chdir("..")
    results["cwd_after_cd_up"] = sftp.getcwd()
    results["realpath_up_and_down"] = sftp.normalize("../../d/../t.txt")
    sftp.chdir(None)

    # readlink answers what the link says: relative as written, absolute as a jail path.
    sftp.symlink("t.txt", "link.txt")
    results["readlink"] = sftp.readlink("link.txt")
    sftp.symlink("/t.txt", "abs-link.txt")
    results["readlink_absolute"] = sftp.readlink("abs-link.txt")
    with sftp.open("link.txt", "rb") as f:
        results["read_through_link"] = f.read().decode()
    try:
        sftp.symlink("../../etc/passwd", "bad-link")
        results["bad_symlink"] = "ok"
    except IOError:
        results["bad_symlink"] = "error"
    sftp.remove("abs-link.txt")

    sftp.utime("t.txt", (1_500_000_000, 1_500_000_000))
    results["mtime"] = sftp.stat("t.txt").st_mtime
    sftp.chmod("t.txt", 0o640)
    results["mode"] = oct(sftp.stat("t.txt").st_mode & 0o777)
    sftp.remove("t.txt")
    sftp.remove("link.txt")
    sftp.rmdir("d")
    results["final_listing"] = sorted(sftp.listdir("."))
    sftp.close()
    transport.close()
    print(json.dumps(results))


def try_login(port, user, password):
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        transport.connect(username=user, password=password)
        return "ok"
    except paramiko.AuthenticationException:
        return "denied"
    finally:
        transport.close()


if __name__ == "__main__":
    if sys.argv[1] == "login":
        print(json.dumps({"login": try_login(int(sys.argv[2]), sys.argv[3], sys.argv[4])}))
    else:
        main()
