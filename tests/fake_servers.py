"""A real HTTP server on 127.0.0.1 (a free port) that speaks just enough of Zenodo and the Hub.

Zenodo records API:
  GET /api/records/<id>                         {"id", "metadata": {"title"}, "files": [{key, size,
                                                 checksum: "md5:..", links: {self}}]}; with
                                                style="filename": [{filename, filesize, checksum:
                                                "<bare hex>", links: {download}}]; with style="entries"
                                                (InvenioRDM): {"enabled", "entries": {key: {...}}}
  GET /api/records/<id>/files/<key>/content     the bytes (a key may hold "/", quoted as %2F)
Hugging Face Hub, as huggingface_hub 2.x calls it:
  HEAD|GET /<ns>/<repo>/resolve/<rev>/<path>    X-Repo-Commit, ETag (git blob id, or the sha256 for
                                                LFS files, which also get X-Linked-Etag/-Size);
                                                404s carry X-Error-Code RepoNotFound /
                                                RevisionNotFound / EntryNotFound
  GET /api/models/<ns>/<repo>[/revision/<rev>]  {"id", "sha", "siblings": [{rfilename, size, blobId,
                                                lfs: {size, sha256, pointerSize}}]}
Plain files:
  GET /files/<name>                             optionally only with HTTP Basic credentials and a
                                                ?token= query parameter (401 otherwise)
Every file answers Range requests (206 / 416) and honours If-Range against its ETag.

Faults, queued per (method, path) and used up one per request: "404", "503" (with Retry-After: 0),
"429:<seconds>" and "429-date:<unix time>" (Retry-After as delay-seconds or as an HTTP date),
"ratelimit-reset:<unix time>" (a normal answer with X-RateLimit-Remaining: 0 and that reset time),
"cut" (full Content-Length, half the bytes, connection closed), "corrupt" (one byte flipped),
"ignore-range" (200 and the whole file despite a Range header), "no-length" (the whole file, no
Content-Length, the end marked by closing the connection).

Every request is recorded (method, path, lower-case headers, arrival time.time()); bytes_sent
counts the body bytes each path really wrote to its socket.
"""
from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Clients hanging up mid-request is part of what is tested; anything else is a bug here.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class FakeServer:
    def __init__(self):
        self.records: dict[str, dict] = {}   # record id -> {"title", "files": {key: bytes}, "md5": {key: hex}, ...}
        self.plain: dict[str, bytes] = {}    # name -> bytes
        self.plain_auth: dict[str, tuple] = {}  # name -> (user, password, token) it requires
        self.bytes_sent: dict[str, int] = defaultdict(int)  # path -> body bytes written to sockets
        self.repos: dict[str, dict] = {}     # repo id -> {"commits": {sha: {path: bytes}}, "refs": {name: sha}, "lfs": set}
        self.faults: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.requests: list[dict] = []       # {"method", "path", "headers" (lower-case names)} of every request
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> "FakeServer":
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- content ------------------------------------------------------------------------------
    def add_record(self, record_id: str, files: dict[str, bytes], title: str = "test record",
                   wrong_md5: tuple[str, ...] = (), style: str = "key",
                   declared_sizes: dict[str, int] | None = None) -> None:
        """A Zenodo record; keys in `wrong_md5` are listed with an md5 that does not match their bytes.

        `style`: "key" (records API: key, size, checksum md5:<hex>, links.self), "filename"
        (deposition style: filename, filesize, bare hex checksum, links.download) or "entries"
        (InvenioRDM: files = {"enabled": true, "entries": {key: {...}}}). `declared_sizes`: sizes
        the listing gives instead of the real ones."""
        assert style in ("key", "filename", "entries"), style
        sums = {k: (md5(v + b"x") if k in wrong_md5 else md5(v)) for k, v in files.items()}
        self.records[str(record_id)] = {"title": title, "files": dict(files), "md5": sums, "style": style,
                                        "sizes": {k: len(v) for k, v in files.items()} | (declared_sizes or {})}

    def record_file_path(self, record_id: str, key: str) -> str:
        return f"/api/records/{record_id}/files/{quote(key, safe='')}/content"

    def add_plain(self, name: str, data: bytes, auth: tuple[str, str] | None = None, token: str | None = None) -> str:
        """A file at /files/<name>; with `auth` and `token` it needs Basic credentials and ?token=."""
        self.plain[name] = data
        if auth or token:
            self.plain_auth[name] = (*(auth or (None, None)), token)
        return f"{self.url}/files/{quote(name)}"

    def add_repo(self, repo_id: str, files: dict[str, bytes], lfs: tuple[str, ...] = (), branch: str = "main") -> str:
        """A Hub model repo with one commit holding `files`; paths in `lfs` are served as LFS files."""
        commit = hashlib.sha1(repr(sorted((k, sha256(v)) for k, v in files.items())).encode() + repo_id.encode()).hexdigest()
        repo = self.repos.setdefault(repo_id, {"commits": {}, "refs": {}, "lfs": set()})
        repo["commits"][commit] = dict(files)
        repo["refs"][branch] = commit
        repo["lfs"].update(lfs)
        return commit

    def resolve_path(self, repo_id: str, revision: str, path: str) -> str:
        return f"/{repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"

    def fail(self, path: str, *faults: str, method: str = "GET") -> None:
        """Queue faults for the next requests of `method` on `path` (a URL path, no host)."""
        self.faults[(method, path)].extend(faults)

    def take_fault(self, method: str, path: str) -> str | None:
        with self._lock:
            queue = self.faults.get((method, path))
            return queue.pop(0) if queue else None

    def seen(self, method: str | None = None, path: str | None = None) -> list[dict]:
        return [r for r in self.requests if (method is None or r["method"] == method)
                and (path is None or r["path"].split("?")[0] == path)]


