"""Engine, unit of work and column types."""
