"""The web app shows a control only when this server's API has the route behind it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar import Litestar, Router, delete, get, patch

from maie.api import create_app
from maie.config import Settings
from maie.web.features import ENDPOINTS, api_features

if TYPE_CHECKING:
    from litestar.params import FromPath

APP = create_app(
    Settings.from_env({}, env_file=None),
    redis_url="redis://127.0.0.1:9/0",
    database_url="postgresql://127.0.0.1:9/maie",
)


class TestFeatures:
    def test_what_this_api_has_today(self):
        features = api_features(APP, llm=False)
        assert set(features) == {*ENDPOINTS, "diarize", "llm"}
        # Every route the page can use is one this API has (a renamed path would hide a control).
        assert all(features[name] for name in ENDPOINTS), features
        assert features["diarize"]
        assert features["llm"] is False

    def test_a_route_that_appears_turns_its_feature_on(self):
        @get("/search")
        async def search() -> None: ...

        @delete("/tasks/{task_id:str}")
        async def remove(task_id: FromPath[str]) -> None: ...

        @patch("/tasks/{task_id:str}/speakers")
        async def rename(task_id: FromPath[str]) -> None: ...

        app = Litestar([Router("/v1", route_handlers=[search, remove, rename])])
        features = api_features(app, llm=True)
        assert features["search"]
        assert features["delete"]
        assert features["rename_speakers"]
        assert not features["rttm"]
        assert not features["audio"]
        assert features["llm"]

    def test_a_route_of_another_method_does_not(self):
        @get("/tasks/{task_id:str}")
        async def read(task_id: FromPath[str]) -> None: ...

        assert not api_features(Litestar([Router("/v1", route_handlers=[read])]), llm=False)["delete"]
