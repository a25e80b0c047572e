"""Keys: loading, labels, the coordinator's leases and cooldowns, and the key server process."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from support.keys import keys_file

from agentos.errors import ConfigError
from agentos.governor import credentials as creds
from agentos.governor.credentials import Redactor, load_credentials, make_credentials
from agentos.governor.governor import Governor as CredentialCoordinator
from agentos.item.keys import KeyOutcome

KEYS = ["sk-alpha-0000000001", "sk-bravo-0000000002", "sk-charlie-000000003"]


# ---- loading


def test_key_file_with_comments_blank_lines_and_duplicates(tmp_path: Path) -> None:
    path = keys_file(tmp_path, f"# team keys\n{KEYS[0]}\n\n  {KEYS[1]}  \n{KEYS[0]}\n")
    warnings: list[str] = []
    loaded = load_credentials(path, warn=warnings.append)
    assert [c.secret for c in loaded] == KEYS[:2]
    assert [c.label for c in loaded] == ["key-1", "key-2"]
    assert warnings == []


def test_labels_and_fingerprints_never_show_the_key() -> None:
    (cred,) = make_credentials([KEYS[0]])
    assert cred.fingerprint == hashlib.sha256(KEYS[0].encode()).hexdigest()[-4:]
    assert KEYS[0] not in repr(cred) and KEYS[0] not in cred.public_name
    assert cred.public_name == f"key-1 (…{cred.fingerprint})"


def test_keys_from_the_environment(tmp_path: Path) -> None:
    env = {creds.CREDENTIALS_ENV: f"{KEYS[0]}, {KEYS[1]}\n{KEYS[2]},,"}
    assert [c.secret for c in load_credentials(None, env)] == KEYS
    assert load_credentials(None, {}) == []


def test_a_file_others_can_read_gets_a_warning(tmp_path: Path) -> None:
    path = keys_file(tmp_path, KEYS[0] + "\n", mode=0o644)
    warnings: list[str] = []
    load_credentials(path, warn=warnings.append)
    assert warnings == [
        f"credentials file {path} is readable by other users; run: chmod 600 {path}"
    ]
    assert KEYS[0] not in warnings[0]


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [
        (None, 0o600, "does not exist"),
        ("", 0o600, "holds no keys"),
        ("# only a comment\n\n", 0o600, "holds no keys"),
        (b"\x00\x01binary\xff", 0o600, "is binary"),
        (b"caf\xe9\n", 0o600, "is not UTF-8 text"),
        ("two keys on-one-line\n", 0o600, "line 1 of credentials file"),
    ],
)
def test_bad_key_files_are_config_errors(
    tmp_path: Path, content: str | bytes | None, mode: int, message: str
) -> None:
    path = tmp_path / "keys.txt" if content is None else keys_file(tmp_path, content, mode)
    with pytest.raises(ConfigError) as caught:
        load_credentials(path)
    assert message in caught.value.message
    assert caught.value.exit_code == 2
    assert "\n" not in caught.value.message


SECRET = "sk-proj-SECRETSECRETSECRET0123"


def assert_no_part_of(key: str, message: str) -> None:
    """Not the key, nor any six characters of it in a row."""
    parts = {key[i : i + 6] for i in range(len(key) - 5)}
    assert not [part for part in parts if part in message], message


@pytest.mark.parametrize(
    ("line", "said"),
    [
        (f"work: {SECRET}", "a label before the key ('name: KEY') is not read"),
        (f"group=acme {SECRET}", "the key comes first, then its attributes"),
        (f"{SECRET} sk-other-SECRET-0000000", "a word after the key is not one of its"),
        (f"{SECRET} colour=red", "a word after the key is not one of its attributes"),
        (f"{SECRET}\x7f", "contains control characters"),
        ("OPENAI_API_KEY=", "OPENAI_API_KEY= has no key after it"),
    ],
)
def test_a_bad_key_line_is_named_never_quoted(tmp_path: Path, line: str, said: str) -> None:
    path = keys_file(tmp_path, f"# ours\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load_credentials(path)
    assert said in caught.value.message
    assert f"line 2 of credentials file {path}" in caught.value.message
    assert_no_part_of(SECRET, caught.value.message)
    assert_no_part_of("sk-other-SECRET-0000000", caught.value.message)


@pytest.mark.parametrize(
    "line",
    [
        f"OPENAI_API_KEY={SECRET}",
        f'export OPENAI_API_KEY="{SECRET}"',
        f"ANTHROPIC_API_KEY='{SECRET}' group=acme",
    ],
)
def test_a_dotenv_line_gives_its_value_as_the_key(tmp_path: Path, line: str) -> None:
    path = keys_file(tmp_path, line + "\n")
    (config,) = creds.load_keys(path, warn=print)
    assert config.secret == SECRET
    assert config.group == ("acme" if "group=" in line else None)


def test_a_key_that_contains_equals_signs_stays_whole(tmp_path: Path) -> None:
    path = keys_file(tmp_path, "AbCdEf0123456789xyz== rpm=5\nKEY=\n")
    assert [c.secret for c in creds.load_keys(path, warn=print)] == [
        "AbCdEf0123456789xyz==",
        "KEY=",
    ]


def test_the_environment_variable_takes_attributes_too() -> None:
    env = {creds.CREDENTIALS_ENV: f"{KEYS[0]} group=g1 rpm=60,{KEYS[1]}\nOPENAI_API_KEY={KEYS[2]}"}
    loaded = creds.load_keys(None, env)
    assert [(c.secret, c.group, c.rpm) for c in loaded] == [
        (KEYS[0], "g1", 60.0),
        (KEYS[1], None, None),
        (KEYS[2], None, None),
    ]
    with pytest.raises(ConfigError) as caught:
        creds.load_keys(None, {creds.CREDENTIALS_ENV: f"{KEYS[0]},{SECRET} grup=g1"})
    assert caught.value.message.startswith(f"entry 2 of {creds.CREDENTIALS_ENV}: ")
    assert_no_part_of(SECRET, caught.value.message)


def test_unreadable_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root reads files whatever their mode, so make the read itself fail the way it would for
    another user."""
    path = keys_file(tmp_path, KEYS[0] + "\n")

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(ConfigError) as caught:
        load_credentials(path)
    assert caught.value.message == (
        f"credentials file {path} is not readable; check its permissions"
    )


