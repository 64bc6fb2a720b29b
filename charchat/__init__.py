"""charchat: a character-level LSTM you talk to in a terminal."""

__version__ = "0.1.0"
