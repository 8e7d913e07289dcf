"""A control request answered later (`vpn connect --wait`): the reply comes when the
handler's Deferred resolves, and other requests are served meanwhile."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from labctl.agent.control import ControlServer, Deferred, request
from labctl.agent.loop import EventLoop


def test_a_deferred_reply_arrives_when_resolved_and_other_requests_go_on(tmp_path: Path) -> None:
    loop = EventLoop()
    pending: list[Deferred] = []

    def wait(args: dict) -> Deferred:
        reply = Deferred()
        pending.append(reply)
        return reply

    path = str(tmp_path / "vpn.sock")
    server = ControlServer({"wait": wait, "ping": lambda args: "pong"}, path=path)
    server.attach(loop)
    answers: dict[str, object] = {}

    def waiter() -> None:
        answers["wait"] = request("wait", path=path, timeout=5)
        answers["wait_at"] = time.monotonic()

    thread = threading.Thread(target=waiter)
    thread.start()
    loop.run(0.3)
    assert len(pending) == 1 and "wait" not in answers  # held, not answered
    pinger = threading.Thread(target=lambda: answers.setdefault("ping", request("ping", path=path)))
    pinger.start()
    loop.run(0.3)
    pinger.join(2)
    assert answers["ping"] == "pong"  # served while the first request waits
    resolved_at = time.monotonic()
    pending[0].resolve({"state": "connected"})
    loop.run(0.2)
    thread.join(2)
    assert answers["wait"] == {"state": "connected"}
    assert answers["wait_at"] >= resolved_at
    server.close()


def test_deferred_resolves_once_and_late_callbacks_get_the_value() -> None:
    reply = Deferred()
    seen: list[object] = []
    reply.when_done(seen.append)
    reply.resolve(1)
    reply.resolve(2)  # a timeout firing after the state settled changes nothing
    reply.when_done(seen.append)
    assert seen == [1, 1]


class _Agent:
    def __init__(self, state: str) -> None:
        self.status = type("S", (), {"state": state})()
        self.state_watchers: list = []


class _Daemon:
    """What Daemon._wait_settled reads: the loop, the agent, and _status."""

    def __init__(self, state: str) -> None:
        self.loop = EventLoop()
        self.agent = _Agent(state)

    def _status(self, args: dict) -> dict:
        return {"status": {"state": self.agent.status.state}}


def test_wait_settled_answers_at_once_unless_connecting() -> None:
    from labctl.agent.daemon import Daemon

    daemon = _Daemon("connected")
    assert Daemon._wait_settled(daemon, {}) == {"status": {"state": "connected"}}


def test_wait_settled_answers_when_the_agent_settles_or_at_the_timeout() -> None:
    from labctl.agent.daemon import Daemon

    daemon = _Daemon("connecting")
    reply = Daemon._wait_settled(daemon, {"timeout": 30})
    assert isinstance(reply, Deferred) and not reply.done
    daemon.agent.status.state = "failed"
    for watcher in daemon.agent.state_watchers:
        watcher()
    assert reply.value == {"status": {"state": "failed"}}

    slow = _Daemon("connecting")
    reply = Daemon._wait_settled(slow, {"timeout": 0.05})
    slow.loop.run(0.2)
    assert reply.value == {"status": {"state": "connecting"}}
