"""The one live protocol (``indicators.live_protocol``): every live form follows the updates of one
``BarAggregator`` with ``apply(update)``; after every batch each one equals its batch function over
everything so far, and a chart that keeps only the changes it was sent holds the same rows; charts
asking for the same study with the same settings share one follower (one computation)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from indicators.live import LiveIndicators
from indicators.live_protocol import Changes, ChangeSet, Fanout, Follower, follower_key
from indicators.orderflow import LiveOrderFlow
from indicators.orderflow.vwap import VwapState, session_vwap
from indicators.profile import LiveTPO, LiveVolumeProfile, developing_profile, tpo_profiles
from indicators.registry import compute
from tests.test_indicator_registry import make_bars
from tests.test_live_indicators import _scale, assert_close
from tests.test_live_orderflow import assert_same, streams
from tests.test_live_profile import same_tpo
from tests.test_orderflow import ES, HAND
from tradeflow.bars import BarAggregator, build
from tradeflow.model import BarSpec

HISTORY = make_bars(300, seed=5).reset_index(drop=True)  # bars before the stream (2024)
INDICATORS = {"SMA": {"timeperiod": 3}, "EMA": {"timeperiod": 5}, "OBV": {},
              "ATR": {"timeperiod": 4}}
FLOW = {"studies": ["footprint_metrics", "cvd", "imbalances", "big_trades", "sweeps",
                    "naked_pocs", "liquidations_by_bar", "liquidations_by_level"],
        "cvd": {"session": ES.session}, "big_trades": {"min_size": 7.0},
        "naked_pocs": {"session": ES.session}}


def make_followers(fan: Fanout) -> dict:
    """One follower of each live form, through the fan-out, as a chart asks for them:
    ``{study: key}``."""
    def indicators():
        live = LiveIndicators(HISTORY)
        for name, params in INDICATORS.items():
            live.add(name, key=name, **params)
        return live
    made = {"orderflow": (FLOW, lambda: LiveOrderFlow(ES, **FLOW)),
            "volume_profile": ({"rows": 2}, lambda: LiveVolumeProfile(ES.session, rows=2)),
            "tpo": ({"period": "5min", "regular_only": False},
                    lambda: LiveTPO(ES.tick_size, ES.session, period="5min", regular_only=False)),
            "indicators": (INDICATORS, indicators),
            "vwap": ({"session": ES.session, "bands": [1, 2]},
                     lambda: VwapState(session=ES.session, bands=(1, 2)))}
    keys = {}
    for study, (params, make) in made.items():
        keys[study] = follower_key(study, params)
        fan.follow(keys[study], make)
    return keys


def batch_results(fan: Fanout, keys: dict, trades, liqs, spec) -> dict:
    """``{(study, output): the batch result}`` over everything so far; checks the live results
    (``result``, ``developing``, ``profile``, ``frame``) against them on the way."""
    bars, cells = build(trades, BarSpec.parse(spec).base, ES)
    out = {}
    flow = fan[keys["orderflow"]]
    for name, want in flow.batch(trades, bars, cells, liqs).items():
        assert_same(flow.result(name), want, name)
        out["orderflow", name] = want
    out["orderflow", "bars"], out["orderflow", "footprint"] = bars, cells
    want = developing_profile(cells, ES.session, rows=2)
    pd.testing.assert_frame_equal(fan[keys["volume_profile"]].developing(), want)
    out["volume_profile", "developing"] = want
    tpo = fan[keys["tpo"]]
    days = tpo_profiles(bars, ES.tick_size, ES.session, period="5min", regular_only=False)
    same_tpo(tpo.profile(), list(days.values())[-1])
    out["tpo", "tpo"] = tpo.profile().levels
    everything = pd.concat([HISTORY, bars], ignore_index=True)
    for name, params in INDICATORS.items():
        want = compute(name, everything, **params)
        got = fan[keys["indicators"]][name].frame()
        for col in want.columns:
            assert_close(got[col].to_numpy(), want[col].to_numpy(), _scale(want[col]), name)
        out["indicators", name] = got  # (compared with a tolerance above; exact below)
    out["vwap", "vwap"] = session_vwap(bars, ES.session, bands=(1, 2))
    return out


def assert_shown(shown, want, at) -> None:
    if isinstance(want, pd.Series):
        pd.testing.assert_series_equal(shown, want, obj=str(at))
    elif at[0] == "vwap":  # (the batch VWAP's index is 0..n-1 too; sums as in the batch)
        pd.testing.assert_frame_equal(shown.reset_index(drop=True), want, obj=str(at))
    else:  # (labels are str, or object when empty, as the batch functions give them)
        pd.testing.assert_frame_equal(shown, want, check_dtype=len(want) > 0,
                                      check_index_type=False, obj=str(at))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stream=streams(), spec=st.sampled_from(["1m", "5m", "1h:HA", "T5", "V20", "R4"]))
def test_every_live_form_follows_one_aggregator(stream, spec):
    tr, liqs, cuts, liq_cuts = stream
    if not BarSpec.parse(spec).is_time:  # (cell studies in batch merge bars sharing a time)
        assume(build(tr, spec, ES)[0]["ts"].is_unique)
    agg, fan = BarAggregator(ES, spec), Fanout()
    keys = make_followers(fan)
    # what a chart shows before the first update: the indicators' history, nothing else
    shown = {("indicators", name): fan[keys["indicators"]][name].frame() for name in INDICATORS}
    a = la = 0
    for b, lb in zip(cuts, liq_cuts):
        changes = fan.apply(agg.update(tr.iloc[a:b], liqs.iloc[la:lb]))
        want = batch_results(fan, keys, tr.iloc[:b], liqs.iloc[:lb], spec)
        # a chart keeps only the changes it is sent, and holds the results
        for study, key in keys.items():
            assert set(changes[key]) == {name for s, name in want if s == study}, study
            for name, ch in changes[key].items():
                at = (study, name)
                shown[at] = ch.applied(shown[at]) if at in shown else ch.rows
                assert ch.length == len(want[at]), at
                assert_shown(shown[at], want[at], at)
        a, la = b, lb
    assert len(fan) == len(keys) and all(fan.users(k) == 1 for k in keys.values())


# --------------------------------------------------------------------------------------------
# sharing


class CountingProfile(LiveVolumeProfile):
    """A volume profile that counts its computations."""

    made = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        CountingProfile.made += 1
        self.calls = 0

    def apply(self, update):
        self.calls += 1
        return super().apply(update)


def test_charts_with_the_same_settings_share_one_follower():
    CountingProfile.made = 0
    agg, fan = BarAggregator(ES, "1m"), Fanout()

    def chart(**params):  # a chart asks for the study with its settings
        return fan.follow(follower_key("volume_profile", params),
                          lambda: CountingProfile(ES.session, **params))

    one = chart(rows=2, value_area=0.7)
    two = chart(value_area=0.70, rows=2.0)  # the same settings written otherwise
    other = chart(rows=1)
    assert one is two and one is not other and CountingProfile.made == 2 and len(fan) == 2
    seen = []
    for i in range(0, len(HAND), 4):
        out = fan.apply(agg.update(HAND.iloc[i:i + 4]))
        seen.append(out[follower_key("volume_profile", {"rows": 2, "value_area": 0.7})])
    assert one.calls == other.calls == len(seen) == 3  # one computation per update, not two
    pd.testing.assert_frame_equal(one.developing(), developing_profile(
        build(HAND, "1m", ES)[1], ES.session, rows=2))
    key = follower_key("volume_profile", {"rows": 2, "value_area": 0.7})
    assert fan.users(key) == 2
    fan.release(key)
    assert key in fan  # the other chart still shows it
    fan.release(key)
    assert key not in fan and len(fan) == 1
    with pytest.raises(KeyError, match="no follower"):
        fan.release(key)


def test_follower_keys_and_bad_followers():
    assert follower_key("cvd", {"a": {"x": [1, 2]}, "b": 3}) == \
        follower_key("cvd", {"b": 3.0, "a": {"x": (1, 2)}})
    assert follower_key("cvd", {"b": 3}) != follower_key("cvd", {"b": 4})
    assert follower_key("cvd", {"session": ES.session}) == follower_key("cvd", {"session":
                                                                                ES.session})
    with pytest.raises(TypeError, match="unhashable"):  # a setting must be a plain value
        follower_key("cvd", {"x": np.zeros(2)})
    fan = Fanout()
    with pytest.raises(TypeError, match="no apply"):
        fan.follow("x", lambda: object())
    for follower in (LiveOrderFlow(ES), LiveVolumeProfile(), LiveIndicators(),
                     VwapState(session=ES.session), LiveTPO(ES.tick_size, ES.session)):
        assert isinstance(follower, Follower)


def test_changes_tell_a_chart_what_to_patch_and_append():
    rows = pd.DataFrame({"v": [10, 11, 12]}, index=[4, 5, 6])
    ch = Changes(rows, 7)
    assert ch.patch(5)["v"].tolist() == [10] and ch.append(5)["v"].tolist() == [11, 12]
    shown = pd.DataFrame({"v": list(range(6))})
    assert ch.applied(shown)["v"].tolist() == [0, 1, 2, 3, 10, 11, 12]
    shrunk = Changes(pd.DataFrame({"v": [9]}, index=[2]), 3)  # a forming bar's rows went away
    assert shrunk.applied(shown)["v"].tolist() == [0, 1, 9]
    with pytest.raises(ValueError, match="keyed"):
        Changes(rows, 3, key=("tick",)).applied(shown)
    lazy = ChangeSet({"a": lambda: ch})
    assert list(lazy) == ["a"] and lazy["a"] is lazy["a"] and len(lazy) == 1