def _handler_for(server: FakeServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive and Content-Length, as real servers do

        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_HEAD(self):
            self._serve("HEAD")

        def do_GET(self):
            self._serve("GET")

        # -- plumbing -------------------------------------------------------------------------
        def _serve(self, method: str):
            server.requests.append({"method": method, "path": self.path, "time": time.time(),
                                    "headers": {k.lower(): v for k, v in self.headers.items()}})
            parts = urlsplit(self.path)
            path = parts.path
            fault = server.take_fault(method, path)
            self._extra = {}
            if fault == "404":
                return self._send(404, b'{"status": 404, "message": "Not found"}', {"Content-Type": "application/json"})
            if fault == "503":
                return self._send(503, b"busy", {"Retry-After": "0"})
            if fault and fault.startswith("429:"):
                return self._send(429, b"slow down", {"Retry-After": fault.split(":", 1)[1]})
            if fault and fault.startswith("429-date:"):
                when = email.utils.formatdate(float(fault.split(":", 1)[1]), usegmt=True)
                return self._send(429, b"slow down", {"Retry-After": when})
            if fault and fault.startswith("ratelimit-reset:"):
                self._extra = {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0",
                               "X-RateLimit-Reset": fault.split(":", 1)[1]}
                fault = None
            try:
                self._route(method, path, parse_qs(parts.query), fault)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _write(self, data: bytes):
            """Write the body in pieces, counting what the socket took (a client may hang up early)."""
            path = urlsplit(self.path).path
            for i in range(0, len(data), 1 << 16):
                piece = data[i:i + (1 << 16)]
                self.wfile.write(piece)
                with server._lock:
                    server.bytes_sent[path] += len(piece)

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None, cut: bool = False,
                  no_length: bool = False):
            self.send_response(status)
            for k, v in {**(headers or {}), **getattr(self, "_extra", {})}.items():
                self.send_header(k, v)
            if no_length:
                self.send_header("Connection", "close")  # the end of the body is the end of the connection
            else:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "HEAD":
                return
            if cut:
                # Promise len(body) bytes, deliver half, hang up: a transfer cut in the middle.
                self._write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self._write(body)
            if no_length:
                self.wfile.flush()
                self.close_connection = True

        def _json(self, obj, status: int = 200, headers: dict | None = None):
            self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _file(self, data: bytes, etag: str, fault: str | None, headers: dict | None = None):
            """Serve bytes with Range/If-Range support and the queued fault applied."""
            if fault == "corrupt":
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            headers = {"ETag": f'"{etag}"', "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream",
                       **(headers or {})}
            rng = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if rng and fault != "ignore-range" and (if_range is None or if_range == f'"{etag}"'):
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                return self._send(206, data[start:], headers, cut=fault == "cut")
            self._send(200, data, headers, cut=fault == "cut", no_length=fault == "no-length")

        # -- routes ---------------------------------------------------------------------------
        def _route(self, method: str, path: str, query: dict, fault: str | None):
            segs = [unquote(s) for s in path.strip("/").split("/")]
            if segs[:2] == ["api", "records"] and len(segs) >= 3:
                return self._zenodo(segs[2], segs[3:], fault)
            if segs[:2] == ["api", "models"] and len(segs) >= 4:
                return self._model_info(f"{segs[2]}/{segs[3]}", segs[4:], query)
            if segs[0] == "files" and len(segs) == 2 and segs[1] in server.plain:
                if not self._authorised(segs[1], query):
                    return self._send(401, b"credentials needed", {"WWW-Authenticate": 'Basic realm="test"'})
                data = server.plain[segs[1]]
                return self._file(data, sha256(data), fault)
            if len(segs) >= 5 and segs[2] == "resolve":
                return self._resolve(f"{segs[0]}/{segs[1]}", segs[3], "/".join(segs[4:]), fault)
            self._send(404, b"no such path")

        def _authorised(self, name: str, query: dict) -> bool:
            if name not in server.plain_auth:
                return True
            user, password, token = server.plain_auth[name]
            if user is not None:
                want = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
                if self.headers.get("Authorization") != want:
                    return False
            return token is None or query.get("token") == [token]

        def _zenodo(self, record_id: str, rest: list[str], fault: str | None):
            record = server.records.get(record_id)
            if record is None:
                return self._json({"status": 404, "message": "The persistent identifier does not exist."}, 404)
            if not rest:
                return self._json({"id": int(record_id), "metadata": {"title": record["title"]},
                                   "files": self._listing(record_id, record)})
            key = "/".join(rest[1:-1])  # already unquoted: a key's own "/" arrives as %2F
            if len(rest) >= 3 and rest[0] == "files" and rest[-1] == "content" and key in record["files"]:
                data = record["files"][key]
                return self._file(data, md5(data), fault)
            self._json({"status": 404, "message": "The requested file does not exist."}, 404)

        def _listing(self, record_id: str, record: dict):
            base = f"{server.url}/api/records/{record_id}"
            out = []
            for i, k in enumerate(record["files"]):
                link = f"{base}/files/{quote(k, safe='')}/content"
                if record["style"] == "filename":
                    out.append({"id": f"f{i}", "filename": k, "filesize": record["sizes"][k],
                                "checksum": record["md5"][k], "links": {"download": link, "self": f"{base}/x/{i}"}})
                else:
                    out.append({"id": f"f{i}", "key": k, "size": record["sizes"][k],
                                "checksum": f"md5:{record['md5'][k]}", "links": {"self": link}})
            if record["style"] == "entries":
                return {"enabled": True, "entries": {e["key"]: {**e, "links": {"content": e["links"]["self"],
                                                                               "self": f"{base}/files/meta"}}
                                                     for e in out}}
            return out

        def _lookup(self, repo_id: str, revision: str):
            repo = server.repos.get(repo_id)
            if repo is None:
                self._send(404, b"Repository not found", {"X-Error-Code": "RepoNotFound",
                                                          "X-Error-Message": "Repository not found"})
                return None, None
            commit = repo["refs"].get(revision, revision if revision in repo["commits"] else None)
            if commit is None:
                self._send(404, b"Invalid rev id", {"X-Error-Code": "RevisionNotFound",
                                                    "X-Error-Message": f"Invalid rev id: {revision}"})
                return repo, None
            return repo, commit

        def _resolve(self, repo_id: str, revision: str, file_path: str, fault: str | None):
            repo, commit = self._lookup(repo_id, revision)
            if commit is None:
                return
            files = repo["commits"][commit]
            if file_path not in files:
                return self._send(404, b"Entry not found", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit,
                                                            "X-Error-Message": "Entry not found"})
            data = files[file_path]
            headers = {"X-Repo-Commit": commit}
            if file_path in repo["lfs"]:
                etag = sha256(data)
                headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
            else:
                etag = git_blob_id(data)
            self._file(data, etag, fault, headers)

        def _model_info(self, repo_id: str, rest: list[str], query: dict):
            revision = rest[1] if len(rest) >= 2 and rest[0] == "revision" else "main"
            repo, commit = self._lookup(repo_id, revision)
            if commit is None:
                return
            blobs = query.get("blobs", ["false"])[0].lower() == "true"
            siblings = []
            for p, data in sorted(repo["commits"][commit].items()):
                s = {"rfilename": p}
                if blobs:
                    s.update({"size": len(data), "blobId": git_blob_id(data)})
                    if p in repo["lfs"]:
                        s["lfs"] = {"size": len(data), "sha256": sha256(data), "pointerSize": 134}
                siblings.append(s)
            self._json({"id": repo_id, "modelId": repo_id, "sha": commit, "private": False, "siblings": siblings})

    return Handler


def checkpoint_bytes(seed: int, size: int = 50_000) -> bytes:
    """Deterministic stand-in bytes for a checkpoint file (content is irrelevant to fetching)."""
    out, block = bytearray(), hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])
