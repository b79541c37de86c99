"""Shared pytest settings: the `slow` marker (run by default; `-m "not slow"` skips them)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: longer checks (XLA compile, real-data training)")
