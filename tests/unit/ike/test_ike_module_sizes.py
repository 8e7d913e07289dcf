"""Issue 9's rule for the engine: no IKE module over 500 lines (an exchange, the timers or
a codec family each get their own module instead of growing the base)."""

from pathlib import Path

import labctl.ike

IKE = Path(labctl.ike.__file__).parent
LIMIT = 500


def test_no_ike_module_over_500_lines() -> None:
    sizes = {
        str(path.relative_to(IKE)): len(path.read_text().splitlines()) for path in IKE.rglob("*.py")
    }
    assert len(sizes) > 20  # the package was found
    assert {name: n for name, n in sizes.items() if n > LIMIT} == {}