def test_redactor_replaces_longest_keys_first() -> None:
    redactor = Redactor(make_credentials(["sk-abc", "sk-abcdef"]))
    assert redactor(b"x sk-abcdef y sk-abc z") == b"x [key-2] y [key-1] z"
    assert redactor.text("sk-abcdef") == "[key-2]"
    assert not Redactor([])


# ---- the coordinator


def test_leases_are_exclusive_and_rotate() -> None:
    coord = CredentialCoordinator(KEYS[:2])
    first = coord.acquire("a")
    second = coord.acquire("b")
    assert first is not None and second is not None
    assert {first.label, second.label} == {"key-1", "key-2"}
    assert coord.acquire("c") is None  # both leased
    coord.release(first.lease_id, KeyOutcome.OK)
    coord.release(second.lease_id, KeyOutcome.OK)
    # least recently used first: key-1 was taken first, so it comes back first
    assert coord.acquire("d").label == first.label  # type: ignore[union-attr]


def test_claim_gives_the_key_to_the_holder_only_while_leased() -> None:
    coord = CredentialCoordinator(KEYS[:1])
    lease = coord.acquire("a")
    assert lease is not None
    assert coord.claim(lease.lease_id, os.getpid()) == (KEYS[0], "key-1")
    coord.release(lease.lease_id)
    with pytest.raises(KeyError):
        coord.claim(lease.lease_id, os.getpid())


def test_rate_limited_key_cools_for_retry_after() -> None:
    coord = CredentialCoordinator(KEYS[:1])
    lease = coord.acquire("a")
    assert lease is not None
    assert coord.release(lease.lease_id, KeyOutcome.RATE_LIMITED, retry_after=0.3) == 0.3
    status = coord.status()
    assert (status.free, status.cooling) == (0, 1)
    assert status.next_free_in is not None and 0 < status.next_free_in <= 0.3
    assert coord.acquire("b") is None
    t0 = time.monotonic()
    again = coord.acquire("b", timeout=2.0)  # waits for the cooldown, not the timeout
    assert again is not None
    assert 0.2 <= time.monotonic() - t0 < 1.0


