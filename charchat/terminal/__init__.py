"""The edges that face a person: the REPL, pipes, and the one renderer."""
