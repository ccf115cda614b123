#!/usr/bin/python3
# Captures raw opentracker responses as the test vectors in this directory. Run inside the lab namespace:
#   $SHARED/interop/run-in-netns.sh --timeout 90 ./capture_opentracker.py .
# (SHARED defaults to ../../../../shared; override with PIECEWORK_SHARED). Interval values vary per run.
import os, socket, struct, subprocess, sys, time, urllib.parse
OUT = sys.argv[1]
PORT = 42425
H = bytes([0x11] * 20)
SHARED = os.environ.get("PIECEWORK_SHARED", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../../shared"))
tr = subprocess.Popen([os.path.join(SHARED, "interop/tracker.sh"), "--port", str(PORT), "--timeout", "60", "--hash", H.hex()])
try:
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=0.5).close(); break
        except OSError:
            if time.time() > deadline: raise
            time.sleep(0.1)
    def http(path):
        s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b: break
            data += b
        s.close(); return data
    def ann(pid, port, left, event, extra=""):
        q = urllib.parse.urlencode({"info_hash": H, "peer_id": pid, "port": port, "uploaded": 0, "downloaded": 0, "left": left, "event": event})
        return http(f"/announce?{q}{extra}")
    ann(b"-PW0001-000000000001", 6001, 1000, "started", "&compact=1")
    open(f"{OUT}/opentracker_http_announce_compact.http", "wb").write(ann(b"-PW0001-000000000002", 6002, 0, "started", "&compact=1"))
    open(f"{OUT}/opentracker_http_400_html.http", "wb").write(ann(b"-PW0001-000000000002", 6002, 0, "", "&compact=0"))
    open(f"{OUT}/opentracker_http_scrape.http", "wb").write(http("/scrape?" + urllib.parse.urlencode({"info_hash": H})))
    q = urllib.parse.urlencode({"info_hash": bytes([0x33]*20), "peer_id": b"-PW0001-000000000003", "port": 1, "left": 1})
    open(f"{OUT}/opentracker_http_not_authorized.http", "wb").write(http(f"/announce?{q}&compact=1"))
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0)); u.settimeout(5)
    u.sendto(struct.pack(">QII", 0x41727101980, 0, 0x01020304), ("127.0.0.1", PORT))
    conn = u.recv(2048); open(f"{OUT}/opentracker_udp_connect.bin", "wb").write(conn)
    cid = struct.unpack(">IIQ", conn)[2]
    pkt = struct.pack(">QII20s20sQQQIIIiH", cid, 1, 0x05060708, H, b"-PW0001-000000000004", 0, 500, 0, 2, 0, 7, -1, 6004)
    u.sendto(pkt, ("127.0.0.1", PORT))
    open(f"{OUT}/opentracker_udp_announce.bin", "wb").write(u.recv(2048))
    u.sendto(struct.pack(">QII", cid, 2, 0x0a0b0c0d) + H, ("127.0.0.1", PORT))
    open(f"{OUT}/opentracker_udp_scrape.bin", "wb").write(u.recv(2048))
    u.sendto(struct.pack(">QII", 12345, 2, 0x0e0f1011) + H, ("127.0.0.1", PORT))
    try:
        open(f"{OUT}/opentracker_udp_bad_connection_id.bin", "wb").write(u.recv(2048))
    except socket.timeout:
        print("no answer to a bad connection id")
    print("captured")
finally:
    tr.terminate(); tr.wait(timeout=10)
