"""Link impairment in the lab's fabric: random loss with nftables, delay with netem.

Loss is a bridge-family nftables rule in the fabric namespace, so it acts on the link
itself without touching any node. Delay needs the kernel's sch_netem; where it is missing
(as on these machines) the error says so instead of silently doing nothing.
"""

from __future__ import annotations

import subprocess

from ..errors import LabctlError
from ..naming import fabric_netns, fabric_port_name
from ..topology import Segment


class ImpairError(LabctlError):
    """A link impairment could not be applied or removed."""


def _in_fabric(lab: str, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ip", "netns", "exec", fabric_netns(lab), *argv],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def _table(segment: Segment) -> str:
    return f"labctl_impair_{segment.index}"


def set_loss(lab: str, segment: Segment, percent: float) -> None:
    """Drop `percent` % of the frames crossing the link, in both directions."""
    threshold = round(percent * 100)  # numgen range is 0..9999
    sample = "" if threshold >= 10000 else f"numgen random mod 10000 < {threshold} "
    table = _table(segment)
    # Matched by the bridge ports of the link (the kernel here has no bridge-name match).
    ports = ", ".join(
        f'"{fabric_port_name(segment.index, i)}"' for i in range(len(segment.endpoints))
    )
    ruleset = (
        f"table bridge {table} {{}}\ndelete table bridge {table}\n"
        f"table bridge {table} {{\n"
        f"  chain forward {{\n    type filter hook forward priority 0; policy accept;\n"
        f"    iifname {{ {ports} }} {sample}"
        f'counter drop comment "{segment.name}: {percent}% loss"\n  }}\n}}\n'
    )
    result = _in_fabric(lab, ["nft", "-f", "-"], ruleset)
    if result.returncode != 0:
        raise ImpairError(f"link {segment.name}: cannot set loss: {result.stderr.strip()}")


def set_delay(lab: str, segment: Segment, milliseconds: int) -> None:
    for position in range(len(segment.endpoints)):
        port = fabric_port_name(segment.index, position)
        result = _in_fabric(
            lab,
            ["tc", "qdisc", "replace", "dev", port, "root", "netem", "delay", f"{milliseconds}ms"],
        )
        if result.returncode != 0:
            raise ImpairError(
                f"link {segment.name}: cannot add {milliseconds}ms delay: "
                f"{result.stderr.strip()} (this kernel may lack sch_netem; loss still works)"
            )


def clear(lab: str, segment: Segment) -> None:
    _in_fabric(lab, ["nft", "delete", "table", "bridge", _table(segment)])
    for position in range(len(segment.endpoints)):
        _in_fabric(
            lab, ["tc", "qdisc", "del", "dev", fabric_port_name(segment.index, position), "root"]
        )


def dropped_frames(lab: str, segment: Segment) -> int:
    """Frames the loss rule dropped so far (0 when there is none)."""
    result = _in_fabric(lab, ["nft", "list", "table", "bridge", _table(segment)])
    for line in result.stdout.splitlines():
        if "counter packets" in line:
            return int(line.split("counter packets")[1].split()[0])
    return 0
