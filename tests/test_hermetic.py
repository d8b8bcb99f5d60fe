"""CI runs `make test` inside a network namespace with loopback only; this proves the block is real."""

import os
import socket

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("SAMCOURSE_HERMETIC") != "1", reason="only meaningful under .ci/run's network namespace"
)


@pytest.mark.parametrize("host", ["pypi.org", "dl.fbaipublicfiles.com", "zenodo.org", "1.1.1.1"])
def test_outbound_network_is_unreachable(host):
    with pytest.raises(OSError):
        socket.create_connection((host, 443), timeout=3).close()


def test_loopback_still_works():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    with socket.create_connection(server.getsockname(), timeout=3):
        pass
    server.close()
