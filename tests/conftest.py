import os
import pytest

def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: long tests, skipped unless --runslow')
