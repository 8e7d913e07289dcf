"""Issue 14 end to end on one seed lab (concentrator exporting its keys, lab-only):
the web console in a real headless browser (Debian's chromium + chromedriver, selenium),
`labctl capture` into tshark with the lab's keys, and the CLI's dry runs, inspect and
pipes. Screenshots of every page are kept under reports/screenshots/."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.processes import process_ended

from .conftest import ROOT, SEED, SESSION_LABS, RunningLab, labctl
from .test_seed_vpn import wait_until
from .vpn_support import tshark_rows

SCREENSHOTS = ROOT / "reports" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SERVER = "192.168.2.10"
LABCTL = (sys.executable, "-m", "labctl")


@pytest.fixture(scope="module")
def keyed_topology(tmp_path_factory) -> Path:
    data = yaml.safe_load(SEED.read_text())
    data["topology"]["nodes"]["vpn3000"]["vpn"]["debug"] = {"export-keys": True}
    data.pop("scenarios", None)  # `test --keep` below runs the expectations only
    path = tmp_path_factory.mktemp("topo") / "ui-seed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def lab(keyed_topology: Path) -> Iterator[RunningLab]:
    name = f"ui-{os.getpid() % 100000}"
    SESSION_LABS.add(name)
    try:
        labctl("up", str(keyed_topology), "--name", name)
        yield RunningLab(name, keyed_topology)
    finally:
        labctl("down", name, check=False)


@pytest.fixture(scope="module")
def console(lab: RunningLab, tmp_path_factory) -> Iterator[dict]:
    """`labctl ui` on 127.0.0.1, a free port, stopping by itself after 15 minutes."""
    reports = tmp_path_factory.mktemp("reports")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labctl",
            "ui",
            "--port",
            "0",
            "--reports",
            str(reports),
            "--stop-after",
            "900",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:(\d+)/)\?token=(\S+)", line)
        assert match, f"labctl ui printed {line!r}"
        yield {"base": match.group(1), "url": match.group(0), "reports": reports}
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser(console: dict, tmp_path_factory) -> Iterator:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():  # fail, never skip: CI must have installed them
            pytest.fail(
                f"{path} missing: scripts/host-deps.sh installs chromium and chromium-driver"
            )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.downloads = downloads
    try:
        driver.get(console["url"])  # the token becomes a cookie; the URL loses it
        assert "token=" not in driver.current_url
        yield driver
    finally:
        driver.quit()


def shot(driver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def by_css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def text_of(driver, selector: str) -> str:
    """Read in one script: pushed updates replace elements at any moment (no stale refs)."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", selector
    )


def rows_of(driver, selector: str, attribute: str) -> list[tuple[str, str, bool]]:
    """(attribute, text, has a Logout button) per matching row, read in one script."""
    return [
        tuple(row)
        for row in driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0])).map(e => "
            "[e.getAttribute(arguments[1]), e.innerText, !!e.querySelector('button.logout')])",
            selector,
            attribute,
        )
    ]


def click(driver, selector: str) -> None:
    assert driver.execute_script(
        "const e = document.querySelector(arguments[0]); if (e) e.click(); return !!e", selector
    ), selector


def updates(driver) -> int:
    return int(driver.execute_script("return window.labctlUpdates || 0"))


def loaded_at(driver) -> float:
    return driver.execute_script("return window.labctlLoadedAt")


def summary_value(driver, title: str) -> str:
    return text_of(driver, f'#session-summary td[data-title="{title}"]')


def ping(lab: RunningLab, client: str, count: int = 3) -> None:
    result = lab.exec(client, "ping", "-c", str(count), "-i", "0.2", "-W", "2", SERVER)
    assert f"{count} received" in result.stdout, result.stdout


def sessions(lab: RunningLab) -> dict:
    return lab.show_json("vpn3000", "administer")


# --- the web console --------------------------------------------------------------------