def test_cooldown_without_retry_after_is_exponential_capped_and_jittered() -> None:
    coord = CredentialCoordinator(KEYS[:1], base_cooldown=30, seed=1)

    def rate_limit_once() -> float:
        coord._ring.keys[0].cooling_until = 0  # skip the wait between rounds
        lease = coord.acquire("a")
        assert lease is not None
        return coord.release(lease.lease_id, KeyOutcome.RATE_LIMITED)

    cooldowns = [rate_limit_once() for _ in range(7)]
    for got, want in zip(cooldowns, [30, 60, 120, 240, 480, 900, 900], strict=True):
        assert want * 0.9 <= got <= want * 1.1
    assert cooldowns[5] != cooldowns[6]  # jitter: two capped cooldowns differ
    coord._ring.keys[0].cooling_until = 0
    lease = coord.acquire("a")
    assert lease is not None
    assert coord.release(lease.lease_id, KeyOutcome.OK) == 0.0
    assert rate_limit_once() <= 33  # success reset the exponent


def test_revoked_keys_are_never_leased_again() -> None:
    coord = CredentialCoordinator(KEYS[:2])
    lease = coord.acquire("a")
    assert lease is not None
    coord.release(lease.lease_id, KeyOutcome.REVOKED)
    other = coord.acquire("b")
    assert other is not None and other.label != lease.label
    coord.release(other.lease_id, KeyOutcome.REVOKED)
    t0 = time.monotonic()
    assert coord.acquire("c", timeout=5) is None  # all revoked: no waiting
    assert time.monotonic() - t0 < 0.5
    assert coord.status().revoked == 2


def test_reclaim_by_item_and_by_dead_holder() -> None:
    coord = CredentialCoordinator(KEYS[:2])
    a = coord.acquire("item-a")
    b = coord.acquire("item-b")
    assert a is not None and b is not None
    assert coord.reclaim(item_ids=["item-a"]) == [a.label]
    dead = subprocess.Popen(["true"])
    dead.wait()
    coord.claim(b.lease_id, dead.pid)  # its holder is gone
    c = coord.acquire("item-c")
    d = coord.acquire("item-d")  # only possible because b's dead holder was reclaimed
    assert c is not None and d is not None


def test_waiters_wake_up_when_a_key_is_released() -> None:
    coord = CredentialCoordinator(KEYS[:1])
    lease = coord.acquire("a")
    assert lease is not None
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(coord.acquire("b", timeout=5)))
    waiter.start()
    time.sleep(0.1)
    coord.release(lease.lease_id)
    waiter.join(timeout=2)
    assert got and got[0] is not None


# ---- the key server process


KEY_SERVER_CHILD = """
import os, sys, time
from agentos.governor.service import start_key_server
from agentos.engine.shutdown import spawn_guard
from agentos.item.keys import KeyOutcome
with spawn_guard():
    server, proxy = start_key_server(["sk-one", "sk-two"])
lease = proxy.acquire("x", 0.0, 0)
print(server._process.pid, lease.label, proxy.claim(lease.lease_id, os.getpid())[1], flush=True)
time.sleep(60)
"""


@pytest.mark.timeout(60)
def test_key_server_ignores_ctrl_c_and_dies_with_its_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", KEY_SERVER_CHILD],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert parent.stdout is not None
    server_pid, label, claimed = parent.stdout.readline().split()
    assert (label, claimed) == ("key-1", "key-1")
    server = psutil.Process(int(server_pid))
    assert os.getpgid(server.pid) == server.pid  # own process group
    os.kill(server.pid, signal.SIGINT)  # a stray Ctrl+C does nothing
    time.sleep(0.2)
    assert server.is_running() and server.status() != psutil.STATUS_ZOMBIE
    parent.kill()  # SIGKILL: no cleanup code runs in the parent
    parent.wait()
    gone, _ = psutil.wait_procs([server], timeout=3)
    assert gone, "the key server outlived its SIGKILLed parent"
