"""Size of the demo dataset the tests use: smaller than the CLI's default, the same layout and planted truth."""

DEMO_SIZE = {"n_sessions": 3, "trials_per_session": 150, "n_shared": 25}
