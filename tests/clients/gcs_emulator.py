"""A GCS XML-API emulator on loopback for ferry's tests: moto's S3 server with the GCS dialect
translated in front of it.

Neither PyPI GCS emulator serves the calls object_store's GCS client makes (see docs/storage.md):
fake-gcs-server refuses unsigned XML PUTs and has no XML multipart; gcp-storage-emulator sends no
ETag and has no HEAD, list-type=2 or multipart. The GCS XML API is S3's wire protocol with a few
headers renamed, so this wraps moto and translates those:

- `Authorization: Bearer <token>`: moto needs a non-empty value to treat requests as signed.
- `x-goog-copy-source` is S3's `x-amz-copy-source`.
- `x-goog-if-generation-match: 0` (create only) becomes `If-None-Match: *` on a PUT, and is
  checked here on a copy, where moto ignores it.

usage: gcs_emulator.py PORT BUCKET   (prints "ready" once the bucket exists)
"""

import io
import sys
import threading
import urllib.request

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

moto = DomainDispatcherApplication(create_backend_app)


def object_exists(environ, path):
    """HEADs `path` through moto with the caller's host headers."""
    probe = {k: v for k, v in environ.items() if k in ("HTTP_HOST", "HTTP_AUTHORIZATION", "SERVER_NAME",
                                                       "SERVER_PORT", "SERVER_PROTOCOL", "wsgi.url_scheme")}
    probe.update({
        "REQUEST_METHOD": "HEAD", "PATH_INFO": path, "RAW_URI": path, "REQUEST_URI": path,
        "QUERY_STRING": "", "CONTENT_LENGTH": "0", "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr, "wsgi.version": (1, 0), "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    })
    statuses = []
    for _ in moto(probe, lambda status, headers, exc=None: statuses.append(status)):
        pass
    return bool(statuses) and statuses[0].startswith("200")


def app(environ, start_response):
    environ["HTTP_AUTHORIZATION"] = "Bearer emulator"
    create_only = environ.pop("HTTP_X_GOOG_IF_GENERATION_MATCH", None) == "0"
    source = environ.pop("HTTP_X_GOOG_COPY_SOURCE", None)
    if source is not None:
        environ["HTTP_X_AMZ_COPY_SOURCE"] = source
    if create_only and source is None:
        environ["HTTP_IF_NONE_MATCH"] = "*"
    if create_only and source is not None:
        path = environ.get("RAW_URI", environ.get("PATH_INFO", "")).split("?")[0]
        if object_exists(environ, path):
            start_response("412 Precondition Failed", [("Content-Type", "application/xml")])
            return [b"<Error><Code>PreconditionFailed</Code></Error>"]
    return moto(environ, start_response)


def main():
    port, bucket = int(sys.argv[1]), sys.argv[2]
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/{bucket}", method="PUT",
                                     headers={"Authorization": "Bearer emulator"})
    urllib.request.urlopen(request).read()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
