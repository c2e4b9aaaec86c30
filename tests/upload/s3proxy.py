#!/usr/bin/env python3
"""A small HTTP/1.1 reverse proxy for the upload tests: forwards every request to an upstream
S3-compatible server (moto) and answers every Nth object PUT (and multipart part PUT) with
`503 SlowDown`, as S3 does when it throttles. Killing it and starting it again on the same port is
an uplink outage that leaves the store's contents alone. Prints "READY" once it listens and
counts the throttled requests in <state-dir>/slowdowns.

usage: s3proxy.py LISTEN_PORT UPSTREAM_PORT SLOWDOWN_EVERY STATE_DIR
"""
import http.client
import http.server
import os
import sys
import threading

LISTEN, UPSTREAM, EVERY, STATE = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lock = threading.Lock()
puts = 0
slowdowns = 0

SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b'<Message>Please reduce your request rate.</Message></Error>')


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        global puts, slowdowns
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.command == "PUT" and EVERY > 0:
            with lock:
                puts += 1
                throttle = puts % EVERY == 0
                if throttle:
                    slowdowns += 1
                    with open(os.path.join(STATE, "slowdowns"), "w") as f:
                        f.write(str(slowdowns))
            if throttle:
                self.send_response(503)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(SLOWDOWN)))
                self.end_headers()
                self.wfile.write(SLOWDOWN)
                return
        conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward


server = http.server.ThreadingHTTPServer(("127.0.0.1", LISTEN), Proxy)
server.daemon_threads = True
print("READY", flush=True)
server.serve_forever()
