"""The chat: a model, its state and a session, stepped one character at a time in numpy.

Nothing here imports torch."""
