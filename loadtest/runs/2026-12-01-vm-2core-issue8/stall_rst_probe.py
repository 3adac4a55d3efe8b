#!/usr/bin/env python3
"""Does a stalled client see the server reset it? (summary.md, note 5)

Connects to tickcast on 127.0.0.1:PORT, subscribes to '*', never reads (64 KiB SO_RCVBUF), and
waits up to 14 s on an edge-triggered epoll for ERR/HUP/RDHUP. Prints when that came, or, when it
never did, the server's and the client's side of the connection in `ss` (the server's gone, the
client's still ESTAB with a full receive queue).

    python3 stall_rst_probe.py PORT [NODELAY 0|1] [NONBLOCK 0|1]

Run three or four at once against `tickcast --synthetic-symbols 100 --synthetic-rate 1000`;
about half never saw the reset in the runs of 2026-12-01.
"""
import base64
import os
import select
import socket
import subprocess
import sys
import time

port = int(sys.argv[1])
nodelay = len(sys.argv) > 2 and sys.argv[2] == "1"
nonblock = len(sys.argv) > 3 and sys.argv[3] == "1"
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
if nodelay:
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.connect(("127.0.0.1", port))
key = base64.b64encode(os.urandom(16)).decode()
s.send(
    f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
)
time.sleep(0.2)
s.recv(300)
msg = b'{"op":"subscribe","id":1,"groups":["*"]}'
mask = b"\x01\x02\x03\x04"
s.send(bytes([0x81, 0x80 | len(msg)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(msg)))
if nonblock:
    s.setblocking(False)
ep = select.epoll()
ep.register(s.fileno(), select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET)
t0 = time.time()
lp = s.getsockname()[1]
n = 0
while time.time() - t0 < 14:
    for _fd, e in ep.poll(0.2):
        n += 1
        if e & (select.EPOLLERR | select.EPOLLHUP | select.EPOLLRDHUP):
            print(f"{time.time() - t0:6.2f}s: hang-up event {e:#x} after {n} events")
            sys.exit(0)


def ss(*args):
    return subprocess.run(["ss", *args], capture_output=True, text=True).stdout.strip()


print(
    "no hang-up event; server side:",
    ss("-Htn", "state", "all", f"( sport = :{port} and dport = :{lp} )") or "(gone)",
    "| client side:",
    ss("-Htn", "state", "all", f"( dport = :{port} and sport = :{lp} )")[:200],
)
