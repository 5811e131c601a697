"""``broker admin ...``: the admin API's operations from the command line, on the store, printing JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import REDIS_URL

from broker.cli.main import main


@pytest.fixture
def admin_cli(monkeypatch: Any, capsys: Any) -> Any:
    monkeypatch.setenv("BROKER_REDIS_URL", REDIS_URL)

    def run(*argv: str, status: int = 0) -> Any:
        assert main(["admin", *argv]) == status
        out = capsys.readouterr()
        return json.loads(out.out) if status == 0 else out.err

    return run


@pytest.mark.parametrize("command", [[], ["project"], ["project", "set"], ["credit"], ["usage"], ["keys"],
                                     ["keys", "rotate"]], ids=lambda c: " ".join(c) or "admin")
def test_help(command: list[str], capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["admin", *command, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: broker admin {' '.join(command)}".rstrip())


def test_a_project_with_limits_credit_prices_and_keys(admin_cli: Any, make_project: Any) -> None:
    project = make_project("cli")
    created = admin_cli("project", "create", project, "--max-queues", "2", "--max-payload-bytes", "100")
    assert created["limits"]["max_queues"] == 2 and created["credit"] is None
    assert admin_cli("credit", project, "10") == {"project": project, "credit": 10}
    assert admin_cli("credit", project, "-4") == {"project": project, "credit": 6}
    changed = admin_cli("project", "set", project, "--price", "queue.publish=2", "--max-queues", "none", "--disable")
    assert changed["prices"] == {"queue.publish": 2} and changed["limits"]["max_queues"] is None
    assert changed["disabled"] is True
    assert project in {p["project"] for p in admin_cli("project", "list")}
    key = admin_cli("keys", "create", project)
    assert key["key"].startswith(key["prefix"])
    (listed,) = admin_cli("keys", "list", project)
    assert listed["key_id"] == key["key_id"] and listed["key"] is None
    rotated = admin_cli("keys", "rotate", project, key["key_id"], "--overlap-seconds", "0")
    assert [k["key_id"] for k in admin_cli("keys", "list", project)] == [rotated["key_id"]]
    assert admin_cli("keys", "revoke", project, rotated["key_id"])["deleted"] is True
    assert admin_cli("keys", "list", project) == []
    assert admin_cli("usage", project, "--from", "2000-01-01", "--to", "2000-01-02")["items"] == []
    assert "NOT_FOUND" in admin_cli("project", "show", project + "-absent", status=1)
    assert "nothing to change" in admin_cli("project", "set", project, status=2)


def test_a_key_made_by_broker_keys_create_gives_its_project_an_account(admin_cli: Any, make_project: Any,
                                                                        monkeypatch: Any, capsys: Any) -> None:
    project = make_project("keys")
    assert "NOT_FOUND" in admin_cli("project", "show", project, status=1)
    assert main(["keys", "create", "--project", project]) == 0
    capsys.readouterr()
    shown = admin_cli("project", "show", project)
    assert shown["project"] == project and shown["credit"] is None
    assert admin_cli("credit", project, "5") == {"project": project, "credit": 5}
    assert project in {p["project"] for p in admin_cli("project", "list")}
