"""TCP tools on loopback and in a private network namespace: tcpconnect,
tcpaccept, tcplife, tcpretrans. No traffic leaves the machine."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid

import pytest

import bpfnb
from tests.kernel.test_tools_support import Released

pytestmark = pytest.mark.kernel

# a server and a client in one process: the client sends 1000 bytes, the server 500 back
EXCHANGE = """
import socket, threading
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
port = srv.getsockname()[1]
print(port, flush=True)
def serve():
    conn, _ = srv.accept()
    got = b""
    while len(got) < 1000:
        got += conn.recv(1000 - len(got))
    conn.sendall(b"s" * 500)
    conn.close()
server = threading.Thread(target=serve)
server.start()
client = socket.create_connection(("127.0.0.1", port))
print(client.getsockname()[1], flush=True)
client.sendall(b"c" * 1000)
got = b""
while len(got) < 500:
    got += client.recv(500 - len(got))
client.close()
server.join()
"""


def exchange(tool, **options):
    """Run the loopback exchange under a tool; (trace, pid, server port, client port)."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys\nsys.stdin.read(1)\n" + EXCHANGE],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def release():
        proc.stdin.write("x")
        proc.stdin.close()

    try:
        t = tool(duration=1.2, pid=proc.pid, on_attach=release, **options)
        out = proc.stdout.read()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    server_port, client_port = map(int, out.split())
    return t, proc.pid, server_port, client_port


def test_tcpconnect_loopback(kernel):
    t, pid, server_port, client_port = exchange(bpfnb.tools.tcpconnect)
    rows = t.events("connects")
    assert len(rows) == 1, rows
    row = rows.iloc[0]
    assert (row["pid"], row["dport"], row["sport"]) == (pid, server_port, client_port)
    assert (row["saddr"], row["daddr"], row["ip"]) == ("127.0.0.1", "127.0.0.1", 4)
    assert row["result"] == "established" and row["lat_ms"] > 0


def test_tcpconnect_failed_connection(kernel):
    code = ("import socket\ns = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()\n"
            "try:\n    socket.create_connection(('127.0.0.1', port))\nexcept ConnectionRefusedError:\n    pass\n")
    with Released(code) as w:
        t = bpfnb.tools.tcpconnect(duration=1, pid=w.pid, on_attach=w.release)
        w.wait()
    assert t.events()["result"].tolist() == ["failed"]


def test_tcpaccept_loopback(kernel):
    t, pid, server_port, client_port = exchange(bpfnb.tools.tcpaccept)
    rows = t.events("accepts")
    assert len(rows) == 1, rows
    row = rows.iloc[0]
    assert (row["pid"], row["lport"], row["rport"]) == (pid, server_port, client_port)
    assert (row["laddr"], row["raddr"]) == ("127.0.0.1", "127.0.0.1")
    assert row["fd"] >= 0 and row["accepted"] and row["wait_ms"] >= 0


def test_tcplife_loopback_bytes_and_ports(kernel):
    t, pid, server_port, client_port = exchange(bpfnb.tools.tcplife)
    rows = t.events("sessions").set_index("active")
    assert len(rows) == 2, rows
    client, server = rows.loc[True], rows.loc[False]
    assert (client["lport"], client["rport"]) == (client_port, server_port)
    assert (server["lport"], server["rport"]) == (server_port, client_port)
    assert (client["tx_bytes"], client["rx_bytes"]) == (1000, 500)
    assert (server["tx_bytes"], server["rx_bytes"]) == (500, 1000)
    assert client["pid"] == pid and server["pid"] == pid
    assert client["ms"] > 0 and server["ms"] > 0


NFT_DROP_DATA = """table inet bpfnb_test {
  chain in {
    type filter hook input priority 0;
    tcp dport 9999 meta length > 100 drop
  }
}
"""
RETRANSMITTER = """
import socket, time
srv = socket.socket()
srv.bind(("127.0.0.1", 9999))
srv.listen()
client = socket.create_connection(("127.0.0.1", 9999))
client.sendall(b"r" * 2000)      # never acknowledged: the data segments are dropped
time.sleep(1.3)
"""


@pytest.fixture
def netns():
    """A private network namespace with lo up, dropping data segments to port 9999."""
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing (apt-get install iproute2 nftables; `make setup` does)")
    name = f"bpfnb-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", name, "nft", "-f", "-"], input=NFT_DROP_DATA.encode(),
                       check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_tcpretrans_in_private_netns(kernel, netns):
    with Released(RETRANSMITTER, prefix=("ip", "netns", "exec", netns)) as w:
        t = bpfnb.tools.tcpretrans(duration=1.5, port=9999, count=True, on_attach=w.release)
        w.wait()
    rows = t.events("retransmits")
    assert len(rows) >= 2, rows                   # RTO 200 ms, backing off: 0.2, 0.6 s, ...
    assert set(rows["rport"]) == {9999}
    assert set(rows["laddr"]) == {"127.0.0.1"} and set(rows["raddr"]) == {"127.0.0.1"}
    assert set(rows["state"]) == {"ESTABLISHED"} and set(rows["kind"]) == {"segment"}
    counts = t.map("counts")
    assert counts["retransmits"].tolist() == [len(rows)]
