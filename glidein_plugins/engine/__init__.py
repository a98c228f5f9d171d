"""The engine: plugin loading, the runner with its budget and policies, one run's assembly."""
