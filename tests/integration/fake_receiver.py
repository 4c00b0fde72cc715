"""A scripted HTTP peer for fault tests: answers uploads with the statuses it is given (then
201 once the script runs out), counts requests, and can stall. Loopback only."""
import http.server
import threading


class FakeReceiver:
    def __init__(self, script=(), stall=False, retry_after=None):
        self.script = list(script)
        self.stall = stall
        self.retry_after = retry_after
        self.requests = []
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                outer.requests.append((self.path, dict(self.headers)))
                if outer.stall:  # take the body slowly and never answer until released
                    self.rfile.read(min(length, 10))
                    outer.release.wait(60)
                    return
                self.rfile.read(length)
                status = outer.script.pop(0) if outer.script else 201
                body = b'{"msg":"scripted","status_code":%d}' % status
                self.send_response(status)
                if outer.retry_after is not None and status != 201:
                    self.send_header("Retry-After", str(outer.retry_after))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