def test_without_the_token_nothing_is_served(console: dict) -> None:
    import urllib.error
    import urllib.request

    for path in ("", "labs/x", "static/console.js"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(console["base"] + path, timeout=10)
        assert refused.value.code == 403


def test_index_lists_the_lab(browser, lab: RunningLab) -> None:
    browser.get(browser.current_url.split("?")[0])
    # Read in one script: a pushed update may replace the row between a lookup and a read.
    row = wait_until("lab row", lambda: text_of(browser, f'#lab-table tr[data-lab="{lab.name}"]'))
    assert "up" in row
    shot(browser, "index")


def test_lab_page_topology_with_live_states_and_traffic(browser, console, lab) -> None:
    browser.get(f"{console['base']}labs/{lab.name}")
    for node in ("client1", "client2", "pix", "router", "vpn3000", "server"):
        assert by_css(browser, f'svg g[id="node-{node}"]'), node
    assert by_css(browser, "svg g.lablink.link-public")
    started = loaded_at(browser)
    wait_until("first push", lambda: updates(browser) >= 1)
    assert (
        browser.execute_script("return document.getElementById('node-pix').dataset.state")
        == "running"
    )
    assert "connected 40.1.1." in text_of(browser, 'tr[data-node="client1"] .node-vpn')
    assert "2 sessions" in text_of(browser, 'tr[data-node="vpn3000"] .node-vpn')

    def public_bytes() -> int:
        cells = by_css(browser, 'tr[data-link="public"] .link-bytes')
        return int(cells[0].get_attribute("data-bytes")) if cells else 0

    before = public_bytes()
    ping(lab, "client1", 5)
    wait_until("public link bytes grow", lambda: public_bytes() > before + 5 * 84)
    assert loaded_at(browser) == started, "the page was reloaded; updates must be pushed"
    shot(browser, "lab")
    by_css(browser, 'svg g[id="node-pix"]')[0].click()  # a node opens its tables (the SVG stays)
    wait_until("pix page", lambda: browser.current_url.endswith(f"/labs/{lab.name}/nodes/pix"))


def test_pix_page_shows_xlate_and_arp(browser, console, lab) -> None:
    browser.get(f"{console['base']}labs/{lab.name}/nodes/pix")
    xlate = text_of(browser, "#xlate")
    globals_ = re.findall(
        r"PAT Global 171\.69\.89\.78\((\d+)\) Local 10\.10\.10\.\d\(4500\)", xlate
    )
    assert len(set(globals_)) == 2, xlate
    assert "10.10.10.2" in text_of(browser, "#arp") or "171.69.88.1" in text_of(browser, "#arp")
    shot(browser, "pix")


def test_any_node_shows_every_table_of_its_kind(browser, console, lab) -> None:
    browser.get(f"{console['base']}labs/{lab.name}/nodes/router")  # no special page: arp
    assert browser.current_url.endswith("/nodes/router/show/arp")
    tabs = [text for _, text, _ in rows_of(browser, "nav.tabs a", "href")]
    assert {"arp", "route", "interfaces", "conntrack"} <= set(tabs), tabs
    assert by_css(browser, "pre.screen")
    click(browser, 'nav.tabs a[href$="/show/route"]')
    wait_until("route table", lambda: "171.69.88.0/23 dev eth1" in text_of(browser, "pre.screen"))
    shot(browser, "router-route")


def test_client_page_shows_status_and_statistics(browser, console, lab) -> None:
    browser.get(f"{console['base']}labs/{lab.name}/nodes/client1")
    status = by_css(browser, "#client-status")[0]
    assert status.get_attribute("data-state") == "connected"
    assert "UDP port 4500" in text_of(browser, "#client-tunneling")
    assert text_of(browser, "#client-address").startswith("40.1.1.")
    received = int(text_of(browser, "#client-stats .bytes-received"))
    ping(lab, "client1")
    wait_until(
        "received bytes grow without reload",
        lambda: int(text_of(browser, "#client-stats .bytes-received") or 0) > received,
    )
    shot(browser, "client")


def test_administer_sessions_like_the_manager(browser, console, lab) -> None:
    browser.get(f"{console['base']}labs/{lab.name}/nodes/vpn3000")  # -> Administer Sessions
    assert browser.current_url.endswith("/admin/sessions")
    assert "Administer Sessions" in text_of(browser, "#page-title")
    assert summary_value(browser, "Active Remote Access Sessions") == "2"
    assert summary_value(browser, "Active LAN-to-LAN Sessions") == "0"
    assert "No LAN-to-LAN Sessions" in text_of(browser, "#lan-to-lan")
    rows = rows_of(browser, "#remote-access tr.session", "data-user")
    assert sorted(user for user, _, _ in rows) == ["vpnclient1", "vpnclient2"]
    for _, text, logout in rows:
        assert "IPsec/NAT-T" in text and "3DES-168" in text and "171.69.89.78" in text
        assert logout
    # This page is a management session on the concentrator, as on the real box.
    wait_until(
        "the console counted", lambda: summary_value(browser, "Active Management Sessions") == "1"
    )
    admin = rows_of(browser, "#management tr.admin-session", "data-id")
    assert len(admin) == 1 and "admin" in admin[0][1] and "HTTP" in admin[0][1]
    record = sessions(lab)
    assert record["summary"]["active_management"] == 1
    assert record["management"][0]["address"] == text_of(browser, "#management .address")
    assert summary_value(browser, "Total Active Sessions") == "3"
    shot(browser, "manager-administer-sessions")


def test_session_detail_has_ike_and_ipsec_sas(browser, console, lab) -> None:
    browser.get(f"{console['base']}labs/{lab.name}/nodes/vpn3000/admin/sessions")
    click(browser, '#remote-access tr[data-user="vpnclient1"] a.detail')
    wait_until("detail page", lambda: by_css(browser, "#ike-session"))
    ike = text_of(browser, "#ike-session")
    for fact in ("3DES-168", "MD5", "Group 2 (1024-bit)", "Pre-Shared Keys (XAUTH)", "Aggressive"):
        assert fact in ike, (fact, ike)
    ipsec = text_of(browser, "table.ipsec-session")
    assert "IPSec/NAT-T Session" in ipsec
    assert re.search(r"UDP Destination Port\s+4500", ipsec), ipsec
    shot(browser, "manager-session-detail")


def test_monitoring_sessions_and_event_log(browser, console, lab) -> None:
    browser.get(f"{console['base']}labs/{lab.name}/nodes/vpn3000/monitor/sessions")
    assert summary_value(browser, "Active Remote Access Sessions") == "2"
    assert not rows_of(browser, "button.logout", "class")  # monitoring is read-only
    shot(browser, "manager-monitoring-sessions")
    browser.get(f"{console['base']}labs/{lab.name}/nodes/vpn3000/monitor/log")
    wait_until("console login logged", lambda: "ADMIN/1" in text_of(browser, "#event-log"))
    shot(browser, "manager-event-log")


def test_leaving_the_manager_ends_its_management_session(browser, console, lab) -> None:
    browser.get(console["base"])
    wait_until("no management session", lambda: sessions(lab)["summary"]["active_management"] == 0)


def test_a_run_shows_live_then_as_a_report(browser, console, lab) -> None:
    folder = console["reports"] / "run1"
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labctl",
            "-q",
            "test",
            str(lab.topology),
            "--keep",
            "--lab",
            lab.name,
            "--report-dir",
            str(folder),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until("events", lambda: (folder / "events.jsonl").exists(), timeout=60)
        browser.get(f"{console['base']}runs/run1")
        started = loaded_at(browser)
        seen_running = wait_until(
            "a step shown while running",
            lambda: by_css(browser, "li.step") and text_of(browser, "#run-state") == "running",
            timeout=60,
        )
        assert seen_running
        shot(browser, "run-live")
        wait_until("finished", lambda: text_of(browser, "#run-state") == "finished", timeout=180)
    finally:
        out, _ = run.communicate(timeout=180)
    assert run.returncode == 0, out
    assert loaded_at(browser) == started
    checks = rows_of(browser, "tr.check", "class")
    assert len(checks) >= 5
    assert all(css == "check check-ok" for css, _, _ in checks), checks
    assert "171.69.89.78" in " ".join(text for _, text, _ in checks)  # expected values shown
    results = rows_of(browser, "#junit-results tr.result", "data-case")
    assert [case for case, _, _ in results] == ["ui-seed::expect"]
    shot(browser, "run-report")


def test_download_a_link_capture_with_its_keys(browser, console, lab) -> None:
    browser.get(f"{console['base']}labs/{lab.name}")
    form = by_css(browser, 'tr[data-link="public"] form.capture')[0]
    seconds = form.find_element("css selector", "input[name=seconds]")
    seconds.clear()
    seconds.send_keys("6")
    done = threading.Event()

    def keep_pinging() -> None:  # through the tunnel for as long as the capture may run
        # One long ping per SSH session: on a loaded machine an SSH exec can take longer
        # than the whole capture, and short pings then left windows with no traffic.
        while not done.is_set():
            lab.exec("client2", "ping", "-c", "20", "-i", "0.25", "-W", "1", SERVER, check=False)

    pinger = threading.Thread(target=keep_pinging)
    pinger.start()
    try:
        form.find_element("css selector", "button").click()
        archive = wait_until("download", lambda: list(browser.downloads.glob("*.zip")), timeout=60)[
            0
        ]
    finally:
        done.set()
        pinger.join()
    folder = browser.downloads / "unzipped"
    zipfile.ZipFile(archive).extractall(folder)
    pcap = next(folder.glob("*.pcap"))
    env = {**os.environ, "WIRESHARK_CONFIG_DIR": str(folder / "wireshark")}
    rows = tshark_rows(env, pcap, "esp && icmp", "ip.dst", "esp.icv_good")
    esp = tshark_rows(env, pcap, "esp", "esp.spi")
    assert any(SERVER in dst and good == ["1"] for dst, good in rows), (rows[:5], esp[:5])


def test_logout_ends_a_remote_access_session(browser, console, lab) -> None:
    cookie = {s["username"]: s["ike"]["initiator_cookie"] for s in sessions(lab)["sessions"]}
    browser.get(f"{console['base']}labs/{lab.name}/nodes/vpn3000/admin/sessions")
    click(browser, '#remote-access tr[data-user="vpnclient2"] button.logout')
    wait_until("message", lambda: "logged out 1 session" in text_of(browser, "#message"))
    shot(browser, "manager-after-logout")
    now = {s["username"]: s["ike"]["initiator_cookie"] for s in sessions(lab)["sessions"]}
    assert now.get("vpnclient1") == cookie["vpnclient1"]
    assert now.get("vpnclient2") != cookie["vpnclient2"]  # ended (the client may reconnect)
    log = lab.exec("vpn3000", "vpn", "log", "-n", "200").stdout
    assert "Administrator logout" in log


# --- labctl capture ---------------------------------------------------------------------


def tcpdump_children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        children += [int(c) for c in text.split()]
    return [
        c for c in children if "tcpdump" in Path(f"/proc/{c}/cmdline").read_text(errors="replace")
    ]


def test_capture_pipes_pcap_and_keys_tshark_decrypts(lab, tmp_path) -> None:
    keys = tmp_path / "keys"
    pcap = tmp_path / "public.pcap"
    with pcap.open("wb") as out:
        capture = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "labctl",
                "capture",
                "--lab",
                lab.name,
                "public",
                "-w",
                "-",
                "--keys",
                str(keys),
                "--seconds",
                "180",  # stops by itself whatever happens to this test
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert capture.stderr is not None
            assert "capturing link public" in capture.stderr.readline()
            lab.exec("client1", "vpn", "disconnect")  # a fresh IKE SA inside the capture
            lab.exec("client1", "vpn", "connect", "--wait", "--timeout", "60")
            ping(lab, "client1")
            # no wait for the key refresh: capture reads the keys once more when it stops
        finally:
            capture.send_signal(signal.SIGINT)
            try:
                capture.wait(timeout=15)
            finally:
                _kill_if_running(capture)
    assert capture.returncode == 0
    assert sorted(p.name for p in keys.iterdir()) == [
        "esp_sa",
        "ikev1_decryption_table",
        "preferences",
    ]
    assert oct(keys.stat().st_mode & 0o777) == "0o700"
    env = {**os.environ, "WIRESHARK_CONFIG_DIR": str(keys)}
    field = "isakmp.cfg.attr.internal_ip4_address"
    assigned = {a for row in tshark_rows(env, pcap, field, field) for a in row[0]}
    assert any(a.startswith("40.1.1.") for a in assigned), assigned
    rows = tshark_rows(env, pcap, "esp && icmp", "ip.dst", "esp.icv_good")
    assert any(SERVER in dst for dst, _ in rows) and all(g == ["1"] for _, g in rows), rows[:5]


def _kill_if_running(process: subprocess.Popen) -> None:
    """A capture that ignored its stop signal must not outlive the test (it would hold the
    lab's bridge and any pipe it inherited; CI waits for its output pipe to close)."""
    if process.poll() is None:
        process.kill()  # its tcpdump follows (parent-death signal)
        process.wait(timeout=10)


def _kill_pids(pids: list[int]) -> None:
    """SIGKILL those of ``pids`` that are still a tcpdump (a PID may have been reused)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            if b"tcpdump" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def test_capture_stops_cleanly_on_ctrl_c_and_with_its_parent(lab, tmp_path, request) -> None:
    for ending in (signal.SIGINT, signal.SIGKILL):
        pcap = tmp_path / f"{ending.name}.pcap"
        capture = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "labctl",
                "capture",
                "--lab",
                lab.name,
                "pix:inside",
                "-w",
                str(pcap),
                "--seconds",
                "120",  # stops by itself whatever happens to this test
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,  # never hold pytest's (CI's) output open
            stderr=subprocess.PIPE,
            text=True,
        )
        request.addfinalizer(lambda capture=capture: _kill_if_running(capture))
        assert capture.stderr is not None
        assert "pix:inside's side" in capture.stderr.readline()
        tcpdumps = tcpdump_children(capture.pid)
        # if the parent-death signal under test fails, the orphaned tcpdump must not stay
        request.addfinalizer(lambda pids=tcpdumps: _kill_pids(pids))
        assert len(tcpdumps) == 1
        lab.exec("client1", "ping", "-c", "2", "-i", "0.2", "10.10.10.1")  # plain ICMP there
        capture.send_signal(ending)
        capture.wait(timeout=15)
        if ending == signal.SIGINT:
            assert capture.returncode == 0
        wait_until("tcpdump gone", lambda pid=tcpdumps[0]: process_ended(pid), timeout=10)
        if ending == signal.SIGINT:
            rows = tshark_rows(None, pcap, "icmp", "ip.src")
            assert rows, "the capture of pix:inside holds no ICMP"


def test_capture_refuses_a_terminal_and_unknown_links(lab) -> None:
    result = labctl("capture", "--lab", lab.name, "nowhere", check=False)
    assert result.returncode == 2 and "no link or NODE:INTERFACE 'nowhere'" in result.stderr
    assert "Traceback" not in result.stderr


# --- the command line -------------------------------------------------------------------


def test_inspect_json_has_every_lab_node_address_and_link(lab) -> None:
    labs = json.loads(labctl("inspect", lab.name, "--json").stdout)
    assert [entry["lab"] for entry in labs] == [lab.name]
    entry = labs[0]
    nodes = {n["name"]: n for n in entry["nodes"]}
    assert set(nodes) == {"client1", "client2", "pix", "router", "vpn3000", "server"}
    assert all(n["state"] == "running" and n["mgmt_ipv4"] for n in nodes.values())
    pix = {i["name"]: i["ipv4"] for i in nodes["pix"]["interfaces"]}
    assert pix == {"inside": "10.10.10.1/24", "outside": "171.69.89.78/23"}
    links = {link["name"]: link for link in entry["links"]}
    assert set(links) == {"inside", "outside", "public", "private"}
    assert {e["node"] for e in links["inside"]["endpoints"]} == {"client1", "client2", "pix"}


def test_dry_runs_change_nothing(lab) -> None:
    before = labctl("status", lab.name, "--json").stdout
    up = labctl("up", str(lab.topology), "--name", lab.name, "--dry-run")
    assert "already up" in up.stdout and "dry run" in up.stdout
    down = labctl("down", lab.name, "--dry-run")
    assert f"container labctl-{lab.name}-vpn3000" in down.stdout
    assert f"netns labctl-{lab.name}" in down.stdout
    push = labctl("push", "--lab", lab.name, "vpn3000", "--dry-run")
    assert "unchanged /etc/labctl/vpn.json" in push.stdout, push.stdout
    assert labctl("status", lab.name, "--json").stdout == before


def test_show_into_head_ends_quietly(lab) -> None:
    shell = f"{sys.executable} -m labctl show --lab {lab.name} vpn3000 log -v | head -1"
    result = subprocess.run(
        ["sh", "-c", shell], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.count("\n") == 1
    assert result.stderr == "", result.stderr
