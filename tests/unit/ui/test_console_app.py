"""The console's HTTP layer without a lab: the token gate, the CSRF check on Logout, and
the Manager's tables rendered from real session records (as `vpn show sessions --json`
prints them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from labctl.graph import to_dot
from labctl.topology import load_lab
from labctl.ui import app as console_app
from labctl.ui.manager import AdministerView, session_detail

SEED = Path(__file__).resolve().parents[3] / "topologies" / "nat-t-two-clients.yaml"

RECORDS = {
    "summary": {
        "active_lan_to_lan": 0,
        "active_remote_access": 1,
        "active_management": 1,
        "peak_concurrent": 2,
        "concurrent_limit": 100,
        "total_cumulative": 5,
        "total_active": 2,
    },
    "sessions": [
        {
            "username": "vpnclient1",
            "group": "ciscovpn",
            "assigned_ip": "40.1.1.1",
            "public_ip": "171.69.89.78",
            "public_port": 1029,
            "protocol": "IPsec/NAT-T",
            "encryption": "3DES-168",
            "login_time": 1000.0,
            "client_type": "WinNT",
            "client_version": "3.6.1 (Rel)",
            "bytes_tx": 768,
            "bytes_rx": 512,
            "ike": {
                "session_id": 1,
                "encryption": "3DES-168",
                "hashing": "MD5",
                "dh_group": "Group 2 (1024-bit)",
                "auth_mode": "Pre-Shared Keys (XAUTH)",
                "negotiation_mode": "Aggressive",
                "rekey_interval": 86400,
            },
            "ipsec": [
                {
                    "session_id": 101,
                    "remote_address": "40.1.1.1",
                    "local_address": "0.0.0.0/255.255.255.255",
                    "encryption": "3DES-168",
                    "hashing": "MD5",
                    "encapsulation_mode": "Tunnel",
                    "udp_source_port": 1029,
                    "udp_destination_port": 4500,
                    "rekey_interval": 28800,
                    "spi_in": "0x5beebb4c",
                    "spi_out": "0x02cc3526",
                    "bytes_rx": 512,
                    "bytes_tx": 768,
                    "idle_seconds": 11.0,
                }
            ],
        }
    ],
    "management": [
        {
            "session_id": 3,
            "administrator": "admin",
            "address": "172.30.0.1",
            "protocol": "HTTP",
            "encryption": "None",
            "login_time": 1200.0,
        }
    ],
}


@pytest.fixture
def client() -> TestClient:
    app = console_app.create_app(
        runtime=None, reports=Path("/nonexistent"), token="t0k", hosts=["testserver"]
    )
    return TestClient(app, follow_redirects=False)


def test_nothing_without_the_token_and_the_token_becomes_a_cookie(client: TestClient) -> None:
    for path in ("/", "/labs/x", "/static/console.js", "/runs/-"):
        assert client.get(path).status_code == 403
    assert client.get("/?token=wrong").status_code == 403
    reply = client.get("/labs/x?token=t0k&a=1")
    assert reply.status_code == 303 and reply.headers["location"] == "/labs/x?a=1"
    cookie = reply.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.get("/static/console.js").status_code == 200  # the cookie now


def test_logout_needs_the_form_token(client: TestClient) -> None:
    client.get("/?token=t0k")
    reply = client.post("/labs/x/nodes/vpn3000/admin/logout", data={"user": "vpnclient1"})
    assert reply.status_code == 403


def test_logout_of_a_lan_to_lan_row_runs_the_agents_logout(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[tuple[str, str, str]] = []

    def run(lab: str, node: str, command: str) -> tuple[int, str, str]:
        commands.append((lab, node, command))
        return 0, "logged out 1 LAN-to-LAN session(s) of branch office\n", ""

    monkeypatch.setattr(client.app.state.console.labs, "run", run)
    client.get("/?token=t0k")
    reply = client.post(
        "/labs/l/nodes/vpn3000/admin/logout",
        data={"csrf": console_app.csrf_value("t0k"), "lan_to_lan": "branch office"},
    )
    assert reply.status_code == 303
    assert "logged%20out%201%20LAN-to-LAN" in reply.headers["location"]
    assert commands == [("l", "vpn3000", "vpn logout --lan-to-lan 'branch office'")]


def test_a_foreign_host_header_is_refused(client: TestClient) -> None:
    assert client.get("/?token=t0k", headers={"host": "evil.example"}).status_code == 400


def test_administer_sessions_tables(client: TestClient) -> None:
    console = client.app.state.console
    html = console.render(
        "parts/sessions.html",
        lab="l",
        node="vpn3000",
        view=AdministerView.of(RECORDS, 1244.0),
        actions=True,
    )
    assert '<td data-title="Active Management Sessions">1</td>' in html
    assert '<td data-title="Total Active Sessions">2</td>' in html
    assert "No LAN-to-LAN Sessions" in html
    assert 'data-user="vpnclient1"' in html and "0:04:04" in html  # the seed's duration
    assert 'name="user" value="vpnclient1"' in html and 'name="management" value="3"' in html
    assert f'name="csrf" value="{console_app.csrf_value("t0k")}"' in html
    monitor = console.render(
        "parts/sessions.html",
        lab="l",
        node="v",
        view=AdministerView.of(RECORDS, 0.0),
        actions=False,
    )
    assert "logout" not in monitor.lower().replace("logged", "")


def test_administer_sessions_lists_lan_to_lan(client: TestClient) -> None:
    branch = {
        "connection_name": "branch",
        "ip_address": "171.69.89.78",
        "protocol": "IPsec/NAT-T",
        "encryption": "3DES-168",
        "login_time": 1000.0,
        "bytes_tx": 1200,
        "bytes_rx": 840,
    }
    records = {**RECORDS, "lan_to_lan": [branch]}
    for actions in (False, True):
        html = client.app.state.console.render(
            "parts/sessions.html",
            lab="l",
            node="vpn3000",
            view=AdministerView.of(records, 1065.0),
            actions=actions,
        )
        assert "No LAN-to-LAN Sessions" not in html
        assert 'data-connection="branch"' in html
        row = html[html.index('data-connection="branch"') :]
        row = row[: row.index("</tr>")]
        for cell in ("171.69.89.78", "IPsec/NAT-T", "3DES-168", "0:01:05", "1200", "840"):
            assert f">{cell}</td>" in row
        # Administer Sessions has Logout on the row; Monitoring (no actions) has none
        assert ('name="lan_to_lan" value="branch"' in row) == actions
        assert ("button" in row) == actions


def test_session_detail_in_the_managers_layout(client: TestClient) -> None:
    detail = session_detail(RECORDS, "vpnclient1", 1244.0)
    html = client.app.state.console.render("parts/detail.html", detail=detail)
    assert "<th>IKE Negotiation Mode</th><td>Aggressive</td>" in html
    assert "IPSec/NAT-T Session" in html
    assert "<th>UDP Source Port</th><td>1029</td><th>UDP Destination Port</th><td>4500</td>" in html
    assert "<th>Idle Time</th><td>0:00:11</td>" in html
    assert session_detail(RECORDS, "nobody", 0.0) is None


def test_topology_picture_carries_node_and_link_ids() -> None:
    dot = to_dot(load_lab(SEED))
    assert 'id="node-pix", class="labnode"' in dot
    assert 'class="lablink link-public"' in dot


def test_past_runs_show_junit_results_and_serve_only_their_artifacts(tmp_path: Path) -> None:
    from labctl.checks.junit import write_junit
    from labctl.checks.runner import CaseResult

    run = tmp_path / "shard-2"
    artifacts = run / "artifacts" / "seed.rekey" / "vpn3000"
    artifacts.mkdir(parents=True)
    (artifacts / "sessions.txt").write_text("Session Summary\n")
    (tmp_path / "secret.txt").write_text("not an artifact")
    write_junit(
        [
            CaseResult("topologies/seed.yaml", "expect", True, 3.0),
            CaseResult(
                "topologies/seed.yaml", "rekey", False, 9.5, "sessions: expected 2, observed 1"
            ),
        ],
        run / "junit.xml",
    )
    app = console_app.create_app(runtime=None, reports=tmp_path, token="t0k", hosts=["testserver"])
    client = TestClient(app, follow_redirects=False)
    client.get("/?token=t0k")
    page = client.get("/runs/shard-2").text
    assert 'data-case="seed::rekey"' in page and "sessions: expected 2, observed 1" in page
    link = "/runs/shard-2/file/artifacts/seed.rekey/vpn3000/sessions.txt"
    assert f'href="{link}"' in page
    assert client.get(link).text == "Session Summary\n"
    for outside in ("/runs/shard-2/file/junit.xml", "/runs/shard-2/file/../secret.txt"):
        assert client.get(outside).status_code == 404
    assert client.get("/runs/nope").status_code == 404


def test_traffic_of_a_lab_whose_fabric_is_gone_is_zero_and_makes_no_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A `down` under way removes the fabric before the console stops asking: the links
    read zero (pyroute2's NetNS, which opened it before, would have made the namespace)."""
    from types import SimpleNamespace

    from labctl.ui import labs as labs_module
    from labctl.ui.labs import LabRegistry, OpenLab

    gone = "labctl-nofabric-test"
    monkeypatch.setattr(labs_module, "fabric_netns", lambda lab: gone)
    registry = LabRegistry(runtime=None)  # type: ignore[arg-type]
    segment = SimpleNamespace(index=0, name="inside")
    handle = SimpleNamespace(lab=SimpleNamespace(segments=[segment]))
    monkeypatch.setattr(registry, "lab", lambda name: OpenLab(handle))  # type: ignore[arg-type]
    traffic = registry.traffic("x")
    assert [(t.link, t.rx_packets, t.rx_bytes) for t in traffic.values()] == [("inside", 0, 0)]
    assert not Path(f"/run/netns/{gone}").exists()
