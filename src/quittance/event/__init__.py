"""Events: the record of everything that happened, written with the change itself."""
