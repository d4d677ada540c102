"""Venue adapters: each venue's own rules, kept with their venue (../shared/ARCHITECTURE.md).

``binance``: the local order book kept by Binance's depth-diff sequencing (``U``/``u``/``pu``);
``sierra``: Sierra Chart market-depth commands replayed into book snapshots. The book itself is a
study (``indicators.orderflow.book.OrderBook``); these drive it.
"""
