"""Other projects' own test suites, run against ours (in a child process; see the
``test_*`` module that runs each)."""
