"""Progress: debootstrap line parsing and the console renderer."""

from __future__ import annotations

import io

from labctl.images.progress import ConsoleProgress, DebootstrapCounter

# Shapes copied from a real `debootstrap --variant=minbase` run (bookworm).
SAMPLE = """\
I: Target architecture can be executed
I: Retrieving InRelease
I: Checking Release signature
I: Retrieving Packages
I: Validating Packages
I: Resolving dependencies of required packages...
I: Checking component main on http://deb.debian.org/debian...
I: Retrieving adduser 3.134
I: Validating adduser 3.134
I: Validating apt 2.6.1
I: Retrieving bsdutils 1:2.38.1-5+deb12u3
I: Validating bsdutils 1:2.38.1-5+deb12u3
I: Chosen extractor for .deb packages: dpkg-deb
I: Extracting adduser...
I: Installing core packages...
I: Unpacking required packages...
I: Unpacking adduser...
I: Unpacking apt...
"""


def test_counter_counts_packages_not_steps() -> None:
    counter = DebootstrapCounter()
    for line in SAMPLE.splitlines():
        counter.feed(line)
    # apt came from the package cache: validated, never retrieved; it still counts
    assert counter.retrieved == {
        ("adduser", "3.134"),
        ("apt", "2.6.1"),
        ("bsdutils", "1:2.38.1-5+deb12u3"),
    }
    assert counter.total == 3
    assert counter.status() == "unpacking 2/3 packages"


def test_counter_keeps_the_last_error() -> None:
    counter = DebootstrapCounter()
    counter.feed("I: Retrieving Packages")
    counter.feed("E: Couldn't find these debs: no-such-package")
    assert counter.last_error == "Couldn't find these debs: no-such-package"


def test_plain_output_prints_stage_changes_and_rate_limits() -> None:
    out = io.StringIO()
    progress = ConsoleProgress(out, tty=False, interval=3600)
    progress("base: debootstrap", "retrieving 1 packages, 1 s")
    progress("base: debootstrap", "retrieving 2 packages, 2 s")  # same stage, too soon
    progress("base: import", "10 MiB of 180 MiB, 0 s")
    progress.close()
    assert out.getvalue().splitlines() == [
        "base: debootstrap: retrieving 1 packages, 1 s",
        "base: import: 10 MiB of 180 MiB, 0 s",
    ]
    assert "\r" not in out.getvalue()


def test_tty_output_rewrites_one_line_per_stage() -> None:
    out = io.StringIO()
    progress = ConsoleProgress(out, tty=True)
    progress("node: build", "step 3/5, 1 s")
    progress("node: build", "step 5/5, 2 s")
    progress("vpn: build", "step 3/6, 1 s")
    progress.close()
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 3
    # the finished stage's last line stays on screen, then a fresh line begins
    assert "step 5/5, 2 s\n\r\x1b[Kvpn: build" in text
    assert text.endswith("\n")
