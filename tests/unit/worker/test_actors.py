"""The actor table against the actors a worker declares, and the messages the API sends."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import maie.api
from maie import actor_table
from maie.actor_table import ACTOR_OF_STAGE, ACTORS, ActorSpec
from maie.broker import build_broker
from maie.config import Settings
from maie.errors import PERMANENT_ERRORS
from maie.schemas import StageName
from maie.store import TaskStore
from maie.worker.actors import STAGE_OF_ACTOR, register_actors
from maie.worker.runtime import WorkerRuntime

#: Nothing listens here: declaring actors and building messages needs no Redis and no PostgreSQL.
NO_REDIS = "redis://127.0.0.1:9/0"
NO_DATABASE = "postgresql://maie@127.0.0.1:9/maie"
API_PACKAGE = Path(maie.api.__file__).parent


@pytest.fixture
def settings(tmp_path):
    return Settings.from_env(
        {"MAIE_DATA_DIR": str(tmp_path), "MAIE_MAX_RETRIES": "5", "MAIE_WEBHOOK_MAX_RETRIES": "7"},
        env_file=None,
    )


@pytest.fixture
def declared(settings):
    """A worker's broker with every actor declared, as ``maie worker`` does it."""
    broker = build_broker(settings, NO_REDIS)
    runtime = WorkerRuntime(settings, TaskStore.from_urls(NO_DATABASE, NO_REDIS))
    register_actors(broker, runtime)
    yield broker
    runtime.close()
    broker.close()


#: Calls that build a message without the table.
BY_HAND = frozenset({"stage_message", "Message"})


def _callee(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _actor_names(package: Path) -> set[str]:
    """Names ``package`` imports from the actor table, and a mark for each message it builds by hand."""
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "maie.actor_table":
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.Call) and _callee(node) in BY_HAND:
                names.add(f"{path.name}:{node.lineno} builds a message outside the table")
    return names


class TestTable:
    def test_every_actor_of_the_table_is_declared_as_the_table_says(self, declared, settings):
        assert sorted(declared.get_declared_actors()) == sorted(a.name for a in ACTORS)
        for spec in ACTORS:
            actor = declared.get_actor(spec.name)
            assert actor.queue_name == spec.queue
            assert actor.options == {k: v for k, v in spec.options(settings).items() if k != "queue_name"}

    def test_retries_and_throws_come_from_one_place(self, declared, settings):
        assert declared.get_actor("preprocess").options["max_retries"] == 5
        assert declared.get_actor("deliver_webhook").options["max_retries"] == 7
        assert declared.get_actor("deliver_webhook").options["min_backoff"] == settings.webhook.min_backoff_ms
        assert all(declared.get_actor(a.name).options["throws"] is PERMANENT_ERRORS for a in ACTORS)

    def test_every_stage_has_an_actor(self):
        """After any stage the worker finds the actor of the next one."""
        assert set(ACTOR_OF_STAGE) == set(StageName)
        assert {STAGE_OF_ACTOR[ACTOR_OF_STAGE[s].name] for s in StageName} == set(StageName)


class TestApiMessages:
    def test_every_message_the_api_can_send_has_an_actor(self, declared):
        """The API sends only through the table, and each entry it uses is declared on its queue."""
        used = _actor_names(API_PACKAGE)
        specs = [getattr(actor_table, name, name) for name in used]
        assert all(isinstance(spec, ActorSpec) for spec in specs), used
        assert {spec.name for spec in specs} == {"fetch", "preprocess", "resummarize", "deliver_deletion"}
        for spec in specs:
            message = spec.message("t1", request_id="r-1")
            assert declared.get_actor(message.actor_name).queue_name == message.queue_name

    def test_the_scan_notices_a_message_built_by_hand(self, tmp_path):
        (tmp_path / "route.py").write_text(
            "from maie.actor_table import PREPROCESS\nfrom maie.broker import stage_message\n"
            "m = stage_message('preprocess', 'maie.cpu', 't')\nn = dramatiq.Message(queue_name='q')\n"
        )
        assert _actor_names(tmp_path) == {
            "PREPROCESS",
            "route.py:3 builds a message outside the table",
            "route.py:4 builds a message outside the table",
        }
