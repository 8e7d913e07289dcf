"""read_key_tables (capture --keys, the console's download, artifacts): our agent's tables
and a strongSwan node's charon key log, read in one command per node, joined once each."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from labctl.checks.artifacts import read_key_tables
from labctl.state.charon_keys import parse_charon_keys

DATA = Path(__file__).resolve().parents[1] / "state" / "data"
CHARON = (DATA / "charon-keys-gateway.log").read_text()
OURS_IKE = "00112233aabbccdd,000102030405060708090a0b0c0d0e0f"


def node(export_keys: bool) -> SimpleNamespace:
    return SimpleNamespace(vpn=SimpleNamespace(debug=SimpleNamespace(export_keys=export_keys)))


class Session:
    def __init__(self, outputs: dict[str, str], name: str, commands: list[str]):
        self.output, self.commands = outputs[name], commands

    def run(self, command: str, timeout: float = 0) -> SimpleNamespace:
        self.commands.append(command)
        return SimpleNamespace(stdout=self.output, exit_status=0)


def test_agent_tables_and_charon_log_are_joined_each_line_once() -> None:
    keys = "/var/log/labctl/keys"
    outputs = {
        "vpn3000": f"== {keys}/ikev1_decryption_table\n{OURS_IKE}\n{OURS_IKE}\n"
        f"== {keys}/esp_sa\n== {keys}/charon-keys.log\n",
        "swangw": f"== {keys}/ikev1_decryption_table\n== {keys}/esp_sa\n"
        f"== {keys}/charon-keys.log\n{CHARON}",
    }
    commands: list[str] = []
    lab = SimpleNamespace(
        nodes={"vpn3000": node(True), "swangw": node(True), "client1": node(False)}
    )
    handle = SimpleNamespace(lab=lab, session=lambda name: Session(outputs, name, commands))
    tables = read_key_tables(handle)  # type: ignore[arg-type]
    assert len(commands) == 2 and all(f"{keys}/charon-keys.log" in c for c in commands)
    expected = parse_charon_keys(CHARON)
    assert tables["ikev1_decryption_table"].splitlines() == [OURS_IKE, *expected.ikev1]
    assert tables["esp_sa"].splitlines() == expected.esp and len(expected.esp) == 6
