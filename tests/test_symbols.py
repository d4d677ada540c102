"""The instrument symbol rule (``tradeflow.model.validate_symbol``): real symbols of every venue
pass; markup, quotes, spaces and overlong text never do, wherever a symbol enters."""
import pytest

from tradeflow.ingest.errors import IngestError
from tradeflow.ingest.chunks import check_symbol
from tradeflow.model import Instrument, ModelError, validate_symbol

REAL = ["ESZ5", "ES.FUT", "BTCUSDT", "BTCUSD_PERP", "BTC-USDT", "EUR/USD", "^GSPC", "BRK.B", "6E",
        "XAUUSD", "/ES", "ES=F", "@ES", "$SPX", "ES1!", "ES.c.0", "ESZ25-CME",
        "BTC-27DEC24-100000-C", "1000SHIBUSDT", "E" * 40]
BAD = ["<svg/onload=alert(document.domain)>", "<b>", "ES X", "", " ", "ES\n", "ES\t", "a\"b",
       "a'b", "a&b", "a\\b", "a`b", "a;b", "...", "-_/", "É", "ES\x00", "E" * 41, None, 5]


@pytest.mark.parametrize("symbol", REAL)
def test_real_symbols_pass(symbol):
    assert validate_symbol(symbol) == symbol
    assert Instrument(symbol, 0.25).symbol == symbol
    assert check_symbol("f.csv", "line 2", symbol) == symbol


@pytest.mark.parametrize("symbol", BAD)
def test_bad_symbols_are_refused_everywhere(symbol):
    with pytest.raises(ModelError, match=r"symbol .* is not valid: use 1 to 40 letters, digits"):
        validate_symbol(symbol)
    with pytest.raises(ModelError, match="is not valid"):
        Instrument(symbol, 0.25)
    with pytest.raises(IngestError, match=r"f\.csv: line 2: symbol .* is not valid"):
        check_symbol("f.csv", "line 2", symbol)


@pytest.mark.parametrize("tick, point, message", [
    (1e300, 1.0, "tick size must be from 1e-12 to 1e\\+06"),
    (1e-300, 1.0, "tick size must be from"),
    (0.25, 1e300, "point value must be a positive number up to 1e\\+09"),
    (0.25, float("nan"), "point value must be a positive number"),
    (0.25, -5, "point value must be a positive number"),
])
def test_instrument_numbers_keep_to_sane_magnitudes(tick, point, message):
    with pytest.raises(ModelError, match=message):
        Instrument("ES", tick, point_value=point)


@pytest.mark.parametrize("exchange", ["CME\x1b[31m", "a\nb", "X" * 65, None])
def test_the_exchange_is_short_printable_text(exchange):
    with pytest.raises(ModelError, match="must be printable text of at most 64 characters"):
        Instrument("ES", 0.25, exchange=exchange)
    assert Instrument("ES", 0.25, exchange="CME Globex").exchange == "CME Globex"
