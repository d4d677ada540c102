"""Servable Panel apps built from the components of :mod:`dashboards`."""
