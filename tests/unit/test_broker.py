"""The broker's recovery after a Redis outage, and messages carrying request ids."""

from __future__ import annotations

from maie.broker import REQUEST_ID_OPTION, RecoveringRedisBroker, stage_message


class TestRecovery:
    """A worker takes a new id once after an outage, so its stranded messages can be handed back."""

    def _broker(self) -> RecoveringRedisBroker:
        return RecoveringRedisBroker(url="redis://127.0.0.1:9/0", namespace="test")

    def test_no_outage_keeps_the_id(self):
        broker = self._broker()
        first = broker.broker_id
        broker.reconnected()
        assert broker.broker_id == first

    def test_outage_rotates_the_id_once(self):
        broker = self._broker()
        first = broker.broker_id
        broker.outage_seen()
        broker.outage_seen()  # several consumers saw it
        broker.reconnected()
        second = broker.broker_id
        broker.reconnected()  # the other consumers come back
        assert second != first
        assert broker.broker_id == second


class TestStageMessage:
    def test_request_id_rides_in_the_options(self):
        assert stage_message("preprocess", "maie.cpu", "t1", request_id="r-1").options == {
            REQUEST_ID_OPTION: "r-1"
        }
        assert stage_message("preprocess", "maie.cpu", "t1").options == {}
