"""The served process's log: a page closing during a live update is not logged as an error
(``tradeflow.server.app.quiet_closed_pages``), and every other error no one awaited still is."""
import asyncio
import gc
import logging

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

from tradeflow.server.app import quiet_closed_pages


def _unretrieved(error: BaseException) -> None:
    """A task that fails with ``error`` and is dropped unawaited (as tornado's write to a closed
    websocket is), on a real loop with the server's handler."""
    async def fail():
        raise error

    async def main():
        asyncio.get_running_loop().set_exception_handler(quiet_closed_pages)
        task = asyncio.ensure_future(fail())
        await asyncio.sleep(0.01)
        assert task.done()
        del task
        gc.collect()  # the loop reports "Task exception was never retrieved" when it is freed

    asyncio.run(main())


def test_a_message_to_a_closed_page_is_not_an_error(caplog):
    caplog.set_level(logging.DEBUG)
    for error in (WebSocketClosedError(), StreamClosedError()):
        _unretrieved(error)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    dropped = [r for r in caplog.records if r.name == "tradeflow.server"]
    assert len(dropped) == 2 and all("closed page" in r.getMessage() for r in dropped)


def test_other_errors_no_one_awaited_are_still_logged(caplog):
    _unretrieved(ValueError("a bug"))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "never retrieved" in errors[0].getMessage()
    assert "a bug" in str(errors[0].exc_info[1])
