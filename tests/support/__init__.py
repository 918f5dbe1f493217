"""Test infrastructure shared by the pytest suites (ports, processes, servers)."""
