"""Fixtures shared by the unit tests of the IKE engine and the ESP data path."""

from __future__ import annotations

import pytest

from labctl import libcrypto


@pytest.fixture(params=["libcrypto", "cryptography"])
def cbc_backend(request, monkeypatch) -> str:
    """The test runs on libcrypto through ctypes (the nodes' path) and on the fallback for a
    host where libcrypto cannot be loaded (cryptography's contexts)."""
    if request.param == "cryptography":
        monkeypatch.setattr(libcrypto, "load", lambda: None)
    else:
        assert libcrypto.load() is not None, "libcrypto.so.3 must load here as on the nodes"
    return request.param
