"""NAT-T draft 01 end to end: our client, told to speak draft 01 only, connects through the
PIX to our concentrator and pings; a capture of the PIX's outside link shows IKE and ESP
on one UDP 500 flow (nothing on 4500, no IP protocol 50), the ESP behind the 8-byte zero
non-IKE marker. Stock tshark's ISAKMP dissector misreads the marked ESP as ISAKMP (some
frames malformed: it knows no non-IKE marker); tools/wireshark/nonike.lua
(-d udp.port==500,nonike) hands it to the ESP dissector: no malformed frame, the SPI
visible and equal to the session's."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, RunningLab, bring_up, labctl
from .vpn_support import LinkCapture

TOPOLOGY = ROOT / "topologies" / "nat-t-draft-01.yaml"
NONIKE = ["-X", f"lua_script:{ROOT / 'tools' / 'wireshark' / 'nonike.lua'}"]
DECODE_AS = [*NONIKE, "-d", "udp.port==500,nonike"]
PIX_OUTSIDE = "171.69.89.78"
GATEWAY = "172.16.172.50"


def wait_until(what: str, check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: not true after {timeout:.0f}s (last: {last!r})")


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The lab with a client that waits to be told to connect, so the capture on the PIX's
    outside link holds the session from its first IKE message on."""
    work = tmp_path_factory.mktemp("draft01-capture")
    spec = yaml.safe_load(TOPOLOGY.read_text())
    spec.pop("expect", None)
    spec["topology"]["nodes"]["client1"]["vpn"]["auto-connect"] = False
    topology = work / "nat-t-draft-01-capture.yaml"
    topology.write_text(yaml.safe_dump(spec, sort_keys=False))
    lab: RunningLab | None = None
    tap: LinkCapture | None = None
    try:
        lab = bring_up(topology, "draft01")
        tap = LinkCapture(lab, "outside", work / "outside.pcap", "udp or esp").start()
        lab.exec("client1", "vpn", "connect")
        wait_until(
            "client1 connected",
            lambda: lab.show_json("client1", "status")["state"] == "connected",
        )
        ping = lab.exec("client1", "ping", "-c", "5", "-i", "0.2", "-W", "2", "192.168.2.10")
        assert "5 received" in ping.stdout, ping.stdout
        sessions = lab.show_json("vpn3000", "sessions")
        xlate = lab.show_json("pix", "xlate")
        pcap = tap.stop(settle=1.0)
        yield {"pcap": pcap, "sessions": sessions, "xlate": xlate}
    finally:
        if tap is not None:
            tap.stop()
        if lab is not None:
            labctl("down", lab.name, check=False)


def tshark(*args: str) -> str:
    done = subprocess.run(
        ["tshark", "-n", *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def fields(pcap: Path, *names: str, decode: bool = True) -> list[list[str]]:
    args = ["-r", str(pcap), *(DECODE_AS if decode else []), "-T", "fields"]
    for name in names:
        args += ["-e", name]
    return [line.split("\t") for line in tshark(*args).splitlines()]


def test_ike_and_marked_esp_share_one_udp_500_flow(captured: dict) -> None:
    rows = fields(captured["pcap"], "ip.src", "ip.dst", "ip.proto", "udp.srcport", "udp.dstport")
    assert rows, "nothing captured"
    flows = {tuple(r) for r in rows}
    assert flows == {
        (PIX_OUTSIDE, GATEWAY, "17", "500", "500"),
        (GATEWAY, PIX_OUTSIDE, "17", "500", "500"),
    }, flows  # no 4500, no IP protocol 50, one translated port
    (entry,) = captured["xlate"]  # the PIX's view: one translation
    assert (entry["protocol"], entry["local_port"], entry["global_port"]) == ("udp", 500, 500)


def test_esp_behind_the_marker_dissects_with_the_session_spis(captured: dict) -> None:
    pcap = captured["pcap"]
    stacks = fields(pcap, "frame.protocols", "esp.spi", "nonike.marker")
    esp = [r for r in stacks if r[0].endswith(":udp:nonike:esp")]
    ike = [r for r in stacks if r[0].endswith(":udp:nonike:isakmp")]
    assert len(esp) >= 10, stacks  # 5 echo requests and 5 replies at least
    assert ike, "no IKE on port 500"
    assert {r[2] for r in esp} == {"0000000000000000"}
    (session,) = captured["sessions"]
    spis = {int(r[1], 16) for r in esp}
    ipsec = session["ipsec"][0]
    assert spis == {int(ipsec["spi_in"], 16), int(ipsec["spi_out"], 16)}, (spis, ipsec)
    verbose = tshark("-r", str(pcap), *DECODE_AS, "-V")
    assert "Malformed" not in verbose
    assert "Non-IKE marker: 0000000000000000" in verbose
    expert = tshark("-r", str(pcap), *DECODE_AS, "-q", "-z", "expert,error")
    assert "Errors" not in expert, expert


def test_stock_tshark_misreads_the_marked_esp_as_isakmp(captured: dict) -> None:
    """Without the Lua dissector, Wireshark's ISAKMP dissector owns UDP 500 and knows no
    non-IKE marker: it reads every marked ESP datagram as an ISAKMP header with zero
    cookies, and flags some of them malformed (as the ESP bytes happen to fall). Only
    those: no IKE frame is malformed. Decoded as "nonike" none is (the test above)."""
    pcap = captured["pcap"]
    stock = {
        r[0]: r[1:]
        for r in fields(pcap, "frame.number", "frame.protocols", "_ws.malformed", decode=False)
    }
    decoded = fields(pcap, "frame.number", "frame.protocols")
    marked = {r[0] for r in decoded if r[1].endswith(":udp:nonike:esp")}
    assert marked
    assert all(stock[n][0].endswith(":udp:isakmp") for n in marked)
    malformed = {n for n, row in stock.items() if len(row) > 1 and row[1]}
    assert malformed <= marked, malformed - marked
